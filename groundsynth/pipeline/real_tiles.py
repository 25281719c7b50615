"""Real tiles: read each cell of the grid through the job stretch, segment, caption, ground, write, record.

Tiles the journal already holds are skipped (resume). A tile with less than
`min_valid` valid pixels is a nodata tile: flagged, masked 255, not
synthesised. With a label raster, its classes are cut to every tile
(`real/labels/`) and, without a segment stage, serve as the tile's mask.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from groundsynth.artefacts.records import TileRecord, real_tile_id
from groundsynth.artefacts.tiles import write_image_tile, write_mask_tile
from groundsynth.engines.base import TileInput
from groundsynth.pipeline.job_run import JobRun
from groundsynth.pipeline.outputs import maybe_refresh_layers
from groundsynth.request.classes import NODATA
from groundsynth.tiling.grid import Cell
from groundsynth.tiling.source import SourceRaster

REAL_STAGES = ("segment", "caption", "ground")


def run_real(run: JobRun, src: SourceRaster) -> bool:
    """Process the real tiles not yet in the journal; False if cancelled."""
    done = run.journal.tile_ids(run.job_id, "real")
    pending = [c for c in run.prep.grid.cells if real_tile_id(c.row, c.col) not in done]
    n_done = run.real_total - len(pending)
    bs = max(1, run.opt.batch_size)
    for i in range(0, len(pending), bs):
        if run.cancelled():
            return False
        _real_batch(run, src, pending[i:i + bs])
        n_done += len(pending[i:i + bs])
        for stage in REAL_STAGES:
            if stage in run.engines:
                total = run.real_total + (run.syn_total if stage != "segment" else 0)
                run.progress(stage, n_done, total)
        maybe_refresh_layers(run)
    return True


def _read_batch(run: JobRun, src: SourceRaster, cells: Sequence[Cell]
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    images, valids, labels = [], [], []
    with run.timer("read"):
        for c in cells:
            raw, valid = src.read_window(c.col_off, c.row_off, c.width, c.height)
            img = run.stretch.apply(raw)
            img[:, ~valid] = 0
            images.append(img)
            valids.append(valid)
    if run.spec.label_raster_path:
        from groundsynth.tiling.labels import read_labels

        with run.timer("labels"):
            for c in cells:
                labels.append(read_labels(run.spec.label_raster_path, src.crs, c.transform(run.prep.transform),
                                          (c.height, c.width)))
    return images, valids, labels


def _segment(run: JobRun, ids: Sequence[str], images: Sequence[np.ndarray], valids: Sequence[np.ndarray],
             labels: Sequence[np.ndarray], nodata: Sequence[bool]) -> list[np.ndarray | None]:
    """Masks of a batch: 255 for nodata tiles, the segmenter's output (or the labels without one)."""
    live = [k for k in range(len(ids)) if not nodata[k]]
    masks: list[np.ndarray | None] = [None] * len(ids)
    for k in range(len(ids)):
        if nodata[k]:
            masks[k] = np.full(valids[k].shape, NODATA, np.uint8)
        elif labels and "segment" not in run.engines:
            masks[k] = labels[k]
    if "segment" in run.engines and live:
        segmenter = run.engines["segment"]
        tiles = [TileInput(ids[k], images[k], valids[k], labels[k] if labels else None, "real") for k in live]
        out = run.engine_call("segment", [ids[k] for k in live], lambda: segmenter.segment(tiles))  # type: ignore[attr-defined]
        for k, m in zip(live, out, strict=True):
            m = np.asarray(m, dtype=np.uint8).copy()
            m[~valids[k]] = NODATA
            masks[k] = m
    return masks


def _real_batch(run: JobRun, src: SourceRaster, cells: Sequence[Cell]) -> None:
    ids = [real_tile_id(c.row, c.col) for c in cells]
    images, valids, labels = _read_batch(run, src, cells)
    nodata = [float(v.mean()) < run.opt.min_valid for v in valids]
    masks = _segment(run, ids, images, valids, labels, nodata)
    live = [k for k in range(len(cells)) if not nodata[k]]
    captions: list[list[str]] = [[] for _ in cells]
    metrics: list[dict[str, float]] = [{} for _ in cells]
    if live:
        empty = np.full(valids[0].shape, NODATA, np.uint8)
        caps, mets = run.caption_and_ground(
            "real", [ids[k] for k in live], [images[k] for k in live], [valids[k] for k in live],
            [mask if (mask := masks[k]) is not None else empty for k in live])
        for k, caps_k, mets_k in zip(live, caps, mets, strict=True):
            captions[k], metrics[k] = caps_k, mets_k
    recs: list[TileRecord] = []
    writes: list[Callable[[], None]] = []
    for k, c in enumerate(cells):
        rec = run.tile_record(ids[k], "real", c)
        rec.nodata = nodata[k]
        t = c.transform(run.prep.transform)
        rec.artefacts["image"] = f"real/image/{ids[k]}.tif"
        writes.append(partial(write_image_tile, run.dir / rec.artefacts["image"], images[k], valids[k], t, src.crs))
        mask = masks[k]
        if mask is not None:
            rec.artefacts["mask"] = f"real/mask/{ids[k]}.tif"
            writes.append(partial(write_mask_tile, run.dir / rec.artefacts["mask"], mask, t, src.crs))
        if labels:
            rec.artefacts["labels"] = f"real/labels/{ids[k]}.tif"
            writes.append(partial(write_mask_tile, run.dir / rec.artefacts["labels"], labels[k], t, src.crs))
        run.fill(rec, mask, captions[k], metrics[k], valids[k])
        recs.append(rec)
    run.write_all(writes)
    for rec in recs:
        run.record(rec)
