"""A job that names its own weights is not judged by the default weights location."""

from groundsynth.engines import get_engine
from groundsynth.models.weights import default_models_dir
from groundsynth.pipeline.prepare import prepare_job
from groundsynth.request.spec import Aoi, JobSpec, StageConfig
from tests.helpers_rasters import px_bbox, write_raster
from tests.neural_fixtures import tiny_segformer


def test_explicit_weights_elsewhere_are_accepted_while_default_dir_is_empty(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    ok, reason = get_engine("segment", "segformer").availability(default_models_dir(str(workspace)))
    assert not ok and "segformer" in reason          # nothing at the default location
    weights = tiny_segformer(tmp_path / "elsewhere" / "seg")
    raster = write_raster(tmp_path / "src.tif", width=128, height=128)
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 128, 128)), raster_path=str(raster), tile_size=64,
                   stages=[StageConfig("segment", "segformer", {"weights": str(weights)})])
    prepared = prepare_job(spec, workspace)
    assert prepared.tile_count == 4
