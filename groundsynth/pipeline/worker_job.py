"""A job as one worker process holds it: its engines (built here, once per job and process), its source
raster, and the steps every tile batch shares: calling an engine (an unexpected exception becomes an
error naming the engine and tiles), captioning and grounding a batch, building and filling tile
records, writing a batch's files (one sync for the whole batch).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from affine import Affine

from groundsynth.artefacts.atomic import sync_files
from groundsynth.artefacts.records import TileRecord
from groundsynth.engines.base import Engine, EngineContext, GroundInput, engine_key
from groundsynth.metrics import dataset_filters
from groundsynth.pipeline.context import EngineFailed, JobContext, StageTimer
from groundsynth.request.classes import composition
from groundsynth.request.errors import GroundSynthError
from groundsynth.request.seeds import derive_seed
from groundsynth.tiling.grid import Cell
from groundsynth.tiling.source import SourceRaster, Stretch

MAX_JOBS = 4            # jobs a worker keeps open at once (engines, source raster)


class WorkerJob:
    def __init__(self, ctx: JobContext, timer: StageTimer):
        self.ctx = ctx
        self.job_id = ctx.job_id
        # the job as this process caches it: its id AND folder (an id alone is not unique across workspaces)
        self.job_key = f"{ctx.job_id}@{ctx.job_dir}"
        self.timer = timer
        self.transform = Affine(*ctx.transform[:6])
        self.stretch = Stretch.from_dict(ctx.stretch)
        self.engines: dict[str, Engine] = {}
        self._src: SourceRaster | None = None
        _register(ctx.extra_engines)
        ectx = EngineContext(seed=ctx.seed, device=ctx.device, workspace=ctx.workspace, models_dir=ctx.models_dir,
                             has_nir=ctx.has_nir,
                             extra={"stretch": dict(ctx.stretch), "label_raster_path": ctx.label_raster_path,
                                    "swir_roles": list(ctx.swir_roles),
                                    "job_id": ctx.job_id, "job_dir": str(ctx.job_dir)})
        for plan in ctx.plans:
            with timer(f"load_{plan.stage}"):
                self.engines[plan.stage] = plan.cls(dict(plan.raw_params), ectx)
        seg = ctx.plan("segment")
        # the identity of the masks this job's segmenter makes (grounders may reuse them: GroundInput.mask_source)
        self.segment_key = engine_key(seg.cls, seg.params) if seg is not None else ""

    @property
    def src(self) -> SourceRaster:
        if self._src is None:
            self._src = SourceRaster(self.ctx.source_path, self.ctx.bands, self.ctx.source_field)
        return self._src

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    # ------------------------------------------------------------ engines
    def engine_call(self, stage: str, tile_ids: Sequence[str], fn: Callable[[], Any]) -> Any:
        with self.timer(stage):
            try:
                return fn()
            except GroundSynthError:
                raise
            except Exception as exc:
                name = self.engines[stage].name
                tid = tile_ids[0] if len(tile_ids) == 1 else ""
                where = f"tile {tile_ids[0]}" if len(tile_ids) == 1 else f"tiles {tile_ids[0]}..{tile_ids[-1]}"
                raise EngineFailed(f"{stage} engine {name!r} failed on {where}: {type(exc).__name__}: {exc}",
                                   tid) from exc

    def caption_and_ground(self, kind: str, ids: Sequence[str], images: Sequence[np.ndarray],
                           valids: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                           conds: Sequence[np.ndarray] | None = None,
                           mask_sources: Sequence[str] | None = None) -> tuple[list[list[str]], list[dict]]:
        """Captions and scores of a batch of tiles (empty where the stage is not run)."""
        captions: list[list[str]] = [[] for _ in ids]
        metrics: list[dict[str, float]] = [{} for _ in ids]
        if "caption" in self.engines:
            captioner = self.engines["caption"]
            seeds = [derive_seed(self.ctx.seed, i, "caption") for i in ids]
            out = self.engine_call("caption", ids, lambda: captioner.caption(images, masks, seeds))  # type: ignore[attr-defined]
            captions = [[str(c) for c in caps] for caps in out]
        if "ground" in self.engines:
            grounder = self.engines["ground"]
            cond_list: Sequence[np.ndarray | None] = conds if conds is not None else [None] * len(ids)
            sources = mask_sources if mask_sources is not None else [""] * len(ids)
            items = [GroundInput(i, kind, im, valid, m, caps, cond, src)
                     for i, im, valid, m, caps, cond, src in zip(ids, images, valids, masks, captions, cond_list,
                                                                 sources, strict=True)]
            out = self.engine_call("ground", ids, lambda: grounder.ground(items))  # type: ignore[attr-defined]
            metrics = [{str(n): float(x) for n, x in m.items()} for m in out]
        return captions, metrics

    # ------------------------------------------------------------ records
    def tile_record(self, tile_id: str, kind: str, cell: Cell, split: str, variant: int = 0,
                    source: str = "") -> TileRecord:
        t = cell.transform(self.transform)
        return TileRecord(tile_id=tile_id, kind=kind, row=cell.row, col=cell.col, variant=variant,
                          source_tile_id=source, crs=self.ctx.crs_wkt, bounds=cell.bounds(self.transform),
                          geotransform=tuple(t.to_gdal()), width=cell.width, height=cell.height,
                          col_off=cell.col_off, row_off=cell.row_off,
                          attributes={**{f"engine_{p.stage}": p.cls.name for p in self.ctx.plans},  # type: ignore[attr-defined]
                                      "split": split})

    def fill(self, rec: TileRecord, mask: np.ndarray | None, captions: list[str], metrics: dict[str, float],
             valid: np.ndarray) -> None:
        rec.composition = [float(v) for v in composition(mask)] if mask is not None else []
        rec.captions = captions
        rec.metrics = metrics
        rec.attributes["valid_share"] = f"{float(valid.mean()):.4f}"
        dataset_filters.flag(rec.attributes, valid, rec.composition, self.ctx.filters)   # "dropped_by"

    def write_all(self, writes: Sequence[tuple[str, Callable[..., None]]]) -> None:
        """Write a batch's files (each `fn(path, sync=False)`, atomic), then sync them all at once: the head
        records the batch only after this returns, so a recorded tile's files are on disk."""
        with self.timer("write"):
            paths = []
            for rel, fn in writes:
                path = f"{self.ctx.job_dir}/{rel}"
                fn(path, sync=False)
                paths.append(path)
            sync_files(paths)


def _register(classes: Sequence[type]) -> None:
    from groundsynth.engines import engines, register

    for cls in classes:
        if engines(cls.stage).get(cls.name) is not cls:  # type: ignore[attr-defined]
            register(cls)


_jobs: OrderedDict[tuple[str, str, int], WorkerJob] = OrderedDict()
_jobs_lock = threading.Lock()


def worker_job(ctx: JobContext, timer: StageTimer) -> WorkerJob:
    """This process's WorkerJob for `ctx` (built on first use; per thread, as the inline executor runs
    concurrent jobs in threads of one process)."""
    key = (ctx.job_id, str(ctx.job_dir), threading.get_ident())
    with _jobs_lock:
        job = _jobs.get(key)
        if job is not None:
            _jobs.move_to_end(key)
            job.timer = timer
            return job
    job = WorkerJob(ctx, timer)
    with _jobs_lock:
        _jobs[key] = job
        while len(_jobs) > MAX_JOBS:
            _, old = _jobs.popitem(last=False)
            old.close()
    return job


def release_job(job_id: str) -> None:
    """Forget a finished job here (engines, source raster)."""
    with _jobs_lock:
        for key in [k for k in _jobs if k[0] == job_id]:
            _jobs.pop(key).close()
