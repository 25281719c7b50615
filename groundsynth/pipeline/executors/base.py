"""The executor seam: where a job's tile batches run, and the head's loop over them (`drive`).

A `TileExecutor` runs tasks (groundsynth.pipeline.context) by calling
`groundsynth.pipeline.worker.run_task(ctx, task, shared)` somewhere: in the head's thread (inline), in
a local process pool (process) or in Ray actors (ray). It only submits, waits and hands results back;
`drive` does the rest, the same for every executor:

- bounded in-flight work: at most `window` tasks are submitted and not yet committed (backpressure);
- results are committed in task order, whatever order they finish in, so the journal, the events and
  every output come out in the same order for every executor (and as the inline path writes them);
- a task whose worker was lost (killed, its node removed) is submitted again, up to `retries` times;
  it rewrites the same bytes (everything random derives from the job seed and the tile id);
- a cancel stops submitting and drains: tasks in flight finish and are committed;
- a failed task (an engine error) stops submitting; the tasks before it are committed, the error is
  raised, the tasks after it are dropped (their files may exist; a resumed job rewrites them).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from groundsynth.pipeline.context import JobContext, StateFile, Task, TaskResult
from groundsynth.request.errors import GroundSynthError

MAX_RETRIES = 3
POLL_S = 0.5


class WorkerLost(Exception):
    """The worker running a task went away before answering; the task may be retried."""


class WorkerLostTooOften(GroundSynthError):
    """A task lost its worker more than MAX_RETRIES times (INTERNAL)."""


class TileExecutor(ABC):
    name: ClassVar[str]

    @abstractmethod
    def slots(self) -> int:
        """How many tasks run at once."""

    def window(self) -> int:
        """Tasks submitted and not yet committed, at most (default: two per slot, one queued behind each)."""
        return 2 * self.slots()

    @abstractmethod
    def submit(self, ctx: JobContext, task: Task, shared: Any = None) -> Any:
        """Start a task; returns a handle for wait/result."""

    @abstractmethod
    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        """The handles that have finished (waits up to `timeout` seconds for at least one)."""

    @abstractmethod
    def result(self, handle: Any) -> TaskResult:
        """The finished task's result; raises WorkerLost when its worker went away."""

    def share(self, state: StateFile, load: Callable[[], Any]) -> Any:
        """What tasks get as `shared` for the job's synthesis state (default: the file; workers load it)."""
        return state

    def release(self, job_id: str) -> None:  # noqa: B027 - optional hook
        """The job is over: forget what was kept for it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop the workers."""


def drive(executor: TileExecutor, ctx: JobContext, tasks: Sequence[Task],
          on_result: Callable[[Any, TaskResult], None], cancelled: Callable[[], bool], shared: Any = None,
          in_flight: int = 0, retries: int = MAX_RETRIES) -> bool:
    """Run `tasks`, committing each result with `on_result` in task order; False if cancelled.

    Whatever ends the loop (a failed task, `on_result` raising, e.g. a full disk), nothing is left
    running when `drive` returns or raises: tasks in flight are waited for first, so no worker writes
    files after the head has given up (the service may then sweep the unrecorded ones)."""
    handles: dict[Any, tuple[int, int]] = {}       # handle -> (task index, attempt)
    try:
        return _drive(executor, ctx, list(tasks), on_result, cancelled, shared, in_flight, retries, handles)
    except BaseException:
        _drain(executor, handles)
        raise


def _drain(executor: TileExecutor, handles: dict[Any, tuple[int, int]]) -> None:
    """Wait for every task still in flight and forget its result."""
    while handles:
        for h in executor.wait(list(handles), POLL_S):
            handles.pop(h, None)
            try:
                executor.result(h)
            except Exception:  # noqa: BLE001, S110 - the job has failed already; its first error is raised
                pass


def _drive(executor: TileExecutor, ctx: JobContext, tasks: list[Task],
           on_result: Callable[[Any, TaskResult], None], cancelled: Callable[[], bool], shared: Any,
           in_flight: int, retries: int, handles: dict[Any, tuple[int, int]]) -> bool:
    window = max(1, in_flight or executor.window())
    ready: dict[int, TaskResult] = {}
    failed: dict[int, BaseException] = {}
    nxt = done = 0
    stopped = was_cancelled = False
    while True:
        while done in ready:                        # commit in order
            on_result(tasks[done], ready.pop(done))
            done += 1
        if failed:
            stopped = True
        while not stopped and nxt < len(tasks) and nxt - done < window:
            if cancelled():
                stopped = was_cancelled = True
                break
            handles[executor.submit(ctx, tasks[nxt], shared)] = (nxt, 0)
            nxt += 1
        if not handles:
            if failed:
                raise failed[min(failed)]
            if stopped or nxt >= len(tasks):
                return not was_cancelled
            continue
        for h in executor.wait(list(handles), POLL_S):
            i, attempt = handles.pop(h)
            try:
                res = executor.result(h)
            except WorkerLost as exc:
                if failed and i > min(failed):
                    continue                        # would not be committed anyway
                if attempt >= retries:
                    failed[i] = WorkerLostTooOften(f"{tasks[i].label()}: the worker was lost {attempt + 1} times "
                                                   f"({exc})")
                else:
                    handles[executor.submit(ctx, tasks[i], shared)] = (i, attempt + 1)
                continue
            if res.failure is not None:
                failed[i] = res.failure.rebuild()
            else:
                ready[i] = res
        if not stopped and nxt < len(tasks) and cancelled():
            stopped = was_cancelled = True
        # results after the first failure are never committed
        if failed:
            first = min(failed)
            for i in [i for i in ready if i > first]:
                ready.pop(i)
