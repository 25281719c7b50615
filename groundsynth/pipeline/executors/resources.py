"""What one worker needs to run a job's engines: CPU, share of a GPU, memory (engines declare them:
groundsynth.engines.base.Engine.num_cpus / num_gpus / memory_mb), and the Ray actor options for it.

A worker holds all the job's engines and runs them one after the other on a batch, so it needs the
largest CPU demand, the sum of the GPU shares (capped at one whole GPU: a process drives one device)
and the sum of the memory. GPU shares count only when the job runs on a GPU device: several small
models (0.25 each) share a GPU, a VLM (1.0) gets a whole one.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from groundsynth.request.errors import FailedPrecondition

MiB = 1024 * 1024


def worker_resources(classes: Sequence[type], device: str) -> dict[str, Any]:
    cpus = max((float(getattr(c, "num_cpus", 1.0)) for c in classes), default=1.0)
    gpus = min(1.0, sum(float(getattr(c, "num_gpus", 0.0)) for c in classes))
    memory = sum(int(getattr(c, "memory_mb", 0)) for c in classes)
    return {"num_cpus": cpus, "num_gpus": round(gpus, 4), "memory_mb": memory, "device": device}


def wants_gpu(resources: dict[str, Any], cluster_gpus: float) -> float:
    """The GPU share to request: the engines' share when the job runs on a GPU, else 0."""
    device = str(resources.get("device", "cpu"))
    share = float(resources.get("num_gpus", 0.0))
    if share <= 0 or device == "cpu":
        return 0.0
    if device == "auto":
        return share if cluster_gpus > 0 else 0.0
    if cluster_gpus <= 0:
        raise FailedPrecondition(f"the job's engines run on {device!r}, but the Ray cluster has no GPU; "
                                 "add GPU workers or use device cpu", "device")
    return share


def actor_options(resources: dict[str, Any], cluster_gpus: float) -> dict[str, Any]:
    """Ray actor options for a worker of a job with these resources."""
    opts: dict[str, Any] = {"num_cpus": float(resources.get("num_cpus", 1.0)),
                            "num_gpus": wants_gpu(resources, cluster_gpus)}
    if resources.get("memory_mb"):
        opts["memory"] = int(resources["memory_mb"]) * MiB
    return opts


def actors_for(options: dict[str, Any], cluster: dict[str, float], requested: int = 0) -> int:
    """How many workers: `requested`, else as many as the cluster's CPUs (and GPUs) hold, at least one."""
    if requested > 0:
        return requested
    n = math.floor(cluster.get("CPU", 1.0) / options["num_cpus"]) if options["num_cpus"] > 0 else 1
    if options["num_gpus"] > 0:
        n = min(n, math.floor(cluster.get("GPU", 0.0) / options["num_gpus"] + 1e-9))
    return max(1, n)
