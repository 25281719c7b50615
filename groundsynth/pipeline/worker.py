"""The worker's entry point: `run_task(ctx, task, shared)` computes one task of a job and returns its result.

Every executor calls it: the inline executor in the head's own thread, the process executor in its
pool processes, the Ray executor in its actors. It builds the job's engines on first use (once per job
and process; weights once per process, groundsynth.models.cache), caps GDAL's block cache while it
runs, and never raises: an exception comes back as `TaskResult.failure`, so that the head can tell
a failed batch (the job fails, naming engine and tiles) from a lost worker (the batch is retried).

`init_worker` prepares a pool process (ignore Ctrl-C, which the head handles; leave when the head is
gone, after the task in progress).
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
from typing import Any

from groundsynth.pipeline.context import (
    ControlTask,
    FitTask,
    HtmlTask,
    JobContext,
    RealismTask,
    RealTask,
    StageTimer,
    SummaryTask,
    SyntheticTask,
    Task,
    TaskFailure,
    TaskResult,
)
from groundsynth.pipeline.tile_cache import TILES

log = logging.getLogger("groundsynth.worker")
_busy = threading.Event()


def run_task(ctx: JobContext, task: Task, shared: object = None) -> TaskResult:
    import rasterio

    from groundsynth.pipeline.real_tiles import compute_real
    from groundsynth.pipeline.synthetic_tiles import compute_fit, compute_synthetic
    from groundsynth.pipeline.worker_job import worker_job

    timer = StageTimer()
    result = TaskResult()
    _busy.set()
    try:
        TILES.resize(max(TILES.max_bytes, ctx.tile_cache_bytes))
        if isinstance(task, (RealismTask, SummaryTask)):
            forget_job_memory(ctx)       # the report phase: nothing synthesises any more
        with rasterio.Env(GDAL_CACHEMAX=ctx.gdal_cache_bytes):
            w = worker_job(ctx, timer)
            if isinstance(task, RealTask):
                result.records = compute_real(w, task)
            elif isinstance(task, SyntheticTask):
                result.records = compute_synthetic(w, task, shared)
            elif isinstance(task, FitTask):
                result.value = compute_fit(w, task)
            elif isinstance(task, ControlTask):
                from groundsynth.pipeline.grounding_control import compute_control

                result.value = compute_control(w, task)
            elif isinstance(task, RealismTask):
                from groundsynth.report.realism import realism_part

                with timer("realism"):
                    result.value = realism_part(ctx.job_dir, task.plan, task.part, task.seed)
            elif isinstance(task, SummaryTask):
                grounder = w.engines["ground"]
                result.value = w.engine_call("ground", ["summary"],
                                             lambda: grounder.summarise(list(task.records)))  # type: ignore[attr-defined]
            elif isinstance(task, HtmlTask):
                from groundsynth.report import report_html_piece

                with timer("report_html"):
                    result.value = report_html_piece(ctx.job_dir, task.piece)
            else:
                raise TypeError(f"unknown task {type(task).__name__}")
    except Exception as exc:  # noqa: BLE001 - carried back to the head, which raises it
        result = TaskResult(failure=_portable(exc))
    finally:
        _busy.clear()
    result.timings = dict(timer.seconds)
    if isinstance(task, (RealismTask, SummaryTask, FitTask)):
        release_freed_memory()           # the big one-off tasks: give their freed heap back to the system
    return result


def forget_job_memory(ctx: JobContext) -> None:
    """What this process kept of a job for its synthesis (its real tiles, its synthesis state) is of no
    more use once the job's report phase starts: let it go before the report's large tasks run, so the
    process's peak is theirs, not theirs on top of full caches."""
    from groundsynth.pipeline.state_file import forget_states

    TILES.drop_job(ctx.job_id)
    forget_states(ctx.job_dir)
    release_freed_memory()


def release_freed_memory() -> None:
    """glibc keeps freed heap memory for reuse (numpy's large temporaries come from the heap once its
    mmap threshold has grown), so a worker would otherwise hold a finished task's peak for the rest of its
    life; malloc_trim returns it. A no-op where there is no glibc."""
    global _trim
    if _trim is None:
        import ctypes
        import ctypes.util

        try:
            _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


_trim: Any = None       # libc.malloc_trim, False where there is none, None before the first look


def _portable(exc: BaseException) -> TaskFailure:
    failure = TaskFailure.of(exc)
    try:
        pickle.dumps(failure)
    except Exception:  # noqa: BLE001 - an exception that does not pickle: keep its text
        failure = TaskFailure.of(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return failure


def init_worker(head_pid: int, threads: int = 1) -> None:
    """Initializer of a pool process: Ctrl-C is the head's business; limit math threads to this worker's
    share of the cores; exit once the head process is gone (after the task in progress)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_math_threads(threads)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent or not _alive(head_pid):
                deadline = time.monotonic() + 60
                while _busy.is_set() and time.monotonic() < deadline:
                    time.sleep(0.05)
                os._exit(0)

    threading.Thread(target=watch, name="head-watch", daemon=True).start()


def limit_math_threads(threads: int) -> None:
    """At most `threads` math threads (OpenMP, OpenBLAS, MKL) in this worker process, unless OMP_NUM_THREADS
    says otherwise. The variables reach libraries loaded from now on (torch); numpy's OpenBLAS is loaded
    already (in the fork server, before this process existed) and read its variable then, so it is limited
    through threadpoolctl: two workers on two cores with two BLAS threads each spin-waited against each
    other (about 10 % more synthesis CPU time in a demo job)."""
    from threadpoolctl import threadpool_limits

    n = max(1, threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        n = max(1, int(os.environ["OMP_NUM_THREADS"]))
    except ValueError:
        pass
    threadpool_limits(limits=n)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
