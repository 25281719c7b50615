"""Real tiles: read each cell of the grid through the job stretch, segment, caption, ground, write, record.

The head (`run_real`) cuts the cells not yet in the journal into batches and hands them to the job's
executor; a worker (`compute_real`) computes a batch and writes its files; the head records the
returned records in order. Tiles the journal already holds are skipped (resume). A tile with less
than `min_valid` valid pixels is a nodata tile: flagged, masked 255, not synthesised. With a label
raster, its classes are cut to every tile (`real/labels/`) and, without a segment stage, serve as the
tile's mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from groundsynth.artefacts.records import TileRecord, real_tile_id
from groundsynth.artefacts.tiles import to_uint8, write_image_tile, write_mask_tile
from groundsynth.engines.base import TileInput
from groundsynth.pipeline.context import RealTask, TaskResult
from groundsynth.pipeline.job_run import JobRun
from groundsynth.pipeline.outputs import maybe_refresh_layers
from groundsynth.pipeline.tile_cache import TILES
from groundsynth.pipeline.worker_job import WorkerJob
from groundsynth.request.classes import NODATA
from groundsynth.tiling.grid import Cell

REAL_STAGES = ("segment", "caption", "ground")


# ---------------------------------------------------------------- head

def run_real(run: JobRun) -> bool:
    """Process the real tiles not yet in the journal; False if cancelled."""
    done = run.journal.tile_ids(run.job_id, "real")
    pending = [c for c in run.prep.grid.cells if real_tile_id(c.row, c.col) not in done]
    tasks = [RealTask(tuple(cells), tuple(run.prep.splits[(c.row, c.col)] for c in cells))
             for cells in run.batches(pending)]
    n_done = [run.real_total - len(pending)]

    def commit(task: RealTask, result: TaskResult) -> None:
        run.record_all(result)
        n_done[0] += len(task.cells)
        for stage in REAL_STAGES:
            if stage in run.stages:
                total = run.real_total + (run.syn_total if stage != "segment" else 0)
                run.progress(stage, n_done[0], total)
        maybe_refresh_layers(run)

    return run.execute(tasks, commit)


# ---------------------------------------------------------------- worker

def _read_batch(w: WorkerJob, task: RealTask
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray | None]]:
    images, valids, labels, swirs = [], [], [], []
    src = w.src
    stretch = w.stretch
    with w.timer("read"):
        for c in task.cells:
            raw, valid = src.read_window(c.col_off, c.row_off, c.width, c.height)
            img = stretch.apply(raw)
            img[:, ~valid] = 0
            images.append(img[:src.n_main])              # R, G, B(, NIR): the tile image
            swirs.append(img[src.n_main:] if len(src.swir_indexes) else None)   # SWIR: for the segmenter only
            valids.append(valid)
    if w.ctx.label_raster_path:
        from groundsynth.tiling.labels import read_labels

        with w.timer("labels"):
            for c in task.cells:
                labels.append(read_labels(w.ctx.label_raster_path, src.crs, c.transform(w.transform),
                                          (c.height, c.width)))
    return images, valids, labels, swirs


def _segment(w: WorkerJob, ids: Sequence[str], images: Sequence[np.ndarray], valids: Sequence[np.ndarray],
             labels: Sequence[np.ndarray], nodata: Sequence[bool],
             swirs: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    """Masks of a batch: 255 for nodata tiles, the segmenter's output (or the labels without one)."""
    live = [k for k in range(len(ids)) if not nodata[k]]
    masks: list[np.ndarray | None] = [None] * len(ids)
    for k in range(len(ids)):
        if nodata[k]:
            masks[k] = np.full(valids[k].shape, NODATA, np.uint8)
        elif labels and "segment" not in w.engines:
            masks[k] = labels[k]
    if "segment" in w.engines and live:
        segmenter = w.engines["segment"]
        tiles = [TileInput(ids[k], images[k], valids[k], labels[k] if labels else None, "real", swirs[k])
                 for k in live]
        out = w.engine_call("segment", [ids[k] for k in live], lambda: segmenter.segment(tiles))  # type: ignore[attr-defined]
        for k, m in zip(live, out, strict=True):
            m = np.asarray(m, dtype=np.uint8).copy()
            m[~valids[k]] = NODATA
            masks[k] = m
    return masks


def compute_real(w: WorkerJob, task: RealTask) -> list[TileRecord]:
    cells = task.cells
    ids = [real_tile_id(c.row, c.col) for c in cells]
    images, valids, labels, swirs = _read_batch(w, task)
    nodata = [float(v.mean()) < w.ctx.min_valid for v in valids]
    masks = _segment(w, ids, images, valids, labels, nodata, swirs)
    live = [k for k in range(len(cells)) if not nodata[k]]
    captions: list[list[str]] = [[] for _ in cells]
    metrics: list[dict[str, float]] = [{} for _ in cells]
    if live:
        empty = np.full(valids[0].shape, NODATA, np.uint8)
        # the segmenter's masks are what a grounder re-segmenting with the same engine would compute
        source = w.segment_key if "segment" in w.engines and not labels else ""
        caps, mets = w.caption_and_ground(
            "real", [ids[k] for k in live], [images[k] for k in live], [valids[k] for k in live],
            [mask if (mask := masks[k]) is not None else empty for k in live],
            mask_sources=[source] * len(live))
        for k, caps_k, mets_k in zip(live, caps, mets, strict=True):
            captions[k], metrics[k] = caps_k, mets_k
    recs: list[TileRecord] = []
    writes = []
    crs = w.src.crs
    for k, c in enumerate(cells):
        rec = w.tile_record(ids[k], "real", c, task.splits[k])
        rec.nodata = nodata[k]
        t = c.transform(w.transform)
        rec.artefacts["image"] = f"real/image/{ids[k]}.tif"
        writes.append((rec.artefacts["image"], partial(write_image_tile, image=images[k], valid=valids[k],
                                                       transform=t, crs=crs)))
        mask = masks[k]
        if mask is not None:
            rec.artefacts["mask"] = f"real/mask/{ids[k]}.tif"
            writes.append((rec.artefacts["mask"], partial(write_mask_tile, mask=mask, transform=t, crs=crs)))
            if not nodata[k]:
                TILES.put(w.job_key, ids[k], to_uint8(images[k], valids[k]), mask)
        if labels:
            rec.artefacts["labels"] = f"real/labels/{ids[k]}.tif"
            writes.append((rec.artefacts["labels"], partial(write_mask_tile, mask=labels[k], transform=t, crs=crs)))
        w.fill(rec, mask, captions[k], metrics[k], valids[k])
        if w.ctx.reference is not None:
            rec.metrics.update(reference_agreement(w.ctx.reference, c, mask))
        recs.append(rec)
    w.write_all(writes)
    return recs


def reference_agreement(reference: dict[str, np.ndarray], cell: Cell, mask: np.ndarray | None) -> dict[str, float]:
    """ref_points (sample pixels this tile owns) and ref_agreement (share of them whose mask class is the
    reference class; left out when none is mapped) of one real tile."""
    from groundsynth.tiling.reference import points_in_tile

    owned = (reference["owner_row"] == cell.row) & (reference["owner_col"] == cell.col)
    rr, cc, cls = points_in_tile(reference, cell, owned)
    out = {"ref_points": float(rr.size)}
    if mask is not None and rr.size:
        mapped = mask[rr, cc]
        seen = mapped != NODATA
        if seen.any():
            out["ref_agreement"] = float(np.mean(mapped[seen] == cls[seen]))
    return out
