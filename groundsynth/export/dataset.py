"""Dataset export: a finished job's tiles as a training set, TorchGeo-ready COGs and the original's layout.

    export_dataset(job_dir, out_dir, splits=None, seed=None, filters=True) -> dict

Reads <job_dir>/report.json (per-tile entries with artefact paths), so it works on any finished
job dir. Writes, all atomically, the layout of groundsynth.export.layout: real tiles and each
synthetic variant in folders of their own (COGs), per-split index files, the PNG + CSV layout of
the original (ARAS400k), a STAC catalogue and export.json.

Split: the JOB's own spatial block split (groundsynth.tiling.splits, recorded per tile as
attributes["split"]; a synthetic tile takes its source tile's split). The synthesiser was fitted
on the job's train tiles, so re-splitting at export would leak: `splits`/`seed` are refused for
such jobs (submit a new job with another split instead). Tiles in the "buffer" split (val/test
tiles overlapping another split, overlap > 0) are left out, so no two splits share a pixel. Jobs
written before splits were recorded fall back to the old rule, a hash of (seed, source tile id),
with a warning.

Filters: tiles with attributes["dropped_by"] (dataset filters of the pipeline: "nodata",
"water", ...) are left out, with their synthetic derivatives, unless `filters=False`; nodata
real tiles (and anything made from them) are always left out. A synthetic tile's mask is its
"mask" artefact (the re-segmentation, like the original's predicted masks), else its
conditioning mask.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundsynth.artefacts.atomic import atomic_path, write_bytes, write_text
from groundsynth.export.layout import LAYOUT_VERSION, SPLITS, image_rel, mask_rel, split_file
from groundsynth.request.classes import CLASS_NAMES, composition
from groundsynth.request.errors import FailedPrecondition, InvalidArgument
from groundsynth.request.seeds import derive_seed

N_CAPTIONS = 5
CSV_COLUMNS = ("filename", "split", *CLASS_NAMES, *(f"caption_{i}" for i in range(1, N_CAPTIONS + 1)))
BUFFER = "buffer"


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
    """The legacy hash split of a real tile (jobs that did not record their own split)."""
    u = derive_seed(seed, "dataset-split", source_tile_id) / 2.0 ** 63
    train, val, _ = splits
    return "train" if u < train else "val" if u < train + val else "test"


def percentages(mask: np.ndarray) -> list[int]:
    """Integer percentage (0-100) of each class among the valid pixels, like the original's CSV."""
    return [int(round(100 * s)) for s in composition(mask)]


@dataclass
class Plan:
    """Which tiles go out, in which split, and why the others do not."""
    chosen: list[tuple[dict, str]] = field(default_factory=list)      # (report tile entry, split)
    filtered: Counter = field(default_factory=Counter)               # filter name -> tiles it rejected
    filtered_derived: int = 0        # synthetic tiles left out because their source tile was filtered
    buffer: int = 0                  # tiles in the buffer split (overlap between splits)
    split_source: str = "job"
    split_rule: str = ""
    fractions: tuple[float, ...] = ()
    seed: int = 0
    warnings: list[str] = field(default_factory=list)


def _dropped(t: dict) -> list[str]:
    return [s for s in str((t.get("attributes") or {}).get("dropped_by") or "").split(",") if s.strip()]


def select_tiles(tiles: Sequence[dict], filters: bool, plan: Plan) -> list[dict]:
    """Valid tiles (nodata real tiles and their derivatives out; dataset filters applied when `filters`)."""
    real_ok, real_filtered = set(), set()
    for t in tiles:
        if t["kind"] == "real" and not t.get("nodata"):
            if filters and _dropped(t):
                real_filtered.add(t["tile_id"])
                plan.filtered.update(_dropped(t))
            else:
                real_ok.add(t["tile_id"])
    chosen = []
    for t in tiles:
        if t["kind"] == "real":
            if t["tile_id"] in real_ok:
                chosen.append(t)
        elif t.get("source_tile_id") in real_filtered:
            plan.filtered_derived += 1
        elif t.get("source_tile_id") in real_ok and not t.get("nodata"):
            if filters and _dropped(t):
                plan.filtered.update(_dropped(t))
            else:
                chosen.append(t)
    return chosen


def assign(doc: dict, chosen: Sequence[dict], splits: Sequence[float] | None, seed: int | None, plan: Plan) -> None:
    """The split of every chosen tile: the job's own, or the legacy hash rule for older jobs."""
    real = {t["tile_id"]: (t.get("attributes") or {}).get("split") for t in chosen if t["kind"] == "real"}
    spec = doc.get("spec") or {}
    if any(real.values()):
        if splits is not None or seed is not None:
            raise InvalidArgument(
                "this job has its own spatial split, fixed when it ran (the synthesiser was fitted on its train "
                "tiles), so re-splitting at export would leak: leave splits/seed out, or submit a new job with "
                "another split (JobSpec.split)", "splits" if splits is not None else "seed")
        missing = sorted(k for k, v in real.items() if not v)
        if missing:
            raise FailedPrecondition(f"tiles {', '.join(missing[:3])} have no recorded split", "job_dir")
        s = spec.get("split") or {}
        plan.fractions = tuple(float(s.get(k, 0.0)) for k in SPLITS)
        plan.seed = int(spec.get("seed", 0))
        plan.split_rule = (f"the job's spatial block split: blocks of {s.get('block_tiles', '?')} x "
                           f"{s.get('block_tiles', '?')} tiles dealt to train/val/test by the job seed; a tile sharing "
                           "pixels with a tile of a higher split (train < val < test) is in the buffer split and "
                           "left out")
        of = dict(real)
    else:
        plan.fractions, plan.seed, plan.split_source = check_splits(splits or (0.8, 0.1, 0.1)), int(seed or 0), "hash"
        if not 0 <= plan.seed < 2 ** 63:
            raise InvalidArgument(f"expected 0 <= seed < 2**63, got {plan.seed}", "seed")
        plan.split_rule = "by source real tile: blake2b(seed, 'dataset-split', tile id) -> [0, 1) -> train/val/test"
        plan.warnings.append("this job did not record its split (made before spatial splits): tiles are split by a "
                             "hash of their id, so neighbouring or overlapping tiles can land in different splits; "
                             "rerun the job for a spatial split")
        of = {k: split_of(k, plan.seed, plan.fractions) for k in real}
    for t in chosen:
        split = of.get(t["tile_id"] if t["kind"] == "real" else t.get("source_tile_id", ""))
        if split == BUFFER:
            plan.buffer += 1
        elif split in SPLITS:
            plan.chosen.append((t, split))


def copy_cog(src: Path, dest: Path, mask: bool) -> int:
    """Byte copy of a COG tile, or a COG rewrite of an older plain GeoTIFF; returns its band count."""
    import rasterio

    from groundsynth.artefacts.tiles import write_image_data, write_mask_tile

    with rasterio.open(src) as ds:
        count = ds.count
        if ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
            data, transform, crs = ds.read(), ds.transform, ds.crs
        else:
            data = None
    if data is None:
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    elif mask:
        write_mask_tile(dest, data[0], transform, crs)
    else:
        write_image_data(dest, data, transform, crs)
    return count


def _artefact(job_dir: Path, t: dict, kinds: Sequence[str], what: str) -> Path:
    art = t.get("artefacts") or {}
    rel = next((art[k] for k in kinds if art.get(k)), None)
    if not rel or not (job_dir / rel).exists():
        hint = " (did the segment stage run?)" if what == "mask" else ""
        raise FailedPrecondition(f"tile {t['tile_id']}: no {what} artefact {rel or ''} in {job_dir}{hint}", "job_dir")
    return job_dir / rel


def write_tile(job_dir: Path, out_dir: Path, t: dict, split: str) -> tuple[list[Any], int]:
    """PNGs, COGs of one tile; returns its CSV row and the image's band count."""
    from groundsynth.report.images import palette_png_bytes, png_bytes, read_mask, read_rgb8

    tid, variant = t["tile_id"], int(t.get("variant", 0))
    image, mask_path = _artefact(job_dir, t, ("image",), "image"), _artefact(job_dir, t, ("mask", "cond_mask"), "mask")
    mask = read_mask(mask_path)
    write_bytes(out_dir / "images" / f"{tid}.png", png_bytes(read_rgb8(image)))
    write_bytes(out_dir / "masks" / f"{tid}.png", palette_png_bytes(mask))
    bands = copy_cog(image, out_dir / image_rel(t["kind"], variant, tid), mask=False)
    copy_cog(mask_path, out_dir / mask_rel(t["kind"], variant, tid), mask=True)
    caps = list(t.get("captions") or [])[:N_CAPTIONS]
    caps += [""] * (N_CAPTIONS - len(caps))
    return [f"{tid}.png", split, *percentages(mask), *caps], bands


def export_dataset(job_dir: str | Path, out_dir: str | Path, splits: Sequence[float] | None = None,
                   seed: int | None = None, filters: bool = True) -> dict:
    from groundsynth.export.catalog import record_from_entry, write_dataset_catalog
    from groundsynth.report import read_report

    job_dir, out_dir = Path(job_dir), Path(out_dir)
    if splits is not None:
        check_splits(splits)
    if out_dir.resolve() == job_dir.resolve():
        raise InvalidArgument("write the dataset to a directory other than the job directory", "out")
    doc = read_report(job_dir)
    plan = Plan()
    assign(doc, select_tiles(doc.get("tiles") or [], filters, plan), splits, seed, plan)
    if not plan.chosen:
        raise FailedPrecondition(f"{job_dir} has no valid real tiles to export"
                                 + (" (all filtered or in the buffer split)" if plan.filtered or plan.buffer else ""),
                                 "job_dir")
    rows: list[list[Any]] = []
    bands: dict[str, int] = {}
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    kinds: Counter = Counter()
    for t, split in sorted(plan.chosen, key=lambda p: p[0]["tile_id"]):
        row, bands[t["tile_id"]] = write_tile(job_dir, out_dir, t, split)
        rows.append(row)
        by_split[split].append(image_rel(t["kind"], int(t.get("variant", 0)), t["tile_id"]))
        kinds[t["kind"] if t["kind"] == "real" else f"synthetic_v{int(t.get('variant', 0))}"] += 1
    for s, paths in by_split.items():
        if not paths:
            plan.warnings.append(f"the {s} split is empty: the job dealt its blocks of tiles to other splits; for "
                                 "a small AOI submit the job with smaller split.block_tiles")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([CSV_COLUMNS, *rows])
    write_text(out_dir / "dataset.csv", buf.getvalue())
    for s, paths in by_split.items():
        write_text(split_file(out_dir, s), "".join(f"{p}\n" for p in paths))
    result = {"job_id": doc.get("job_id", ""), "out_dir": str(out_dir), "csv": str(out_dir / "dataset.csv"),
              "layout_version": LAYOUT_VERSION, "images": len(rows), "real": kinds["real"],
              "synthetic": sum(v for k, v in kinds.items() if k != "real"), "kinds": dict(sorted(kinds.items())),
              "splits": {s: len(p) for s, p in by_split.items()}, "split_source": plan.split_source,
              "fractions": dict(zip(SPLITS, plan.fractions, strict=True)), "seed": plan.seed,
              "split_rule": plan.split_rule, "buffer": plan.buffer, "filters": bool(filters),
              "filtered": dict(sorted(plan.filtered.items())), "filtered_derived": plan.filtered_derived,
              "warnings": plan.warnings}
    grid_crs = doc.get("crs") or ""
    exported = [(record_from_entry(t, grid_crs), s) for t, s in plan.chosen]
    result["stac"] = str(write_dataset_catalog(out_dir, result["job_id"], exported, grid_crs, bands, result))
    write_text(out_dir / "export.json", json.dumps(result, indent=1))
    return result
