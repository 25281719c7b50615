"""The head's side of one running job: what it hands out, and how it records what comes back.

`JobRun` holds the prepared job, the journal (the job's single writer), emit, totals and the job's
executor. The head computes nothing per tile: it cuts the work into tasks (context.py), lets the
executor run them on workers (`execute`: bounded in flight, cancellation that drains, a lost batch
retried), and records each finished batch in order (`record_all`): journal first, then the `tile`
events, then progress. Timings are the workers' seconds per step, summed.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from groundsynth.artefacts.records import TileRecord
from groundsynth.engines.base import Engine
from groundsynth.models.weights import default_models_dir
from groundsynth.pipeline.context import (  # noqa: F401 - EngineFailed, StageTimer: re-exported
    EngineFailed,
    JobContext,
    StagePlanRef,
    StageTimer,
    Task,
    TaskResult,
)
from groundsynth.pipeline.events import Emit, Progress, TileDone
from groundsynth.pipeline.prepare import PreparedJob, RunOptions, job_dir
from groundsynth.tiling.source import Stretch


def extra_engines() -> tuple[type, ...]:
    """Registered engine classes that do not come with the package (engine modules, tests)."""
    from groundsynth.engines import engines
    from groundsynth.request.spec import STAGES

    own = ("groundsynth.engines.builtin.", "groundsynth.engines.neural.")
    return tuple(cls for stage in STAGES for cls in engines(stage).values() if not cls.__module__.startswith(own))


class JobStore(Protocol):
    """What the pipeline needs of the journal (groundsynth.service.journal.Journal is one)."""

    def get_job(self, job_id: str) -> Any: ...
    def create_job(self, job_id: str, spec: Any, output_dir: str) -> None: ...
    def set_state(self, job_id: str, state: str, error: str = "") -> None: ...
    def get_meta(self, job_id: str, key: str, default: Any = None) -> Any: ...
    def set_meta(self, job_id: str, key: str, value: Any) -> None: ...
    def set_totals(self, job_id: str, tiles_total: int, synthetic_total: int) -> None: ...
    def record_tile(self, job_id: str, rec: TileRecord) -> bool: ...
    def update_tile(self, job_id: str, rec: TileRecord) -> None: ...
    def tile_ids(self, job_id: str, kind: str | None = None) -> set[str]: ...
    def tiles(self, job_id: str, kind: str | None = None) -> list[TileRecord]: ...


class JobRun:
    def __init__(self, job_id: str, prep: PreparedJob, workspace: Path, journal: JobStore, emit: Emit,
                 cancelled: Callable[[], bool], options: RunOptions, executor: Any):
        self.job_id, self.prep, self.spec = job_id, prep, prep.spec
        self.workspace, self.journal, self.emit, self.cancelled, self.opt = workspace, journal, emit, cancelled, options
        self.executor = executor
        self.dir = job_dir(workspace, job_id)
        self.timer = StageTimer()
        self.since_layers = 0
        self.layers: dict[str, dict[str, str]] = {}
        self.variants = prep.variants
        self.stages = tuple(prep.plans)
        self.stretch: Stretch = prep.stretch
        self.real_total = prep.tile_count
        self.syn_total = prep.tile_count * self.variants   # refined once nodata tiles are known
        self._ctx: JobContext | None = None
        # (report.realism.plan_key, value) of the realism "real" part computed beside the fit
        self.early_realism: tuple[Any, Any] | None = None

    # ------------------------------------------------------------ what workers get
    @property
    def ctx(self) -> JobContext:
        """The job as a worker needs it (built once the stretch is fixed)."""
        if self._ctx is None:
            from groundsynth.pipeline.executors.resources import worker_resources

            prep, spec = self.prep, self.spec
            plans = tuple(StagePlanRef(p.stage, p.cls, dict(p.raw_params), dict(p.params)) for p in prep.plans.values())
            self._ctx = JobContext(
                job_id=self.job_id, job_dir=str(self.dir), workspace=str(self.workspace),
                models_dir=default_models_dir(str(self.workspace)), source_path=str(prep.source_path),
                source_field="upload_id" if spec.upload_id else "raster_path", bands=spec.bands,
                crs_wkt=prep.crs_wkt, transform=tuple(prep.transform)[:6], has_nir=prep.has_nir,
                stretch=self.stretch.to_dict(), seed=spec.seed, plans=plans,
                label_raster_path=spec.label_raster_path or "", swir_roles=tuple(prep.swir_roles),
                reference=prep.reference_arrays(), min_valid=self.opt.min_valid,
                device=self.opt.device, mask_strategy=spec.synthesis.mask_strategy,
                boost_targets=dict(spec.synthesis.boost_targets),
                tile_cache_bytes=self.opt.tile_cache_mb << 20, gdal_cache_bytes=self.opt.gdal_cache_mb << 20,
                resources=worker_resources([p.cls for p in prep.plans.values()], self.opt.device),
                extra_engines=extra_engines(), filters=spec.filters)
        return self._ctx

    def engine_class(self, stage: str) -> type[Engine]:
        return self.prep.plans[stage].cls

    # ------------------------------------------------------------ running tasks
    def batches(self, items: Sequence[Any]) -> list[list[Any]]:
        """`items` cut into batches of at most `batch_size`, in order, as even as possible and as many as a
        whole number of rounds over the executor's slots: 70 synthetic tiles on 2 workers are 10 batches of
        7, not 9 of 8 whose last round leaves a worker idle; 3 tiles on 4 workers are 3 batches of 1. (Outputs
        do not depend on the cut: everything random derives from the tile id.)"""
        bs = max(1, self.opt.batch_size)
        slots = max(1, self.executor.slots())
        rounds = -(-len(items) // (bs * slots))
        n = min(rounds * slots, len(items))
        if n == 0:
            return []
        q, r = divmod(len(items), n)
        out, i = [], 0
        for k in range(n):
            j = i + q + (k < r)
            out.append(list(items[i:j]))
            i = j
        return out

    def execute(self, tasks: Sequence[Task], commit: Callable[[Any, TaskResult], None], shared: Any = None) -> bool:
        """Run tasks on the executor and commit their results in task order; False if cancelled."""
        from groundsynth.pipeline.executors.base import drive

        def on_result(task: Any, result: TaskResult) -> None:
            self.timer.add(result.timings)
            commit(task, result)

        return drive(self.executor, self.ctx, tasks, on_result, self.cancelled, shared=shared,
                     in_flight=self.opt.in_flight)

    def execute_one(self, task: Task, shared: Any = None) -> TaskResult:
        """One task (the fit, the set metrics) run to its end: not cancellable half-way."""
        return self.execute_all([task], shared)[0]

    def execute_all(self, tasks: Sequence[Task], shared: Any = None, in_flight: int = 0) -> list[TaskResult]:
        """Tasks run side by side on the executor, each to its end (not cancellable half-way); their results
        in task order. `in_flight`: tasks submitted and not yet committed, at most (default: the executor's
        window)."""
        out: list[TaskResult] = []
        from groundsynth.pipeline.executors.base import drive

        def keep(_task: Any, result: TaskResult) -> None:
            self.timer.add(result.timings)
            out.append(result)

        drive(self.executor, self.ctx, list(tasks), keep, lambda: False, shared=shared, in_flight=in_flight)
        return out

    # ------------------------------------------------------------ records
    def record_all(self, result: TaskResult) -> None:
        for rec in result.records:
            self.record(rec)

    def record(self, rec: TileRecord) -> None:
        if self.journal.record_tile(self.job_id, rec):
            self.emit(TileDone(rec))
            self.since_layers += 1

    # ------------------------------------------------------------ progress
    def progress(self, stage: str, done: int, total: int) -> None:
        self.emit(Progress(stage=stage, done=done, total=total))

    def timings(self, extra_total: float | None = None) -> dict[str, float]:
        out = {k: round(v, 4) for k, v in sorted(self.timer.seconds.items())}
        if extra_total is not None:
            out["total"] = round(extra_total, 4)
        return out
