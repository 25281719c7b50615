"""A 3-band (RGB-only) raster runs through the whole pipeline with the default engines (documented fallback)."""
import numpy as np
import pytest
import rasterio

from groundsynth.pipeline.prepare import prepare_job
from groundsynth.pipeline.runner import run_job
from groundsynth.request.errors import InvalidArgument
from groundsynth.request.spec import Aoi, BandMapping, JobSpec, SynthesisOptions
from groundsynth.service.journal import Journal


@pytest.fixture(scope="module")
def rgb_raster(tmp_path_factory):
    from groundsynth.demo.scene import demo_raster

    root = tmp_path_factory.mktemp("rgb")
    with rasterio.open(demo_raster(root / "data")) as ds:
        window = rasterio.windows.Window(768, 512, 256, 256)          # farmland by the lagoon
        data = ds.read([1, 2, 3], window=window)
        profile = ds.profile | {"count": 3, "width": 256, "height": 256,
                                "transform": ds.window_transform(window)}
    path = root / "rgb.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return path


def _bbox(path):
    with rasterio.open(path) as ds:
        return tuple(ds.bounds)


def test_rgb_raster_runs_every_stage_with_three_band_outputs(rgb_raster, tmp_path):
    spec = JobSpec(aoi=Aoi(bbox=_bbox(rgb_raster)), raster_path=str(rgb_raster), tile_size=128, seed=2,
                   synthesis=SynthesisOptions(variants=1))
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        assert run_job("rgb", spec, tmp_path, journal, lambda *a: None, lambda: False) == "SUCCEEDED"
        real, syn = journal.tiles("rgb", "real"), journal.tiles("rgb", "synthetic")
        assert len(real) == 4 and len(syn) == 4
        for rec in real + syn:
            with rasterio.open(tmp_path / "jobs" / "rgb" / rec.artefacts["image"]) as img:
                assert img.count == 3                      # no invented NIR band
            with rasterio.open(tmp_path / "jobs" / "rgb" / rec.artefacts["mask"]) as m:
                mask = m.read(1)
            assert set(np.unique(mask)) <= set(range(7))   # every pixel classified
            assert len(rec.captions) == 5 and "grounding" in rec.metrics
        # the RGB fallback still finds water in the lagoon and vegetation on the farmland
        shares = np.mean([r.composition for r in real], axis=0)
        assert shares[6] > 0.02 and shares[0] + shares[2] + shares[3] > 0.2
    finally:
        journal.close()


def test_asking_for_a_nir_band_a_rgb_raster_lacks_names_the_band(rgb_raster, tmp_path):
    spec = JobSpec(aoi=Aoi(bbox=_bbox(rgb_raster)), raster_path=str(rgb_raster), bands=BandMapping(nir=4))
    with pytest.raises(InvalidArgument) as err:
        prepare_job(spec, tmp_path)
    assert err.value.field == "bands.nir" and "3" in err.value.message
