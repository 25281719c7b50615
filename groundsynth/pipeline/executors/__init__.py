"""Where a job's tile work runs: one seam, three executors (docs/scale-out.md).

    inline   every batch in the head's own thread (the pipeline as it always ran)
    process  a pool of local worker processes, one per core (the default)
    ray      Ray actors on a cluster (--ray-address) or on a local one (the optional `ray` extra)

`get_executor(name, workers, ray_address)` returns the process's shared executor of that kind (the
server runs concurrent jobs on it). The head's loop over tasks is `base.drive`.
"""
from __future__ import annotations

import importlib.util

from groundsynth.pipeline.executors.base import TileExecutor, WorkerLost, drive
from groundsynth.request.errors import FailedPrecondition, InvalidArgument
from groundsynth.request.spec import EXECUTOR_NAMES

EXECUTORS = EXECUTOR_NAMES
DEFAULT_EXECUTOR = "process"

__all__ = ["EXECUTORS", "DEFAULT_EXECUTOR", "TileExecutor", "WorkerLost", "drive", "get_executor",
           "available_executors", "check_executor"]


def available_executors() -> list[str]:
    """The executors this installation can run (ray needs its extra)."""
    return [e for e in EXECUTORS if e != "ray" or importlib.util.find_spec("ray") is not None]


def check_executor(name: str, field: str = "executor") -> str:
    """`name` ("" = the default) if this installation can run it; else InvalidArgument / FailedPrecondition."""
    name = name or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise InvalidArgument(f"expected one of {', '.join(EXECUTORS)}, got {name!r}", field)
    if name not in available_executors():
        raise FailedPrecondition("the ray executor needs the optional 'ray' extra: pip install ray==2.60.0", field)
    return name


def get_executor(name: str = "", workers: int = 0, ray_address: str = "") -> TileExecutor:
    name = check_executor(name)
    if name == "inline":
        from groundsynth.pipeline.executors.inline import InlineExecutor

        return InlineExecutor()
    if name == "process":
        from groundsynth.pipeline.executors.process import shared_process_executor

        return shared_process_executor(workers)
    from groundsynth.pipeline.executors.ray_cluster import shared_ray_executor

    return shared_ray_executor(ray_address, workers)
