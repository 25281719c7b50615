"""`ray`: tile batches run in Ray actors, on a cluster (`--ray-address HOST:PORT`) or on a local one.

Needs the optional `ray` extra (ray==2.60.0). Each actor is one worker process holding the job's
engines (built once per job, weights once per process) and the real tiles it made; its options come
from the engines' declared resources (groundsynth.pipeline.executors.resources), so small models
share a GPU and a VLM gets a whole one. The job context and the synthesis state are put in the object
store once per job (ray.put) and passed by reference. Actors are shared by the jobs of this process
that run at the same time and need the same resources. When the last of them ends the actors wait
`keep_idle_s` (KEEP_IDLE_S, 30 s) for the next job of the same resources, which then starts on warm
workers as on the process pool; after that, or at once when a job needs other resources (another shape
cannot start while they hold the CPUs and GPUs), they are stopped and their resources go back to the
cluster.

Fault tolerance: an actor that dies (its process killed, its node removed) fails the batches it
held; the head submits them again (to another actor) and a replacement actor is started, used once
it is ready. The workspace must be on storage every node sees at the same path (workers write the
tiles, the head records them).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from groundsynth.pipeline.context import JobContext, StateFile, Task, TaskResult
from groundsynth.pipeline.executors.base import TileExecutor, WorkerLost
from groundsynth.pipeline.executors.resources import actor_options, actors_for
from groundsynth.request.errors import FailedPrecondition

log = logging.getLogger("groundsynth.ray")
PER_ACTOR = 2           # batches given to one actor at once (one running, one waiting behind it)
KEEP_IDLE_S = 30.0      # how long the actors of a finished job wait for the next job of the same resources


class TileWorker:
    """The actor: one worker process."""

    def ready(self) -> str:
        import groundsynth.pipeline.worker  # noqa: F401 - import the pipeline before the first task

        return f"{socket.gethostname()}:{os.getpid()}"

    def pid(self) -> int:
        return os.getpid()

    def placement(self) -> tuple[str, list[str]]:
        """(node id, GPU ids Ray gave this worker)."""
        import ray

        return ray.get_runtime_context().get_node_id(), [str(g) for g in ray.get_gpu_ids()]

    def run(self, ctx: JobContext, task: Task, shared: Any = None) -> TaskResult:
        from groundsynth.pipeline.worker import run_task

        return run_task(ctx, task, shared)


class _Actor:
    def __init__(self, handle: Any):
        self.handle = handle
        self.ready_ref = handle.ready.remote()
        self.ready = False
        self.inflight: set[Any] = set()


class _Handle:
    __slots__ = ("ctx", "task", "shared", "ref", "actor", "pool")

    def __init__(self, ctx: JobContext, task: Task, shared: Any, pool: _Pool):
        self.ctx, self.task, self.shared, self.pool = ctx, task, shared, pool
        self.ref: Any = None
        self.actor: _Actor | None = None


class _Pool:
    """The actors of one resource shape and the batches waiting for one of them."""

    def __init__(self, options: dict[str, Any], size: int):
        import ray

        self.cls = ray.remote(TileWorker).options(max_restarts=0, max_task_retries=0, **options)
        self.options, self.size = options, size
        self.actors = [_Actor(self.cls.remote()) for _ in range(size)]
        self.queue: list[_Handle] = []
        self.jobs: set[str] = set()          # jobs using these actors; the actors go keep_idle_s after the last
        self.idle_since: float | None = None

    def kill(self) -> None:
        import ray

        for a in self.actors:
            try:
                ray.kill(a.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors = []

    def replace(self, actor: _Actor) -> None:
        import ray

        if actor in self.actors:
            self.actors.remove(actor)
            try:
                ray.kill(actor.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.actors.append(_Actor(self.cls.remote()))

    def dispatch(self, ctx_ref: Callable[[JobContext], Any], prefer: Callable[[_Handle], Any]) -> None:
        while self.queue:
            free = [a for a in self.actors if a.ready and len(a.inflight) < PER_ACTOR]
            if not free:
                return
            h = self.queue.pop(0)
            home = prefer(h)        # the actor that holds the batch's real tiles in memory, if free
            actor = home if home in free else min(free, key=lambda a: len(a.inflight))
            h.ref = actor.handle.run.remote(ctx_ref(h.ctx), h.task, h.shared)
            h.actor = actor
            actor.inflight.add(h)


class RayExecutor(TileExecutor):
    name = "ray"

    def __init__(self, address: str = "", workers: int = 0, keep_idle_s: float = KEEP_IDLE_S):
        try:
            import ray
        except ImportError:
            raise FailedPrecondition("the ray executor needs the optional 'ray' extra: pip install ray==2.60.0",
                                     "executor") from None
        self.address, self.workers, self.keep_idle_s = address, workers, keep_idle_s
        self.started_here = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"namespace": "groundsynth", "log_to_driver": False,
                                      "logging_level": logging.WARNING}
            if address:
                ray.init(address=address, **kwargs)
            else:   # a local cluster on this machine, reachable on loopback only
                # its workers at the head's priority, as the process pool's: Ray's default (niceness 15)
                # lets the head's own threads (overviews, the report) starve them on a small machine
                os.environ.setdefault("RAY_worker_niceness", "0")
                ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
                self.started_here = True
        self._pools: dict[tuple, _Pool] = {}
        self._ctx_refs: dict[str, tuple[JobContext, Any]] = {}
        self._home: dict[tuple[str, str], _Actor] = {}      # (job, real tile) -> the actor that made it
        self._lock = threading.RLock()

    def slots(self) -> int:
        import ray

        return self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    # ------------------------------------------------------------ pools
    def pool_for(self, ctx: JobContext) -> _Pool:
        import ray

        cluster = ray.cluster_resources()
        options = actor_options(ctx.resources, cluster.get("GPU", 0.0))
        key = tuple(sorted(options.items()))
        with self._lock:
            if key not in self._pools:
                self._stop_idle(0.0)          # idle actors of other resources would hold what these need
                self._pools[key] = _Pool(options, actors_for(options, cluster, self.workers))
            pool = self._pools[key]
            pool.idle_since = None
            return pool

    def _stop_idle(self, older_than: float) -> None:
        """Stop the pools that no job has used for `older_than` seconds."""
        now = time.monotonic()
        with self._lock:
            for key, pool in list(self._pools.items()):
                if pool.idle_since is not None and now - pool.idle_since >= older_than:
                    del self._pools[key]
                    pool.kill()

    def _ctx_ref(self, ctx: JobContext) -> Any:
        import ray

        with self._lock:
            held = self._ctx_refs.get(ctx.job_id)
            if held is None or held[0] is not ctx:
                held = (ctx, ray.put(ctx))
                self._ctx_refs[ctx.job_id] = held
            return held[1]

    def _prefer(self, h: _Handle) -> Any:
        from collections import Counter

        from groundsynth.pipeline.context import FitTask, SyntheticTask

        if isinstance(h.task, SyntheticTask):
            tiles = [src.tile_id for src, _ in h.task.items]
        elif isinstance(h.task, FitTask):
            tiles = [src.tile_id for src in h.task.sample]
        else:
            return None
        homes = Counter(self._home.get((h.ctx.job_id, t)) for t in tiles)
        homes.pop(None, None)
        return homes.most_common(1)[0][0] if homes else None

    # ------------------------------------------------------------ TileExecutor
    def submit(self, ctx: JobContext, task: Task, shared: Any = None) -> Any:
        pool = self.pool_for(ctx)
        h = _Handle(ctx, task, shared, pool)
        with self._lock:
            pool.jobs.add(ctx.job_id)
            pool.queue.append(h)
            pool.dispatch(self._ctx_ref, self._prefer)
        return h

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        import ray

        with self._lock:
            pools = {id(h.pool): h.pool for h in handles}.values()
            starting = {a.ready_ref: (p, a) for p in pools for a in p.actors if not a.ready}
            refs = [h.ref for h in handles if h.ref is not None]
        if not refs and not starting:
            time.sleep(min(timeout, 0.1))
            return []
        done, _ = ray.wait(refs + list(starting), num_returns=1, timeout=timeout)
        if done:
            done, _ = ray.wait(refs + list(starting), num_returns=len(refs) + len(starting), timeout=0)
        finished = set(done)
        with self._lock:
            for ref in finished & set(starting):
                pool, actor = starting[ref]
                try:
                    ray.get(ref)
                    actor.ready = True
                except ray.exceptions.RayError as exc:
                    log.warning("a Ray worker failed to start (%s); starting another", type(exc).__name__)
                    pool.replace(actor)
            for pool in pools:
                pool.dispatch(self._ctx_ref, self._prefer)
        return [h for h in handles if h.ref is not None and h.ref in finished]

    def result(self, handle: Any) -> TaskResult:
        import ray

        try:
            res = ray.get(handle.ref)
            if handle.actor is not None and res.failure is None:
                with self._lock:
                    for rec in res.records:
                        if rec.kind == "real":
                            self._home[(handle.ctx.job_id, rec.tile_id)] = handle.actor
            return res
        except ray.exceptions.RayTaskError as exc:       # not from run_task (which returns failures)
            raise exc.as_instanceof_cause() from None
        except ray.exceptions.RayError as exc:           # actor died, node removed, object lost
            with self._lock:
                if handle.actor is not None:
                    handle.pool.replace(handle.actor)
            raise WorkerLost(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        finally:
            with self._lock:
                if handle.actor is not None:
                    handle.actor.inflight.discard(handle)

    def share(self, state: StateFile, load: Callable[[], Any]) -> Any:
        import ray

        from groundsynth.pipeline.context import SharedState

        return ray.put(SharedState(state.sha256, load()))

    def release(self, job_id: str) -> None:
        """The job is over; actors no running job uses wait `keep_idle_s` for the next job, then are stopped,
        so their CPUs and GPUs go back to the cluster (other drivers, other resource shapes)."""
        idle = False
        with self._lock:
            self._ctx_refs.pop(job_id, None)
            for key in [k for k in self._home if k[0] == job_id]:
                del self._home[key]
            for pool in self._pools.values():
                pool.jobs.discard(job_id)
                if not pool.jobs and not pool.queue and pool.idle_since is None:
                    pool.idle_since = time.monotonic()
                    idle = True
        if not idle:
            return
        if self.keep_idle_s <= 0:
            self._stop_idle(0.0)
        else:
            reaper = threading.Timer(self.keep_idle_s, self._stop_idle, (self.keep_idle_s,))
            reaper.daemon = True
            reaper.start()

    def actor_pids(self) -> list[int]:
        """Process ids of the ready actors (tests kill them)."""
        import ray

        with self._lock:
            actors = [a for p in self._pools.values() for a in p.actors if a.ready]
        return [int(ray.get(a.handle.pid.remote(), timeout=30)) for a in actors]

    def close(self) -> None:
        import ray

        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
            self._ctx_refs.clear()
            self._home.clear()
        for pool in pools:
            pool.kill()
        if self.started_here and ray.is_initialized():
            ray.shutdown()


_shared: dict[tuple[str, int], RayExecutor] = {}
_shared_lock = threading.Lock()


def shared_ray_executor(address: str = "", workers: int = 0) -> RayExecutor:
    with _shared_lock:
        key = (address, workers)
        if key not in _shared:
            _shared[key] = RayExecutor(address, workers)
        return _shared[key]


def close_shared() -> None:
    with _shared_lock:
        ex = list(_shared.values())
        _shared.clear()
    for e in ex:
        e.close()
