"""Ray only (`pytest -m ray`, a step of `make test`): a node removed mid-job, GPU placement from the engines'
declared resources (logical GPUs: two nodes of one GPU each), a loopback-only cluster. The contract shared with
the other executors is in test_executors.py."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from groundsynth.engines import register, unregister
from groundsynth.pipeline.executors.ray_cluster import KEEP_IDLE_S
from groundsynth.pipeline.executors.resources import actor_options, worker_resources
from groundsynth.pipeline.prepare import RunOptions
from groundsynth.pipeline.runner import run_job
from groundsynth.service.journal import Journal
from tests.helpers_engines import HalfGpuSegmenter, WholeGpuSegmenter
from tests.test_executors import Events, check_job, make_spec, reference, source  # noqa: F401,F811 - fixtures

pytestmark = pytest.mark.ray


@pytest.fixture(autouse=True)
def engines():
    from tests.helpers_engines import test_engines

    with test_engines():
        register(HalfGpuSegmenter)
        try:
            yield
        finally:
            unregister("segment", HalfGpuSegmenter.name)


def test_the_cluster_listens_on_loopback_only(ray_cluster):
    import ray

    assert ray_cluster.address.startswith("127.0.0.1:")
    assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {"127.0.0.1"}


def test_a_node_removed_mid_job_costs_nothing(ray_cluster, source, tmp_path, reference):  # noqa: F811
    journal = Journal(tmp_path / "journal.sqlite")
    ev = Events()
    removed = []

    def emit(event):
        ev(event)
        if len(ev.tiles()) == 2 and not removed:
            node = ray_cluster.worker_nodes()[0]
            ray_cluster.cluster.remove_node(node)
            removed.append(node)

    opts = RunOptions(executor="ray", workers=2, ray_address=ray_cluster.address, batch_size=2)
    try:
        assert run_job("n", make_spec(source, seg={"sleep": 0.03}), tmp_path, journal, emit, lambda: False,
                       opts) == "SUCCEEDED"
        assert removed
        check_job(journal, "n", tmp_path / "jobs" / "n", ev.tiles(), reference)
    finally:
        if removed:
            ray_cluster.add_worker_node()
            ray_cluster.cluster.wait_for_nodes()
        journal.close()


def test_small_models_share_a_gpu_and_a_vlm_gets_a_whole_one(ray_cluster):
    import ray

    from groundsynth.pipeline.executors.ray_cluster import _Pool
    from groundsynth.pipeline.executors.resources import actors_for

    cluster = ray.cluster_resources()
    assert cluster["GPU"] == 2
    half = actor_options(worker_resources([HalfGpuSegmenter], "cuda"), cluster["GPU"])
    assert half == {"num_cpus": 0.25, "num_gpus": 0.5}
    pool = _Pool(half, actors_for(half, cluster))
    try:
        assert len(pool.actors) == 4                                   # 2 GPUs / 0.5
        where = ray.get([a.handle.placement.remote() for a in pool.actors], timeout=60)
        per_gpu = Counter((node, tuple(gpus)) for node, gpus in where)
        assert sorted(per_gpu.values()) == [2, 2]                      # two actors on each GPU
        assert ray.available_resources().get("GPU", 0) == 0
    finally:
        pool.kill()
    whole = actor_options(worker_resources([WholeGpuSegmenter, HalfGpuSegmenter], "cuda"), cluster["GPU"])
    assert whole["num_gpus"] == 1.0                                    # a worker drives one GPU at most
    pool = _Pool(whole, actors_for(whole, cluster))
    try:
        where = ray.get([a.handle.placement.remote() for a in pool.actors], timeout=60)
        assert len(where) == 2 and len({node for node, _ in where}) == 2   # one whole GPU each
    finally:
        pool.kill()
    # on the CPU, or with device auto on a cluster without GPUs, no GPU is asked for
    assert actor_options(worker_resources([WholeGpuSegmenter], "cpu"), 2)["num_gpus"] == 0
    assert actor_options(worker_resources([WholeGpuSegmenter], "auto"), 0)["num_gpus"] == 0


def test_a_gpu_job_runs_on_half_gpu_actors(ray_cluster, source, tmp_path):  # noqa: F811
    spec = make_spec(source, variants=1)
    spec.stages[0].engine = HalfGpuSegmenter.name
    journal = Journal(tmp_path / "journal.sqlite")
    opts = RunOptions(executor="ray", ray_address=ray_cluster.address, device="cuda", batch_size=4)
    ev = Events()
    assert run_job("g", spec, tmp_path, journal, ev, lambda: False, opts) == "SUCCEEDED"
    assert len(journal.tiles("g")) == 24 and len(set(ev.tiles())) == 24
    journal.close()


def test_actors_wait_for_the_next_job_of_the_same_resources_then_go(ray_cluster, source, tmp_path):  # noqa: F811
    from groundsynth.pipeline.executors.ray_cluster import shared_ray_executor

    ex = shared_ray_executor(ray_cluster.address, 2)
    opts = RunOptions(executor="ray", workers=2, ray_address=ray_cluster.address, batch_size=4)
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        assert run_job("k1", make_spec(source), tmp_path, journal, Events(), lambda: False, opts) == "SUCCEEDED"
        first = sorted(ex.actor_pids())
        assert len(first) == 2                                   # the job is over; its workers wait
        assert run_job("k2", make_spec(source), tmp_path, journal, Events(), lambda: False, opts) == "SUCCEEDED"
        assert sorted(ex.actor_pids()) == first                  # the next job started on the same, warm ones
        ex.keep_idle_s = 0.2
        assert run_job("k3", make_spec(source), tmp_path, journal, Events(), lambda: False, opts) == "SUCCEEDED"
        deadline = time.monotonic() + 30
        while ex.actor_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ex.actor_pids() == []                             # then they go: the CPUs return to the cluster
    finally:
        ex.keep_idle_s = KEEP_IDLE_S
        journal.close()


def test_a_local_cluster_runs_its_workers_at_the_heads_priority(ray_cluster, tmp_path):
    # Ray's default worker niceness (15) let the head's own threads starve the workers on a small machine
    code = ("import os, ray\n"
            "from groundsynth.pipeline.executors.ray_cluster import RayExecutor\n"
            "ex = RayExecutor()\n"
            "f = ray.remote(num_cpus=1)(lambda: os.nice(0))\n"
            "print('nice', ray.get(f.remote(), timeout=120))\n"
            "ex.close()\n")
    env = {**os.environ, **ray_cluster.env, "RAY_ADDRESS": ""}
    env.pop("RAY_worker_niceness", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nice 0" in out.stdout
