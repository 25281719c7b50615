"""Synthetic tiles: fit the synthesiser on the AOI's train-split real tiles, then per (real tile, variant):
condition mask (mask strategy) -> synthesise (never copying its source tile) -> re-segment -> caption,
ground -> write, record. The fitted tile ids go to the journal (meta "synthesis_fit") for the report's
realism metrics, which compare against tiles that were not fitted.

The fit is a barrier with shippable state: it runs once per job as one task on a worker, which writes
what it returns (with the AOI's mask statistics) to `synthesis_state.pkl` in the job directory; the
journal meta `synthesis_state` records its digest, so a resumed job reuses it and never fits again.
The executor broadcasts it to the workers (a file they load once per process, or ray.put). A
synthetic tile lies at its SOURCE tile's footprint. Tiles the journal already holds are skipped
(resume); everything random derives from (job seed, tile id, stage), so a resumed or retried batch
writes the same bytes.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any, overload

import numpy as np

from groundsynth.artefacts.records import TileRecord, synthetic_tile_id
from groundsynth.artefacts.tiles import from_uint8, read_image_tile, read_mask_tile, write_image_tile, write_mask_tile
from groundsynth.engines import mask_strategies
from groundsynth.engines.base import TileInput
from groundsynth.metrics import dataset_filters
from groundsynth.pipeline.context import FitTask, RealismTask, SourceTile, StateFile, SyntheticTask, Task, TaskResult
from groundsynth.pipeline.job_run import JobRun
from groundsynth.pipeline.outputs import build_mosaic_overviews, in_head_thread, maybe_refresh_layers, write_layers
from groundsynth.pipeline.state_file import STATE_NAME, load_state, resolve, write_state
from groundsynth.pipeline.tile_cache import TILES
from groundsynth.pipeline.worker_job import WorkerJob
from groundsynth.request.classes import NODATA
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.seeds import derive_seed

log = logging.getLogger("groundsynth.pipeline")
META_KEY = "synthesis_state"


# ---------------------------------------------------------------- head

def run_synthetic(run: JobRun) -> bool:
    """Synthesise the variants not yet in the journal; False if cancelled."""
    if not run.variants:
        return True
    real = sorted((r for r in run.journal.tiles(run.job_id, "real") if not r.nodata), key=lambda r: (r.row, r.col))
    # tiles the dataset filters drop are not synthesised (JobSpec.filters.synthesise_dropped); fit still sees them
    sources = [r for r in real if run.spec.filters.synthesise_dropped or dataset_filters.is_kept(r)]
    run.syn_total = len(sources) * run.variants
    run.journal.set_totals(run.job_id, run.real_total, run.syn_total)
    done = run.journal.tile_ids(run.job_id, "synthetic")
    pending = [(SourceTile.of(r), v) for r in sources for v in range(1, run.variants + 1)
               if synthetic_tile_id(r.row, r.col, v) not in done]
    if not pending:
        return True
    shared = synthesis_state(run, real, sources)
    tasks = [SyntheticTask(tuple(items)) for items in run.batches(pending)]
    n_done = [run.syn_total - len(pending)]

    def commit(task: SyntheticTask, result: TaskResult) -> None:
        run.record_all(result)
        n_done[0] += len(task.items)
        run.progress("synthesise", n_done[0], run.syn_total)
        for stage in ("caption", "ground"):
            if stage in run.stages:
                run.progress(stage, run.real_total + n_done[0], run.real_total + run.syn_total)
        maybe_refresh_layers(run)

    return run.execute(tasks, commit, shared)


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


def synthesis_state(run: JobRun, real: Sequence[TileRecord], sources: Sequence[TileRecord]) -> Any:
    """The job's synthesis state as the executor ships it: the stored one on resume, else fit it now, with
    what needs only the real tiles beside it on the workers the fit leaves idle: the grounding control of
    the real tiles and the realism section's real-vs-held-out part."""
    path = str(run.dir / STATE_NAME)
    stored = run.journal.get_meta(run.job_id, META_KEY)
    sf = None
    if stored and stored.get("path") == STATE_NAME:
        sf = StateFile(path, stored["sha256"])
        try:
            load_state(sf)
        except GroundSynthError as exc:
            log.warning("job %s: %s; fitting again", run.job_id, exc.message)
            sf = None
    if sf is None:
        sample, warning = fit_sample(real, run.opt.fit_max_tiles)
        run.journal.set_meta(run.job_id, "synthesis_fit", {"tiles": [r.tile_id for r in sample], "warning": warning})
        from groundsynth.pipeline.grounding_control import early_real_pass, finish_early_pass

        control = early_real_pass(run)          # beside the fit, on the workers the fit leaves idle
        realism = early_realism(run, real, sources)
        fit = FitTask(tuple(SourceTile.of(r) for r in sample), path)
        write_layers(run)                       # the real mosaics are final: their overviews, in a head thread
        # longest first, all in flight at once: results are committed in task order, so a window smaller than
        # the task list would hold the later tasks back until the fit is done, leaving a worker idle
        tasks: list[Task] = [fit, *([realism] if realism else []), *(control.tasks if control else [])]
        with in_head_thread(build_mosaic_overviews, run, ("real",)):
            results = run.execute_all(tasks, in_flight=len(tasks))
        sf = results[0].value
        if realism is not None:
            from groundsynth.report.realism import plan_key

            run.early_realism = (plan_key(realism.plan), results[1].value)
        if control is not None:
            finish_early_pass(run, control, results[2 if realism is not None else 1:])
        run.journal.set_meta(run.job_id, META_KEY, {"path": STATE_NAME, "sha256": sf.sha256,
                                                    "engine": run.prep.plans["synthesise"].cls.name,
                                                    "fit_tiles": len(sample)})
    return run.executor.share(sf, partial(load_state, sf))


def early_realism(run: JobRun, real: Sequence[TileRecord], sources: Sequence[TileRecord]) -> RealismTask | None:
    """The realism section's "real" part (reference vs held-out tiles: real tiles only), planned from the
    synthetic tiles this job is about to make; None when the section will not be measured."""
    from groundsynth.report.realism import RealismPlan, realism_plan

    coming = [TileRecord(tile_id=synthetic_tile_id(r.row, r.col, v), kind="synthetic", row=r.row, col=r.col,
                         variant=v, source_tile_id=r.tile_id, artefacts=_artefacts(r.tile_id, v))
              for r in sources for v in range(1, run.variants + 1)]
    plan = realism_plan([*real, *coming], run.journal.get_meta(run.job_id, "synthesis_fit"))
    return RealismTask("real", plan, int(run.spec.seed or 0)) if isinstance(plan, RealismPlan) else None


# ---------------------------------------------------------------- worker

def real_tile(w: WorkerJob, t: SourceTile, with_image: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(image float32 or None, valid, mask) of a finished real tile: from this worker's memory when it made
    the tile, else read from its files (the same values)."""
    cached = TILES.get(w.job_key, t.tile_id)
    if cached is not None:
        data, mask = cached
        if with_image:
            image, valid = from_uint8(data)
            return image, valid, mask
        return None, data.any(axis=0), mask
    with w.timer("read"):
        image, valid = read_image_tile(f"{w.ctx.job_dir}/{t.image}")
        mask = read_mask_tile(f"{w.ctx.job_dir}/{t.mask}")
    return image, valid, mask


class FitImages(Sequence[np.ndarray]):
    """The fit sample's images (float32), made one at a time when the synthesiser asks for them: a fit that
    goes through them in turn holds one (1 MiB at 256 px, 4 bands) instead of the whole sample (up to
    `fit_max_tiles` of them)."""

    def __init__(self, w: WorkerJob, sample: Sequence[SourceTile]):
        self.w, self.sample = w, list(sample)

    def __len__(self) -> int:
        return len(self.sample)

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        image, _, _ = real_tile(self.w, self.sample[i], with_image=True)
        assert image is not None  # noqa: S101 - with_image=True always gives one
        return image


def compute_fit(w: WorkerJob, task: FitTask) -> StateFile:
    masks, valids = [], []
    for t in task.sample:                   # masks and valid maps are small (1/4 of an image each): kept
        _, valid, mask = real_tile(w, t, with_image=False)
        valids.append(valid)
        masks.append(mask)
    images = FitImages(w, task.sample)
    synthesiser = w.engines["synthesise"]
    ids = [t.tile_id for t in task.sample]
    state = w.engine_call("synthesise", ["fit"],
                          lambda: synthesiser.fit(images, masks, valids, ids))  # type: ignore[attr-defined]
    with w.timer("mask_strategy"):
        stats = mask_strategies.AoiStats.from_masks(masks)
    with w.timer("write"):
        return write_state(task.state_path, {"state": state, "stats": stats})


def _condition(w: WorkerJob, real_mask: np.ndarray, stats: Any, syn_id: str) -> np.ndarray:
    with w.timer("mask_strategy"):
        cond = mask_strategies.condition_mask(w.ctx.mask_strategy, real_mask, dict(w.ctx.boost_targets), stats,
                                              derive_seed(w.ctx.seed, syn_id, "mask"))
    cond = np.asarray(cond, dtype=np.uint8).copy()
    cond[real_mask == NODATA] = NODATA
    return cond


def _synthesise(w: WorkerJob, task: SyntheticTask, ids: Sequence[str], payload: dict[str, Any]
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(images, valids, conds, masks) of a batch: condition, synthesise, re-segment."""
    conds, valids = [], []
    for (src, _v), sid in zip(task.items, ids, strict=True):
        _, valid, mask = real_tile(w, src, with_image=False)
        cond = _condition(w, mask, payload["stats"], sid)
        conds.append(cond)
        valids.append(valid & (cond != NODATA))
    seeds = [derive_seed(w.ctx.seed, sid, "synthesise") for sid in ids]
    synthesiser, segmenter = w.engines["synthesise"], w.engines["segment"]
    state = payload["state"]
    sources = [src.tile_id for src, _v in task.items]
    raw = w.engine_call("synthesise", ids,
                        lambda: synthesiser.synthesise(conds, seeds, state, sources))  # type: ignore[attr-defined]
    images = [np.asarray(im, dtype=np.float32).copy() for im in raw]
    for im, valid in zip(images, valids, strict=True):
        im[:, ~valid] = 0
    tiles = [TileInput(sid, im, valid, None, "synthetic") for sid, im, valid in zip(ids, images, valids, strict=True)]
    out = w.engine_call("segment", ids, lambda: segmenter.segment(tiles))  # type: ignore[attr-defined]
    masks = [np.asarray(m, dtype=np.uint8).copy() for m in out]
    for m, valid in zip(masks, valids, strict=True):
        m[~valid] = NODATA
    return images, valids, conds, masks


def _artefacts(source_id: str, v: int) -> dict[str, str]:
    name = f"{source_id}.tif"
    return {"image": f"synthetic/image_v{v}/{name}", "mask": f"synthetic/mask_v{v}/{name}",
            "cond_mask": f"synthetic/cond_mask_v{v}/{name}"}


def compute_synthetic(w: WorkerJob, task: SyntheticTask, shared: Any) -> list[TileRecord]:
    ids = [synthetic_tile_id(t.cell.row, t.cell.col, v) for t, v in task.items]
    images, valids, conds, masks = _synthesise(w, task, ids, resolve(shared, w.ctx.job_dir))
    captions, metrics = w.caption_and_ground("synthetic", ids, images, valids, masks, conds,
                                             mask_sources=[w.segment_key] * len(ids))
    crs = w.ctx.crs_wkt
    recs: list[TileRecord] = []
    writes = []
    for k, ((src, v), sid) in enumerate(zip(task.items, ids, strict=True)):
        cell = src.cell
        out_rec = w.tile_record(sid, "synthetic", cell, src.split, v, src.tile_id)
        t = cell.transform(w.transform)
        out_rec.artefacts = _artefacts(src.tile_id, v)
        writes += [(out_rec.artefacts["image"], partial(write_image_tile, image=images[k], valid=valids[k],
                                                        transform=t, crs=crs)),
                   (out_rec.artefacts["mask"], partial(write_mask_tile, mask=masks[k], transform=t, crs=crs)),
                   (out_rec.artefacts["cond_mask"], partial(write_mask_tile, mask=conds[k], transform=t, crs=crs))]
        w.fill(out_rec, masks[k], captions[k], metrics[k], valids[k])
        recs.append(out_rec)
    w.write_all(writes)
    return recs
