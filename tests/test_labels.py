"""Label rasters: WorldCover remap, nearest-neighbour reprojection from another CRS, errors; segment/labels."""
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_points

from groundsynth.engines import get_engine
from groundsynth.engines.base import EngineContext, TileInput
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import FailedPrecondition, InvalidArgument, NotFound
from groundsynth.tiling.labels import read_labels

UTM = "EPSG:32618"
TILE_T = from_origin(436000.0, 4179000.0, 10.0, 10.0)     # a 64 x 64 tile at 10 m on the demo scene's grid


def _write(path, data, crs, transform, nodata=0):
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data, 1)
    return path


def test_same_grid_remaps_worldcover_codes(tmp_path):
    codes = np.zeros((64, 64), np.uint8)
    codes[:, :16], codes[:, 16:32], codes[:, 32:48], codes[:, 48:] = 10, 40, 80, 50
    codes[:4, :4] = 0                 # WorldCover nodata
    codes[60:, 60:] = 77              # unknown code
    path = _write(tmp_path / "wc.tif", codes, UTM, TILE_T)
    m = read_labels(path, UTM, TILE_T, (64, 64))
    assert m.dtype == np.uint8 and m.shape == (64, 64)
    assert (m[10:, :16] == 0).all() and (m[:, 16:32] == 3).all() and (m[:, 32:48] == 6).all()
    assert (m[:4, :4] == NODATA).all() and (m[60:, 60:] == NODATA).all() and (m[:50, 48:] == 4).all()


def test_reprojects_from_geographic_crs_by_nearest_neighbour(tmp_path):
    # WorldCover ships in EPSG:4326: a 4326 raster, west half trees (10), east half water (80)
    (lon0, lon1), (lat0, lat1) = warp_points(UTM, "EPSG:4326", [435900, 436800], [4179100, 4178200])
    w, h = 200, 200
    res_x, res_y = (lon1 - lon0) / w, (lat0 - lat1) / h
    codes = np.full((h, w), 10, np.uint8)
    codes[:, w // 2:] = 80
    path = _write(tmp_path / "wc4326.tif", codes, "EPSG:4326", from_origin(lon0, lat0, res_x, res_y))
    m = read_labels(path, UTM, TILE_T, (64, 64))
    assert set(np.unique(m)) <= {0, 6}          # nearest neighbour: only real classes, no blends
    # the boundary sits at the longitude of the source's middle column, mapped into the tile
    xs, _ = warp_points("EPSG:4326", UTM, [lon0 + (w // 2) * res_x] * 2, [lat0, lat1])
    col = (np.mean(xs) - 436000.0) / 10.0
    assert (m[:, : int(col) - 2] == 0).all() and (m[:, int(col) + 3:] == 6).all()


def test_outside_the_label_raster_is_nodata(tmp_path):
    codes = np.full((32, 32), 40, np.uint8)
    path = _write(tmp_path / "small.tif", codes, UTM, from_origin(436000.0, 4179000.0, 10.0, 10.0))
    m = read_labels(path, UTM, TILE_T, (64, 64))
    assert (m[:32, :32] == 3).all() and (m[32:, :] == NODATA).all() and (m[:, 32:] == NODATA).all()


def test_errors_name_label_raster_path(tmp_path):
    with pytest.raises(NotFound) as err:
        read_labels(tmp_path / "missing.tif", UTM, TILE_T, (8, 8))
    assert err.value.field == "label_raster_path"
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(InvalidArgument, match="label_raster_path"):
        read_labels(junk, UTM, TILE_T, (8, 8))
    floats = _write(tmp_path / "f.tif", np.zeros((8, 8), np.float32), UTM, TILE_T)
    with pytest.raises(InvalidArgument, match="integer WorldCover codes"):
        read_labels(floats, UTM, TILE_T, (8, 8))
    nocrs = _write(tmp_path / "nocrs.tif", np.full((8, 8), 10, np.uint8), None, TILE_T)
    with pytest.raises(InvalidArgument, match="no CRS"):
        read_labels(nocrs, UTM, TILE_T, (8, 8))


def test_labels_engine_uses_tile_labels_and_needs_a_raster():
    cls = get_engine("segment", "labels")
    with pytest.raises(FailedPrecondition, match="segment/labels needs label_raster_path"):
        cls({}, EngineContext())
    eng = cls({}, EngineContext(extra={"label_raster_path": "/some/wc.tif"}))
    labels = np.array([[0, 3], [6, 255]], np.uint8)
    valid = np.array([[True, False], [True, True]])
    img = np.zeros((4, 2, 2), np.float32)
    out = eng.segment([TileInput("r0000_c0000", img, valid, labels)])[0]
    assert out.tolist() == [[0, NODATA], [6, NODATA]]
    with pytest.raises(FailedPrecondition, match="has no labels"):
        eng.segment([TileInput("r0000_c0001", img, valid, None)])
    # synthetic tiles have no labels: documented fallback to segment/spectral
    water = np.zeros((4, 16, 16), np.float32)
    water[2] = 0.8     # blue, no NIR: water in any case
    water[1] = 0.5
    syn = eng.segment([TileInput("r0000_c0000_v1", water, np.ones((16, 16), bool), None, "synthetic")])[0]
    assert (syn == 6).all()


def test_job_with_labels_engine_but_no_label_raster_is_refused_before_it_starts(tmp_path):
    from groundsynth.pipeline.prepare import prepare_job
    from groundsynth.request.spec import Aoi, JobSpec, StageConfig
    from tests.helpers_rasters import px_bbox, write_raster

    raster = write_raster(tmp_path / "src.tif", width=128, height=128)
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 128, 128)), raster_path=str(raster), tile_size=64,
                   stages=[StageConfig("segment", "labels")])
    with pytest.raises(FailedPrecondition) as err:
        prepare_job(spec, tmp_path / "ws")
    assert err.value.field == "label_raster_path" and "needs label_raster_path" in err.value.message
