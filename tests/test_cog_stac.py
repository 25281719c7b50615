"""Tiles are Cloud-Optimised GeoTIFFs, mosaics get overviews, each job writes a valid STAC collection."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from groundsynth.artefacts.tiles import read_image_tile, read_mask_tile, write_image_tile, write_mask_tile
from groundsynth.artefacts.vrt import VrtTile, build_overviews, overview_settings, ovr_path, write_vrt
from groundsynth.request.classes import CLASS_COLORS
from tests.stac_offline import offline_validation, validate_tree

T = Affine(10, 0, 435730.0, 0, -10, 4179460.0)


@pytest.mark.parametrize("size", [32, 256, 600])
def test_tiles_are_valid_cogs_that_keep_colours_bands_and_nodata(tmp_path, size):
    rng = np.random.default_rng(0)
    image = rng.random((4, size, size)).astype(np.float32)
    valid = np.ones((size, size), bool)
    valid[:3] = False
    mask = rng.integers(0, 7, (size, size)).astype(np.uint8)
    mask[:3] = 255
    write_image_tile(tmp_path / "i.tif", image, valid, T, "EPSG:32618")
    write_mask_tile(tmp_path / "m.tif", mask, T, "EPSG:32618")
    for name in ("i.tif", "m.tif"):
        ok, errors, _ = cog_validate(str(tmp_path / name), quiet=True)
        assert ok, errors
    with rasterio.open(tmp_path / "i.tif") as src:
        assert [c.name for c in src.colorinterp] == ["red", "green", "blue", "undefined"]
        assert src.descriptions == ("red", "green", "blue", "nir") and src.nodata == 0
        assert src.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
        assert (src.overviews(1) != []) == (size > 256)          # overviews inside tiles bigger than a block
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.colorinterp[0].name == "palette" and src.nodata == 255 and src.descriptions == ("class",)
        cmap = src.colormap(1)
        assert all(cmap[i][:3] == CLASS_COLORS[i] for i in range(7)) and cmap[255][3] == 0
        if size > 256:                                           # mask overviews stay class indices
            ov = src.read(1, out_shape=(size // 2, size // 2))
            assert set(np.unique(ov)) <= set(range(7)) | {255}
    back, v = read_image_tile(tmp_path / "i.tif")
    assert (v == valid).all() and np.abs(back - np.where(valid, image, 0)).max() <= 0.5 / 254 + 1e-6
    assert (read_mask_tile(tmp_path / "m.tif") == mask).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.tif", "m.tif"]       # atomic: no temp left


def _mosaic(tmp: Path, n: int, size: int = 128) -> tuple[list[VrtTile], list[VrtTile]]:
    rng = np.random.default_rng(1)
    imgs, masks = [], []
    for r in range(n):
        for c in range(n):
            t = T * Affine.translation(c * size, r * size)
            write_image_tile(tmp / f"img/{r}_{c}.tif", rng.random((4, size, size)).astype(np.float32),
                             np.ones((size, size), bool), t, "EPSG:32618")
            write_mask_tile(tmp / f"mask/{r}_{c}.tif", np.full((size, size), (r + c) % 7, np.uint8), t, "EPSG:32618")
            imgs.append(VrtTile(f"img/{r}_{c}.tif", c * size, r * size, size, size))
            masks.append(VrtTile(f"mask/{r}_{c}.tif", c * size, r * size, size, size))
    return imgs, masks


def test_mosaic_overviews_are_external_ovr_files_that_readers_use(tmp_path):
    from rasterio.crs import CRS

    imgs, masks = _mosaic(tmp_path, 6)
    wkt = CRS.from_epsg(32618).to_wkt()
    write_vrt(tmp_path / "img.vrt", imgs, T, wkt, ("red", "green", "blue", "nir"), 0,
              colorinterp=("Red", "Green", "Blue", "Undefined"))
    write_vrt(tmp_path / "mask.vrt", masks, T, wkt, ("class",), 255, palette=True)
    assert build_overviews(tmp_path / "img.vrt") == [2]            # 768 px mosaic: one level of 384 px
    assert build_overviews(tmp_path / "mask.vrt", palette=True) == [2]
    with rasterio.open(tmp_path / "img.vrt") as src:
        assert src.overviews(1) == [2] and src.colorinterp[0].name == "red"
    with rasterio.open(tmp_path / "mask.vrt") as src:
        assert src.overviews(1) == [2]
        ov = src.read(1, out_shape=(384, 384))
        assert ov[0, 0] == 0 and ov[-1, -1] == (5 + 5) % 7      # mode resampling keeps the classes
    with rasterio.open(ovr_path(tmp_path / "mask.vrt")) as ovr:
        assert ovr.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert not list(tmp_path.glob(".tmp-*"))
    before = (tmp_path / "img.vrt").stat().st_mtime_ns
    write_vrt(tmp_path / "img.vrt", imgs, T, wkt, ("red", "green", "blue", "nir"), 0,
              colorinterp=("Red", "Green", "Blue", "Undefined"))
    assert ovr_path(tmp_path / "img.vrt").exists()                # the same mosaic keeps its overviews
    assert (tmp_path / "img.vrt").stat().st_mtime_ns == before     # and is not rewritten
    write_vrt(tmp_path / "img.vrt", imgs[:4], T, wkt, ("red", "green", "blue", "nir"), 0)
    assert not ovr_path(tmp_path / "img.vrt").exists()            # a rewritten mosaic drops stale overviews
    small, _ = _mosaic(tmp_path / "small", 2)
    write_vrt(tmp_path / "small/s.vrt", small, T, wkt, ("red", "green", "blue", "nir"), 0)
    assert build_overviews(tmp_path / "small/s.vrt") == [] and not ovr_path(tmp_path / "small/s.vrt").exists()


def test_a_job_writes_cog_tiles_overviews_and_a_valid_stac_collection(tmp_path, monkeypatch):
    import pystac

    from groundsynth.pipeline import outputs
    from groundsynth.pipeline.prepare import RunOptions
    from groundsynth.pipeline.runner import run_job
    from groundsynth.request.spec import Aoi, JobSpec, StageConfig, SynthesisOptions
    from groundsynth.service.journal import Journal
    from tests.helpers_engines import TestBright, test_engines
    from tests.helpers_rasters import px_bbox, write_raster

    src = write_raster(tmp_path / "src.tif", width=640, height=576, seed=3)
    stages = [StageConfig("segment", TestBright.name), StageConfig("synthesise", "test-palette"),
              StageConfig("caption", "test-count"), StageConfig("ground", "test-agree")]
    spec = JobSpec(aoi=Aoi(bbox=px_bbox(0, 0, 640, 576)), raster_path=str(src), tile_size=64, seed=2,
                   stages=stages, synthesis=SynthesisOptions(variants=1), name="stac job")
    journal = Journal(tmp_path / "ws" / "journal.sqlite")
    order: list[str] = []                         # overviews built and synthetic tiles recorded, in turn
    build = outputs.build_overviews
    monkeypatch.setattr(outputs, "build_overviews", lambda vrt, **kw: order.append(Path(vrt).stem) or build(vrt, **kw))

    def emit(e) -> None:
        if e.kind == "tile" and e.record.kind == "synthetic":
            order.append("synthetic tile")

    try:
        with test_engines():
            assert run_job("stacjob", spec, tmp_path / "ws", journal, emit, lambda: False,
                           RunOptions(batch_size=45)) == "SUCCEEDED"
        records = journal.tiles("stacjob")
    finally:
        journal.close()
    job = tmp_path / "ws" / "jobs" / "stacjob"
    built = [o for o in order if o != "synthetic tile"]
    assert sorted(built) == sorted(p.stem for p in job.glob("*.vrt"))          # each mosaic once
    first_synthetic = order.index("synthetic tile")
    assert set(order[:first_synthetic]) == {"real_image", "real_mask"}        # beside the fit, before synthesis
    tifs = list(job.rglob("*.tif"))
    assert len(tifs) == 90 * 2 + 90 * 3 and all(cog_validate(str(p), quiet=True)[0] for p in tifs[:40])
    for layer in ("real_image", "real_mask", "synthetic_image_v1", "synthetic_mask_v1", "synthetic_cond_mask_v1"):
        with rasterio.open(job / f"{layer}.vrt") as vrt:
            assert vrt.overviews(1) == [2], layer                 # 640 x 576 px mosaics
    assert validate_tree(job / "stac" / "collection.json") == 1 + len(records)
    coll = pystac.read_file(str(job / "stac" / "collection.json"))
    assert coll.extra_fields["groundsynth:spec"]["name"] == "stac job"
    assert coll.extra_fields["groundsynth:summary"]["tiles_real"] == 90
    items = {i.id: i for i in coll.get_items()}
    assert set(items) == {r.tile_id for r in records}
    rec = next(r for r in records if r.kind == "synthetic")
    item = items[rec.tile_id]
    assert item.properties["groundsynth:split"] == rec.attributes["split"]
    assert item.properties["groundsynth:source_tile"] == rec.source_tile_id
    assert item.properties["groundsynth:metrics"] == pytest.approx(rec.metrics)
    assert item.properties["groundsynth:captions"] == rec.captions
    assert item.properties["label:type"] == "raster" and item.properties["proj:code"] == "EPSG:32618"
    assert item.properties["proj:shape"] == [64, 64]
    assert set(item.assets) == {"image", "mask", "cond_mask"}
    assert Path(item.assets["image"].get_absolute_href()).resolve() == (job / rec.artefacts["image"]).resolve()
    assert [b["name"] for b in item.assets["image"].extra_fields["bands"]] == ["red", "green", "blue", "nir"]
    assert item.assets["mask"].media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    lon, lat = item.geometry["coordinates"][0][0]
    assert -76 < lon < -74 and 37 < lat < 38.5                  # UTM 18N demo georeference, in WGS 84
    doc = json.loads((job / "stac" / rec.tile_id / f"{rec.tile_id}.json").read_text())
    doc["assets"]["mask"]["classification:classes"][0]["color_hint"] = "green"
    with offline_validation(), pytest.raises(pystac.errors.STACValidationError):
        pystac.validation.validate_dict(doc)                     # the validator does check the extensions


def test_overview_settings_hold_one_row_of_tiles_within_the_cap():
    row = 40 * 256 * 256 * 4                                   # a mosaic 40 tiles of 256 px wide, 4 bands
    s = overview_settings(40 * 256, 256, 256 * 256 * 4, cache_cap_mb=64)
    assert s["GDAL_MAX_DATASET_POOL_SIZE"] >= 40               # every tile of a row stays open
    assert 1.5 * row <= s["GDAL_CACHEMAX"] <= 64 << 20          # and cached once decoded, under the cap
    assert s["GDAL_OVR_CHUNKYSIZE"] < 256                       # a strip of rows, not GDAL's default
    assert overview_settings(400 * 256, 256, 256 * 256 * 4, cache_cap_mb=64)["GDAL_CACHEMAX"] == 64 << 20
    assert overview_settings(2 * 256, 256, 256 * 256 * 4, cache_cap_mb=64)["GDAL_CACHEMAX"] == 16 << 20
    assert overview_settings(40 * 256, 256, 256 * 256 * 4, cache_cap_mb=3)["GDAL_CACHEMAX"] == 3 << 20  # the job's cap
