"""Synthetic tiles: fit the synthesiser on the AOI's train-split real tiles, then per (real tile, variant):
condition mask (mask strategy) -> synthesise (never copying its source tile) -> re-segment -> caption,
ground -> write, record. The fitted tile ids go to the journal (meta "synthesis_fit") for the report's
realism metrics, which compare against tiles that were not fitted.

A synthetic tile lies at its SOURCE tile's footprint. Tiles the journal already
holds are skipped (resume); everything random derives from (job seed, tile id,
stage), so a resumed job writes the same bytes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from groundsynth.artefacts.records import TileRecord, synthetic_tile_id
from groundsynth.artefacts.tiles import read_image_tile, read_mask_tile, write_image_tile, write_mask_tile
from groundsynth.engines import mask_strategies
from groundsynth.engines.base import TileInput
from groundsynth.pipeline.job_run import JobRun
from groundsynth.pipeline.outputs import maybe_refresh_layers
from groundsynth.request.classes import NODATA
from groundsynth.request.seeds import derive_seed
from groundsynth.tiling.grid import Cell

RealTile = tuple[np.ndarray, np.ndarray, np.ndarray]      # image, valid, mask


def run_synthetic(run: JobRun) -> bool:
    """Synthesise the variants not yet in the journal; False if cancelled."""
    if not run.variants:
        return True
    real = sorted((r for r in run.journal.tiles(run.job_id, "real") if not r.nodata), key=lambda r: (r.row, r.col))
    run.syn_total = len(real) * run.variants
    run.journal.set_totals(run.job_id, run.real_total, run.syn_total)
    done = run.journal.tile_ids(run.job_id, "synthetic")
    pending = [(r, v) for r in real for v in range(1, run.variants + 1)
               if synthetic_tile_id(r.row, r.col, v) not in done]
    if not pending:
        return True
    n_done = run.syn_total - len(pending)
    stats = _fit(run, real)
    bs = max(1, run.opt.batch_size)
    for i in range(0, len(pending), bs):
        if run.cancelled():
            return False
        _synthetic_batch(run, pending[i:i + bs], stats)
        n_done += len(pending[i:i + bs])
        run.progress("synthesise", n_done, run.syn_total)
        for stage in ("caption", "ground"):
            if stage in run.engines:
                run.progress(stage, run.real_total + n_done, run.real_total + run.syn_total)
        maybe_refresh_layers(run)
    return True


def _read_real(run: JobRun, rec: TileRecord) -> RealTile:
    with run.timer("read"):
        image, valid = read_image_tile(run.dir / rec.artefacts["image"])
        mask = read_mask_tile(run.dir / rec.artefacts["mask"])
    return image, valid, mask


def fit_sample(real: Sequence[TileRecord], limit: int) -> tuple[list[TileRecord], str]:
    """The real tiles given to synthesiser.fit: the train split only (evenly sampled down to `limit`), so
    no validation or test pixel can reach a synthetic training tile; (tiles, warning). An AOI without a
    train tile falls back to all tiles, with a warning for the report."""
    train = [r for r in real if r.attributes.get("split") == "train"]
    warning = ""
    if not train and real:
        train = list(real)
        warning = ("no train-split tile in this job: the synthesiser was fitted on all tiles (validation and "
                   "test tiles included), so synthetic tiles may carry their pixels; the realism metrics have "
                   "no held-out tiles")
    n = len(train)
    k = min(n, max(1, limit))
    return ([train[int(i)] for i in np.linspace(0, n - 1, k).round().astype(int)] if n else []), warning


def _fit(run: JobRun, real: Sequence[TileRecord]) -> Any:
    """synthesiser.fit on the train-split real tiles (read back from their files), and the AOI mask stats of
    the mask strategies from the same tiles (no test mask shapes the synthetic training masks either)."""
    sample, warning = fit_sample(real, run.opt.fit_max_tiles)
    images, masks, valids = [], [], []
    for rec in sample:
        image, valid, mask = _read_real(run, rec)
        images.append(image)
        valids.append(valid)
        masks.append(mask)
    ids = [r.tile_id for r in sample]
    run.journal.set_meta(run.job_id, "synthesis_fit", {"tiles": ids, "warning": warning})
    synthesiser = run.engines["synthesise"]
    run.synthesis_state = run.engine_call("synthesise", ["fit"],
                                          lambda: synthesiser.fit(images, masks, valids, ids))  # type: ignore[attr-defined]
    with run.timer("mask_strategy"):
        return mask_strategies.AoiStats.from_masks(masks)


def _condition(run: JobRun, real_mask: np.ndarray, stats: Any, syn_id: str) -> np.ndarray:
    with run.timer("mask_strategy"):
        cond = mask_strategies.condition_mask(run.spec.synthesis.mask_strategy, real_mask,
                                              dict(run.spec.synthesis.boost_targets), stats,
                                              derive_seed(run.spec.seed, syn_id, "mask"))
    cond = np.asarray(cond, dtype=np.uint8).copy()
    cond[real_mask == NODATA] = NODATA
    return cond


def _synthesise(run: JobRun, items: Sequence[tuple[TileRecord, int]], ids: Sequence[str], stats: Any
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(images, valids, conds, masks) of a batch: condition, synthesise, re-segment."""
    conds, valids = [], []
    cache: dict[str, RealTile] = {}
    for (rec, _v), sid in zip(items, ids, strict=True):
        if rec.tile_id not in cache:
            cache[rec.tile_id] = _read_real(run, rec)
        _, valid, mask = cache[rec.tile_id]
        cond = _condition(run, mask, stats, sid)
        conds.append(cond)
        valids.append(valid & (cond != NODATA))
    seeds = [derive_seed(run.spec.seed, sid, "synthesise") for sid in ids]
    synthesiser, segmenter = run.engines["synthesise"], run.engines["segment"]
    state = run.synthesis_state
    sources = [rec.tile_id for rec, _v in items]
    raw = run.engine_call("synthesise", ids,
                          lambda: synthesiser.synthesise(conds, seeds, state, sources))  # type: ignore[attr-defined]
    images = [np.asarray(im, dtype=np.float32).copy() for im in raw]
    for im, valid in zip(images, valids, strict=True):
        im[:, ~valid] = 0
    tiles = [TileInput(sid, im, valid, None, "synthetic") for sid, im, valid in zip(ids, images, valids, strict=True)]
    out = run.engine_call("segment", ids, lambda: segmenter.segment(tiles))  # type: ignore[attr-defined]
    masks = [np.asarray(m, dtype=np.uint8).copy() for m in out]
    for m, valid in zip(masks, valids, strict=True):
        m[~valid] = NODATA
    return images, valids, conds, masks


def _synthetic_batch(run: JobRun, items: Sequence[tuple[TileRecord, int]], stats: Any) -> None:
    ids = [synthetic_tile_id(r.row, r.col, v) for r, v in items]
    images, valids, conds, masks = _synthesise(run, items, ids, stats)
    captions, metrics = run.caption_and_ground("synthetic", ids, images, valids, masks, conds)
    crs = run.prep.crs_wkt
    recs: list[TileRecord] = []
    writes: list[Callable[[], None]] = []
    for k, ((rec, v), sid) in enumerate(zip(items, ids, strict=True)):
        cell = Cell(rec.row, rec.col, rec.col_off, rec.row_off, rec.width, rec.height)
        out_rec = run.tile_record(sid, "synthetic", cell, v, rec.tile_id)
        t = cell.transform(run.prep.transform)
        name = f"{rec.tile_id}.tif"
        out_rec.artefacts = {"image": f"synthetic/image_v{v}/{name}", "mask": f"synthetic/mask_v{v}/{name}",
                             "cond_mask": f"synthetic/cond_mask_v{v}/{name}"}
        writes += [partial(write_image_tile, run.dir / out_rec.artefacts["image"], images[k], valids[k], t, crs),
                   partial(write_mask_tile, run.dir / out_rec.artefacts["mask"], masks[k], t, crs),
                   partial(write_mask_tile, run.dir / out_rec.artefacts["cond_mask"], conds[k], t, crs)]
        run.fill(out_rec, masks[k], captions[k], metrics[k], valids[k])
        recs.append(out_rec)
    run.write_all(writes)
    for out_rec in recs:
        run.record(out_rec)
