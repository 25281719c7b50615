"""`inline`: every task runs in the head's own thread, one at a time (the pipeline as it always ran).

No worker processes: engines, tiles kept for the fit and the synthesis state live in this process. A
cancel is seen between batches. Useful for debugging, for engines that cannot be pickled, and on
machines with one core.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from groundsynth.pipeline.context import JobContext, StateFile, Task, TaskResult
from groundsynth.pipeline.executors.base import TileExecutor


class _Done:
    __slots__ = ("result",)

    def __init__(self, result: TaskResult):
        self.result = result


class InlineExecutor(TileExecutor):
    name = "inline"

    def slots(self) -> int:
        return 1

    def window(self) -> int:
        return 1

    def submit(self, ctx: JobContext, task: Task, shared: Any = None) -> Any:
        from groundsynth.pipeline.worker import run_task

        return _Done(run_task(ctx, task, shared))

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        return list(handles)

    def result(self, handle: Any) -> TaskResult:
        return handle.result

    def share(self, state: StateFile, load: Callable[[], Any]) -> Any:
        return load()           # the object itself (this process wrote or read it: no copy)

    def release(self, job_id: str) -> None:
        from groundsynth.pipeline.tile_cache import TILES
        from groundsynth.pipeline.worker_job import release_job

        release_job(job_id)
        TILES.drop_job(job_id)
