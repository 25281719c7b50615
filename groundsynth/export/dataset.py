"""Dataset export: a finished job's tiles as a training set, in the original's layout and as GeoTIFFs.

    export_dataset(job_dir, out_dir, splits=(0.8, 0.1, 0.1), seed=0) -> dict

Reads <job_dir>/report.json (per-tile entries with artefact paths), so it
works on any finished job dir. Writes, all atomically:

    out/images/<tile_id>.png          RGB uint8 (bands 1-3 of the image GeoTIFF, the job's one stretch)
    out/masks/<tile_id>.png           uint8 class index 0..6, 255 nodata; PNG palette with the 7 colours
    out/dataset.csv                   filename,split,Tree,Shrub,Grass,Crop,Built-up,Barren,Water,
                                      caption_1,...,caption_5   (one row per image; integer percentages)
    out/geotiff/images/<tile_id>.tif  byte copy of the image GeoTIFF (R, G, B, NIR; georeferenced)
    out/geotiff/masks/<tile_id>.tif   byte copy of the mask GeoTIFF (georeferenced, colour table)
    out/export.json                   job id, seed, split fractions, counts (how the split was made)

Split: by REAL tile, from a hash of (seed, source tile id): a synthetic tile
goes to its source tile's split, so no scene content leaks between train and
test. Same job + seed -> same split. Nodata real tiles (and anything derived
from them) are left out. A synthetic tile's mask is its "mask" artefact (the
re-segmentation, like the original's predicted masks), else its conditioning mask.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from groundsynth.artefacts.atomic import atomic_path, write_bytes, write_text
from groundsynth.request.classes import CLASS_NAMES, composition
from groundsynth.request.errors import FailedPrecondition, InvalidArgument
from groundsynth.request.seeds import derive_seed

SPLITS = ("train", "val", "test")
N_CAPTIONS = 5
CSV_COLUMNS = ("filename", "split", *CLASS_NAMES, *(f"caption_{i}" for i in range(1, N_CAPTIONS + 1)))


def check_splits(splits: Sequence[float]) -> tuple[float, float, float]:
    try:
        vals = tuple(float(s) for s in splits)
    except (TypeError, ValueError):
        raise InvalidArgument(f"expected three numbers train,val,test, got {splits!r}", "splits") from None
    if len(vals) != 3 or any(v < 0 or not np.isfinite(v) for v in vals):
        raise InvalidArgument(f"expected three non-negative fractions train,val,test, got {splits!r}", "splits")
    if abs(sum(vals) - 1.0) > 1e-6:
        raise InvalidArgument(f"fractions must add up to 1, got {sum(vals):g}", "splits")
    return vals[0], vals[1], vals[2]


def split_of(source_tile_id: str, seed: int, splits: Sequence[float]) -> str:
    """The split of a real tile (and of every synthetic tile made from it)."""
    u = derive_seed(seed, "dataset-split", source_tile_id) / 2.0 ** 63
    train, val, _ = splits
    return "train" if u < train else "val" if u < train + val else "test"


def percentages(mask: np.ndarray) -> list[int]:
    """Integer percentage (0-100) of each class among the valid pixels, like the original's CSV."""
    return [int(round(100 * s)) for s in composition(mask)]


def _copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def export_dataset(job_dir: str | Path, out_dir: str | Path, splits: Sequence[float] = (0.8, 0.1, 0.1),
                   seed: int = 0) -> dict:
    from groundsynth.report import read_report
    from groundsynth.report.images import palette_png_bytes, png_bytes, read_mask, read_rgb8

    job_dir, out_dir = Path(job_dir), Path(out_dir)
    fractions = check_splits(splits)
    if not 0 <= int(seed) < 2 ** 63:
        raise InvalidArgument(f"expected 0 <= seed < 2**63, got {seed}", "seed")
    if out_dir.resolve() == job_dir.resolve():
        raise InvalidArgument("write the dataset to a directory other than the job directory", "out")
    doc = read_report(job_dir)
    tiles = doc.get("tiles") or []
    real_ok = {t["tile_id"] for t in tiles if t["kind"] == "real" and not t.get("nodata")}
    chosen = [t for t in tiles if (t["kind"] == "real" and t["tile_id"] in real_ok)
              or (t["kind"] == "synthetic" and t.get("source_tile_id") in real_ok and not t.get("nodata"))]
    if not chosen:
        raise FailedPrecondition(f"{job_dir} has no valid real tiles to export", "job_dir")

    rows = []
    counts = {s: 0 for s in SPLITS}
    kinds = {"real": 0, "synthetic": 0}
    for t in sorted(chosen, key=lambda t: t["tile_id"]):
        tid = t["tile_id"]
        art = t.get("artefacts") or {}
        image_rel = art.get("image")
        mask_rel = art.get("mask") or art.get("cond_mask")
        if not image_rel or not (job_dir / image_rel).exists():
            raise FailedPrecondition(f"tile {tid}: image artefact {image_rel!r} is missing in {job_dir}", "job_dir")
        if not mask_rel or not (job_dir / mask_rel).exists():
            raise FailedPrecondition(f"tile {tid}: no mask artefact in {job_dir} (did the segment stage run?)",
                                     "job_dir")
        split = split_of(t["source_tile_id"] if t["kind"] == "synthetic" else tid, seed, fractions)
        mask = read_mask(job_dir / mask_rel)
        write_bytes(out_dir / "images" / f"{tid}.png", png_bytes(read_rgb8(job_dir / image_rel)))
        write_bytes(out_dir / "masks" / f"{tid}.png", palette_png_bytes(mask))
        _copy(job_dir / image_rel, out_dir / "geotiff" / "images" / f"{tid}.tif")
        _copy(job_dir / mask_rel, out_dir / "geotiff" / "masks" / f"{tid}.tif")
        caps = list(t.get("captions") or [])[:N_CAPTIONS]
        caps += [""] * (N_CAPTIONS - len(caps))
        rows.append([f"{tid}.png", split, *percentages(mask), *caps])
        counts[split] += 1
        kinds[t["kind"]] += 1

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    write_text(out_dir / "dataset.csv", buf.getvalue())
    result = {"job_id": doc.get("job_id", ""), "out_dir": str(out_dir), "csv": str(out_dir / "dataset.csv"),
              "images": len(rows), "real": kinds["real"], "synthetic": kinds["synthetic"], "splits": counts,
              "fractions": dict(zip(SPLITS, fractions, strict=True)), "seed": int(seed),
              "split_rule": "by source real tile: blake2b(seed, 'dataset-split', tile id) -> [0, 1) -> train/val/test"}
    write_text(out_dir / "export.json", json.dumps(result, indent=1))
    return result
