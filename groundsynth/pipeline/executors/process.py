"""`process`: a pool of local worker processes, one per usable core by default (the default executor).

Workers start from a fork server (safe in a multi-threaded head such as the gRPC server) with the
pipeline preloaded, build each job's engines on first use and keep them (and the real tiles they
made) for the job's later batches. One pool serves every job of the process (the server runs
concurrent jobs on it). A worker that dies (SIGKILL, out of memory) breaks the pool: the pool is
replaced and the lost batches are submitted again by the head (groundsynth.pipeline.executors.base).
Workers leave by themselves when the head process is gone.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from groundsynth.pipeline.context import JobContext, Task, TaskResult
from groundsynth.pipeline.executors.base import TileExecutor, WorkerLost
from groundsynth.request.errors import FailedPrecondition

PRELOAD = ["groundsynth.pipeline.worker", "groundsynth.pipeline.real_tiles", "groundsynth.pipeline.synthetic_tiles",
           "groundsynth.engines.mask_strategies", "rasterio", "scipy.ndimage"]


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:      # not Linux
        return max(1, os.cpu_count() or 1)


class ProcessExecutor(TileExecutor):
    name = "process"

    def __init__(self, workers: int = 0):
        self.workers = workers if workers > 0 else usable_cpus()
        self._pool: futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    def slots(self) -> int:
        return self.workers

    def _current(self) -> futures.ProcessPoolExecutor:
        from groundsynth.pipeline.worker import init_worker

        with self._lock:
            if self._pool is None:
                mp = multiprocessing.get_context("forkserver")
                mp.set_forkserver_preload(PRELOAD)
                threads = max(1, usable_cpus() // self.workers)
                self._pool = futures.ProcessPoolExecutor(self.workers, mp_context=mp, initializer=init_worker,
                                                         initargs=(os.getpid(), threads))
            return self._pool

    def _broken(self, pool: futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self.restarts += 1
                pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, ctx: JobContext, task: Task, shared: Any = None) -> Any:
        from groundsynth.pipeline.worker import run_task

        for _ in range(3):
            pool = self._current()
            try:
                fut = pool.submit(run_task, ctx, task, shared)
            except (BrokenProcessPool, RuntimeError):    # broken, or shut down by another job's recovery
                self._broken(pool)
                continue
            fut.pool = pool  # type: ignore[attr-defined]
            return fut
        raise FailedPrecondition("the process executor cannot start its worker processes", "executor")

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        done, _ = futures.wait(handles, timeout, return_when=futures.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> TaskResult:
        try:
            return handle.result()
        except BrokenProcessPool as exc:
            self._broken(handle.pool)
            raise WorkerLost(f"a worker process died: {exc}") from None
        except futures.CancelledError:
            raise WorkerLost("the worker pool was restarted") from None
        except Exception as exc:  # the task could not be sent or its result not returned (pickling)
            raise FailedPrecondition(
                f"the process executor could not exchange a task with its workers ({type(exc).__name__}: {exc}); "
                "engines must be importable classes: run with --executor inline otherwise", "executor") from exc

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_shared: dict[int, ProcessExecutor] = {}
_shared_lock = threading.Lock()


def shared_process_executor(workers: int = 0) -> ProcessExecutor:
    """The process's pool of `workers` processes (0 = one per usable core), shared by its jobs."""
    n = workers if workers > 0 else usable_cpus()
    with _shared_lock:
        if n not in _shared:
            _shared[n] = ProcessExecutor(n)
        return _shared[n]


@atexit.register
def close_shared() -> None:
    with _shared_lock:
        pools = list(_shared.values())
        _shared.clear()
    for p in pools:
        p.close()
