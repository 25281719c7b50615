"""Tiling against hand-computed grids (raster on the demo georeference: 10 m, origin 435730 E, 4179460 N).

Grid rule: tile (row, col) is the pixel window starting at (row * stride, col * stride), stride = tile - overlap,
anchored at the raster's pixel (0, 0).
"""
import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
from shapely import box

from groundsynth.pipeline.prepare import RunOptions, prepare_job
from groundsynth.request.errors import InvalidArgument, NotFound, ResourceExhausted
from groundsynth.request.spec import Aoi, BandMapping, JobSpec, StageConfig
from groundsynth.tiling.grid import build_grid
from tests.helpers_engines import TEST_STAGES, test_engines
from tests.helpers_rasters import DEMO_TRANSFORM, px_bbox, px_to_world, write_raster

X0, Y0 = 435730.0, 4179460.0


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    # 800 x 600 px, 4 bands
    return write_raster(tmp_path_factory.mktemp("tiling") / "src.tif", width=800, height=600)


@pytest.fixture(autouse=True)
def engines():
    with test_engines():
        yield


def _spec(raster, aoi, **kw):
    kw.setdefault("stages", TEST_STAGES(("segment",)))
    return JobSpec(aoi=aoi, raster_path=str(raster), **kw)


def _cells(prep):
    return sorted((c.row, c.col, c.col_off, c.row_off, c.width, c.height) for c in prep.grid.cells)


def test_aoi_in_epsg4326_over_utm_raster(raster, tmp_path):
    # The lon/lat box around the UTM pixel box cols 300..700, rows 300..480. Reprojected back it grows by a few
    # pixels (grid convergence ~0.4 deg here) but stays inside tiles cols 1-2 (256..768), row 1 (256..512).
    to_ll = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    xs, ys = zip(*(px_to_world(c, r) for c in (300, 700) for r in (300, 480)), strict=True)
    lons, lats = to_ll.transform(xs, ys)
    aoi = Aoi(bbox=(min(lons), min(lats), max(lons), max(lats)), crs="EPSG:4326")
    prep = prepare_job(_spec(raster, aoi), tmp_path)
    assert _cells(prep) == [(1, 1, 256, 256, 256, 256), (1, 2, 512, 256, 256, 256)]
    assert prep.tile_count == 2 and prep.skipped_tiles == 0
    c0, r0, c1, r1 = prep.grid.pixel_bounds
    assert 290 <= c0 <= 300 and 700 <= c1 <= 710 and 290 <= r0 <= 300 and 480 <= r1 <= 490
    cell = prep.grid.cells[0]
    assert cell.bounds(prep.transform) == (X0 + 2560, Y0 - 5120, X0 + 5120, Y0 - 2560)


def test_aoi_partly_outside_the_raster(raster, tmp_path):
    # pixel box cols -100..300, rows 550..700 on a 800 x 600 raster -> inside: cols 0..300, rows 550..600
    prep = prepare_job(_spec(raster, Aoi(bbox=px_bbox(-100, 550, 300, 700))), tmp_path)
    assert _cells(prep) == [(2, 0, 0, 512, 256, 256), (2, 1, 256, 512, 256, 256)]
    assert prep.grid.pixel_bounds == (0, 550, 300, 600)
    assert any("outside the raster" in w for w in prep.warnings)


def test_aoi_entirely_outside_is_a_clear_error(raster, tmp_path):
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(raster, Aoi(bbox=(-10.0, 40.0, -9.0, 41.0), crs="EPSG:4326")), tmp_path)
    assert err.value.field == "aoi"
    assert "entirely outside" in err.value.message
    # the message gives the raster's extent in the AOI CRS (lon/lat around -75.7, 37.7)
    assert "-75." in err.value.message and "37." in err.value.message


def test_polygon_aoi_skips_cells_outside_the_polygon(raster, tmp_path):
    # Triangle (0,0) (192,0) (0,192) in pixels, 64 px tiles: its box spans 3 x 3 cells; a cell (r, c) overlaps
    # the triangle (x + y < 192) with positive area iff r + c <= 2 -> 6 cells, 3 skipped.
    pts = [px_to_world(c, r) for c, r in ((0, 0), (192, 0), (0, 192), (0, 0))]
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in pts) + "))"
    prep = prepare_job(_spec(raster, Aoi(polygon_wkt=wkt), tile_size=64), tmp_path)
    assert sorted((c.row, c.col) for c in prep.grid.cells) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]
    assert prep.skipped_tiles == 3


def test_overlap_uses_the_stride(raster, tmp_path):
    # tile 64, overlap 16 -> stride 48. AOI cols 100..200, rows 10..60:
    # cols k with 48k < 200 and 48k + 64 > 100 -> k = 1..4; rows: 48k < 60 and 48k + 64 > 10 -> k = 0, 1
    prep = prepare_job(_spec(raster, Aoi(bbox=px_bbox(100, 10, 200, 60)), tile_size=64, overlap=16), tmp_path)
    assert sorted((c.row, c.col, c.col_off, c.row_off) for c in prep.grid.cells) == [
        (r, c, 48 * c, 48 * r) for r in (0, 1) for c in (1, 2, 3, 4)]


def test_build_grid_south_up_and_exact_tile_edges():
    # an AOI ending exactly on a tile edge does not pull in the next tile
    g = build_grid(box(0, 0, 128, 64), 1000, 1000, 64)
    assert sorted((c.row, c.col) for c in g.cells) == [(0, 0), (0, 1)]
    assert build_grid(box(2000, 2000, 2100, 2100), 1000, 1000, 64).cells == []


def test_rotated_geotransform_is_refused(tmp_path):
    rotated = Affine(10.0, 2.0, X0, 2.0, -10.0, Y0)
    path = write_raster(tmp_path / "rot.tif", width=64, height=64, transform=rotated)
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(path, Aoi(bbox=(X0, Y0 - 300, X0 + 300, Y0))), tmp_path)
    assert err.value.field == "raster_path" and "rotated" in err.value.message


@pytest.mark.parametrize("bands, field", [(BandMapping(nir=5), "bands.nir"), (BandMapping(red=9), "bands.red")])
def test_band_mapping_checked_against_band_count(raster, tmp_path, bands, field):
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(raster, Aoi(bbox=px_bbox(0, 0, 100, 100)), bands=bands), tmp_path)
    assert err.value.field == field and "4 band" in err.value.message


def test_prepare_errors_name_the_field(raster, tmp_path):
    aoi = Aoi(bbox=px_bbox(0, 0, 800, 600))
    with pytest.raises(ResourceExhausted, match="needs 20 tiles") as err:   # 800 x 600 px / 160 px -> 5 x 4
        prepare_job(_spec(raster, aoi, tile_size=160), tmp_path, RunOptions(max_tiles=10))
    assert err.value.field == "aoi"
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(raster, Aoi(bbox=(0, 0, 1, 1), crs="EPSG:999999")), tmp_path)
    assert err.value.field == "aoi.crs"
    with pytest.raises(NotFound) as err:
        prepare_job(_spec(tmp_path / "missing.tif", aoi), tmp_path)
    assert err.value.field == "raster_path"
    with pytest.raises(InvalidArgument) as err:
        prepare_job(JobSpec(aoi=aoi, raster_path=str(raster), stages=[StageConfig("segment", "no-such")]), tmp_path)
    assert err.value.field == "stages[segment].engine"
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(raster, aoi, stages=[StageConfig("segment", "test-bright", {"bogus": "1"})]), tmp_path)
    assert err.value.field == "stages[segment].params.bogus"
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(raster, Aoi(polygon_wkt="LINESTRING (0 0, 1 1)")), tmp_path)
    assert err.value.field == "aoi.polygon_wkt"


def test_all_nodata_aoi_is_refused_at_prepare(tmp_path):
    data = np.zeros((4, 128, 128), np.uint16)
    path = write_raster(tmp_path / "empty.tif", width=128, height=128, data=data)
    with pytest.raises(InvalidArgument, match="no valid pixels") as err:
        prepare_job(_spec(path, Aoi(bbox=px_bbox(0, 0, 128, 128))), tmp_path)
    assert err.value.field == "aoi"


def test_nan_pixels_of_a_float_raster_without_declared_nodata_are_invalid(tmp_path):
    """NaN is never a value: without a declared nodata it must still count as no data, not poison the stretch."""
    from groundsynth.tiling.source import SourceRaster

    rng = np.random.default_rng(0)
    data = rng.uniform(100, 3000, (4, 128, 128)).astype(np.float32)
    data[:, 64:, :] = np.nan
    path = write_raster(tmp_path / "nan.tif", width=128, height=128, data=data, dtype="float32", nodata=None)
    prep = prepare_job(_spec(path, Aoi(bbox=px_bbox(0, 0, 128, 128))), tmp_path)
    assert all(np.isfinite(prep.stretch.low)) and all(np.isfinite(prep.stretch.high))
    with SourceRaster(path, BandMapping()) as src:
        raw, valid = src.read_window(0, 0, 128, 128)
    assert valid[:64].all() and not valid[64:].any()


def test_huge_aoi_is_refused_without_building_millions_of_cells(tmp_path):
    """Submit validates synchronously: an AOI of millions of small tiles must fail fast with RESOURCE_EXHAUSTED,
    not build the whole grid first (seconds to minutes of a blocked RPC)."""
    import rasterio

    path = tmp_path / "huge.tif"      # 64000 x 64000 px, sparse: no block is written, the file stays tiny
    with rasterio.open(path, "w", driver="GTiff", width=64000, height=64000, count=4, dtype="uint16",
                       crs="EPSG:32618", transform=DEMO_TRANSFORM, nodata=0,
                       tiled=True, sparse_ok=True):
        pass
    aoi = Aoi(bbox=px_bbox(0, 0, 64000, 64000))
    with pytest.raises(ResourceExhausted, match="needs more than 100 tiles") as err:   # 2000 x 2000 cells
        prepare_job(_spec(path, aoi, tile_size=32), tmp_path, RunOptions(max_tiles=100))
    assert err.value.field == "aoi" and "100" in err.value.message
    grid = build_grid(box(0, 0, 64000, 64000), 64000, 64000, 32, max_cells=100)
    assert len(grid.cells) == 101 and grid.truncated


@pytest.mark.parametrize("aoi, field", [
    (Aoi(bbox=(X0, Y0 - 5000, 1e300, Y0)), "aoi.bbox"),
    (Aoi(bbox=(float("-inf"), Y0 - 5000, X0 + 5000, Y0)), "aoi.bbox"),
    (Aoi(polygon_wkt=f"POLYGON(({X0} {Y0 - 900}, inf {Y0 - 900}, {X0 + 900} {Y0}, {X0} {Y0 - 900}))"),
     "aoi.polygon_wkt"),
])
def test_non_finite_or_absurd_aoi_coordinates_are_invalid_argument(raster, tmp_path, aoi, field):
    with pytest.raises(InvalidArgument) as err:
        prepare_job(_spec(raster, aoi), tmp_path)
    assert err.value.field == field


def test_alpha_band_is_not_taken_for_nir(tmp_path):
    """An RGBA raster (e.g. exported from QGIS): with NIR on auto, band 4 is the alpha band, not NIR."""
    import rasterio
    from rasterio.enums import ColorInterp

    data = np.full((4, 64, 64), 120, np.uint8)
    data[3] = 255
    path = tmp_path / "rgba.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint8", crs="EPSG:32618",
                       transform=DEMO_TRANSFORM, photometric="RGB", alpha="YES") as dst:
        dst.write(data)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    prep = prepare_job(_spec(path, Aoi(bbox=px_bbox(0, 0, 64, 64))), tmp_path)
    assert not prep.has_nir and prep.raster["bands"] == [1, 2, 3]
    plain = write_raster(tmp_path / "rgbn.tif", width=64, height=64)       # 4 bands, band 4 undefined: NIR
    assert prepare_job(_spec(plain, Aoi(bbox=px_bbox(0, 0, 64, 64))), tmp_path).has_nir


def test_spatial_split_follows_the_shares_in_whole_blocks_and_is_deterministic():
    from groundsynth.tiling.splits import assign_splits

    cells = [(r, c) for r in range(20) for c in range(20)]
    a = assign_splits(cells, (0.8, 0.1, 0.1), 4, seed=3)
    assert a == assign_splits(list(reversed(cells)), (0.8, 0.1, 0.1), 4, seed=3)   # order does not matter
    assert a != assign_splits(cells, (0.8, 0.1, 0.1), 4, seed=4)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    want = {"train": 320, "val": 40, "test": 40}
    assert all(abs(counts[s] - want[s]) <= 16 for s in want), counts     # within one block of each share
    for r, c in cells:                                  # every 4 x 4 block lies in one split
        assert a[(r, c)] == a[(r // 4 * 4, c // 4 * 4)]
    assert set(assign_splits(cells, (1.0, 0.0, 0.0), 4, 0).values()) == {"train"}


def test_split_shares_are_validated():
    from groundsynth.request.spec import SplitOptions

    spec = JobSpec(aoi=Aoi(bbox=(0, 0, 1, 1)), raster_path="/x.tif")
    assert spec.normalised().split == SplitOptions(0.8, 0.1, 0.1, 4)
    spec.split = SplitOptions(0.5, 0.5, 0.5)
    with pytest.raises(InvalidArgument, match="split: expected non-negative"):
        spec.normalised()
    spec.split = SplitOptions(1.0, 0.0, 0.0, 0)
    assert spec.normalised().split.block_tiles == 4
    spec.split = SplitOptions(1.0, 0.0, 0.0, 65)
    with pytest.raises(InvalidArgument, match="split.block_tiles"):
        spec.normalised()
