"""Georeference round trip: every output tile's CRS, transform and bounds equal its source window's."""
import pytest
import rasterio

from groundsynth.pipeline.prepare import RunOptions
from groundsynth.pipeline.runner import run_job
from groundsynth.request.classes import gdal_colormap
from groundsynth.request.spec import Aoi, JobSpec, SynthesisOptions
from groundsynth.service.journal import Journal
from tests.helpers_engines import TEST_STAGES, test_engines
from tests.helpers_rasters import px_bbox, write_raster


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("georef")
    src = write_raster(root / "src.tif", width=200, height=150)
    ws = root / "ws"
    journal = Journal(ws / "journal.sqlite")
    # AOI past the right and bottom edges: edge tiles are read boundless; overlap 16 -> stride 48
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(30, 20, 260, 190)), raster_path=str(src), tile_size=64, overlap=16,
                   stages=TEST_STAGES(), synthesis=SynthesisOptions(variants=1), seed=5)
    with test_engines():
        state = run_job("g1", spec, ws, journal, lambda event: None, lambda: False, RunOptions(batch_size=3))
    assert state == "SUCCEEDED"
    yield src, ws / "jobs" / "g1", journal.tiles("g1")
    journal.close()


def test_every_output_tile_matches_its_source_window(job):
    src_path, job_dir, records = job
    with rasterio.open(src_path) as src:
        src_crs, src_transform = src.crs, src.transform
    assert len({r.tile_id for r in records}) == len(records) and records
    kinds = set()
    for rec in records:
        # the source window's bounds, by hand for this north-up raster: (left, bottom, right, top)
        a, x0, e, y0 = src_transform.a, src_transform.c, src_transform.e, src_transform.f
        expected = (x0 + a * rec.col_off, y0 + e * (rec.row_off + rec.height),
                    x0 + a * (rec.col_off + rec.width), y0 + e * rec.row_off)
        assert rec.bounds == pytest.approx(expected)
        for kind, rel in rec.artefacts.items():
            kinds.add((rec.kind, kind))
            with rasterio.open(job_dir / rel) as t:
                assert t.crs == src_crs, rel
                assert tuple(t.bounds) == pytest.approx(expected), rel
                assert t.transform.almost_equals(src_transform @ src_transform.translation(rec.col_off, rec.row_off))
                assert (t.width, t.height) == (rec.width, rec.height)
                assert tuple(t.transform.to_gdal()) == pytest.approx(rec.geotransform)
    assert kinds == {("real", "image"), ("real", "mask"), ("synthetic", "image"), ("synthetic", "mask"),
                     ("synthetic", "cond_mask")}


def test_synthetic_tiles_sit_on_their_source_tile(job):
    _, job_dir, records = job
    real = {r.tile_id: r for r in records if r.kind == "real"}
    syn = [r for r in records if r.kind == "synthetic"]
    assert syn
    for s in syn:
        assert s.bounds == real[s.source_tile_id].bounds and s.variant == 1


def test_image_and_mask_encoding(job):
    src_path, job_dir, records = job
    edge = next(r for r in records if r.kind == "real" and r.col_off + r.width > 200)   # sticks out on the right
    with rasterio.open(job_dir / edge.artefacts["image"]) as t:
        img = t.read()
        assert t.dtypes[0] == "uint8" and t.count == 4 and t.nodata == 0
        assert t.descriptions == ("red", "green", "blue", "nir")
    inside = 200 - edge.col_off
    assert (img[:, :, inside:] == 0).all()        # past the raster edge: nodata
    assert (img[:, :, :inside] > 0).all()         # valid pixels are 1..255
    with rasterio.open(job_dir / edge.artefacts["mask"]) as m:
        mask = m.read(1)
        assert m.nodata == 255 and m.colormap(1)[3] == gdal_colormap()[3]
    assert (mask[:, inside:] == 255).all() and (mask[:, :inside] < 7).all()


def test_vrt_with_overlapping_tiles_matches_every_tile(job):
    _, job_dir, records = job
    real = [r for r in records if r.kind == "real"]
    col0, row0 = min(r.col_off for r in real), min(r.row_off for r in real)
    for layer, art in (("real_image", "image"), ("real_mask", "mask")):
        with rasterio.open(job_dir / f"{layer}.vrt") as vrt:
            mosaic = vrt.read()
            assert vrt.bounds.left == pytest.approx(min(r.bounds[0] for r in real))
            assert vrt.bounds.top == pytest.approx(max(r.bounds[3] for r in real))
        for r in real:
            with rasterio.open(job_dir / r.artefacts[art]) as t:
                tile = t.read()
            y, x = r.row_off - row0, r.col_off - col0
            assert (mosaic[:, y:y + r.height, x:x + r.width] == tile).all(), (layer, r.tile_id)
