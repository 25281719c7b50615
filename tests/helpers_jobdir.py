"""A small finished job directory built by hand (for report and export tests).

Grid: 2 x 3 real tiles of 32 x 32 px on the demo georeference (EPSG:32618, 10 m);
tile r0001_c0002 is a nodata tile. Every other real tile has one synthetic
variant (_v1) whose conditioning mask is the real mask and whose own mask
differs in a known way, and a label tile that differs from the real mask in a
known way. Records carry hand-set metrics so aggregates can be checked exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine

from groundsynth.artefacts.records import TileRecord, real_tile_id, synthetic_tile_id
from groundsynth.artefacts.tiles import write_image_tile, write_mask_tile
from groundsynth.request.classes import NODATA, composition
from groundsynth.request.spec import Aoi, JobSpec, StageConfig

CRS = "EPSG:32618"
X0, Y0, PX, SIZE = 435730.0, 4179460.0, 10.0, 32
TREE, SHRUB, GRASS, CROP, BUILT, BARREN, WATER = range(7)
NODATA_TILE = (1, 2)


def tile_mask(row: int, col: int) -> np.ndarray:
    """Left part class (row*3+col) % 7, right third Water (Water tiles get a Tree strip)."""
    base = (row * 3 + col) % 7
    m = np.full((SIZE, SIZE), base, dtype=np.uint8)
    m[:, SIZE * 2 // 3:] = WATER if base != WATER else TREE
    return m


def image_for(mask: np.ndarray) -> np.ndarray:
    """A 4-band float image whose colour tells the class (brighter = higher class index)."""
    img = np.zeros((4, SIZE, SIZE), dtype=np.float32)
    for b in range(4):
        img[b] = (mask.astype(np.float32) + 0.5) / 7 * (0.6 + 0.1 * b)
    return img


def make_spec(**kw) -> JobSpec:
    bbox = (X0, Y0 - 2 * SIZE * PX, X0 + 3 * SIZE * PX, Y0)
    return JobSpec(aoi=Aoi(bbox=bbox, crs=CRS), raster_path="/data/scene.tif", tile_size=SIZE, seed=7,
                   stages=[StageConfig("segment", "spectral"), StageConfig("synthesise", "exemplar"),
                           StageConfig("caption", "composition", {"n_captions": "5"}),
                           StageConfig("ground", "composition")], name="test job", **kw).normalised()


def build_job_dir(job_dir: Path, with_labels: bool = True, with_synthetic: bool = True) -> list[TileRecord]:
    """Write the tile GeoTIFFs under job_dir and return the records (report not written)."""
    from groundsynth.engines.builtin.composition_caption import CompositionCaptioner

    captioner = CompositionCaptioner()
    records: list[TileRecord] = []
    for row in range(2):
        for col in range(3):
            tid = real_tile_id(row, col)
            transform = Affine(PX, 0, X0 + col * SIZE * PX, 0, -PX, Y0 - row * SIZE * PX)
            bounds = (transform.c, transform.f - SIZE * PX, transform.c + SIZE * PX, transform.f)
            common = dict(row=row, col=col, crs=CRS, bounds=bounds, geotransform=transform.to_gdal(),
                          width=SIZE, height=SIZE, col_off=col * SIZE, row_off=row * SIZE)
            rec = TileRecord(tile_id=tid, kind="real", **common)
            if (row, col) == NODATA_TILE:
                mask = np.full((SIZE, SIZE), NODATA, np.uint8)
                rec.nodata = True
                valid = np.zeros((SIZE, SIZE), bool)
            else:
                mask = tile_mask(row, col)
                valid = np.ones((SIZE, SIZE), bool)
            rec.artefacts = {"image": f"real/image/{tid}.tif", "mask": f"real/mask/{tid}.tif"}
            write_image_tile(job_dir / rec.artefacts["image"], image_for(np.where(valid, mask, 0)), valid,
                             transform, CRS)
            write_mask_tile(job_dir / rec.artefacts["mask"], mask, transform, CRS)
            if with_labels:
                labels = mask.copy()
                if not rec.nodata:
                    labels[:4, :] = GRASS          # labels disagree on the top 4 rows
                rec.artefacts["labels"] = f"real/labels/{tid}.tif"
                write_mask_tile(job_dir / rec.artefacts["labels"], labels, transform, CRS)
            rec.composition = composition(mask).tolist()
            if not rec.nodata:
                rec.captions = captioner.caption_mask(mask, 100 + row * 3 + col)
                rec.metrics = {"grounding": 90.0 + row * 3 + col, "resegment_agreement": 1.0}
            records.append(rec)
            if with_synthetic and not rec.nodata:
                sid = synthetic_tile_id(row, col, 1)
                smask = mask.copy()
                smask[:, :8] = CROP                # the synthetic image re-segments with crop on the left
                srec = TileRecord(tile_id=sid, kind="synthetic", variant=1, source_tile_id=tid, **common)
                srec.artefacts = {"image": f"synthetic/image/{sid}.tif", "mask": f"synthetic/mask/{sid}.tif",
                                  "cond_mask": f"synthetic/cond_mask/{sid}.tif"}
                write_image_tile(job_dir / srec.artefacts["image"], image_for(smask), valid, transform, CRS)
                write_mask_tile(job_dir / srec.artefacts["mask"], smask, transform, CRS)
                write_mask_tile(job_dir / srec.artefacts["cond_mask"], mask, transform, CRS)
                srec.composition = composition(smask).tolist()
                srec.captions = captioner.caption_mask(smask, 200 + row * 3 + col)
                srec.metrics = {"grounding": 80.0, "fidelity_miou": 0.5 + 0.1 * col, "fidelity_iou_water": 1.0}
                records.append(srec)
    return records


def context(**kw) -> dict:
    ctx = {"job_id": "job-test", "engines": {"caption": {"name": "composition", "params": {"n_captions": 5}}},
           "set_metrics": {}, "stretch": {"low": [0, 0, 0, 0], "high": [1, 1, 1, 1]},
           "timings": {"segment": 0.5, "total": 2.0}, "raster": {"width": 96, "height": 64}, "seed": 7}
    ctx.update(kw)
    return ctx
