"""A local Ray cluster for the `ray`-marked tests: a head node with no CPU and two worker nodes of one CPU
and one logical GPU each (ray.cluster_utils.Cluster), on loopback only.

Ray gets its own HOME (it writes ~/.ray/auth_token) and temp folder (RAY_TMPDIR: sessions, sockets) under
the test session's tmp dir, and is kept to 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray resolve
its node address to the loopback one). The variables are set before Ray is imported and inherited by every
process Ray starts, and by the test's own subprocess heads.

    def test_x(ray_cluster): ...      # a session fixture (tests/conftest.py): a RayCluster
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"


@dataclass
class RayCluster:
    cluster: Any              # ray.cluster_utils.Cluster
    address: str
    env: dict[str, str]       # the variables a subprocess head needs

    def add_worker_node(self) -> Any:
        return self.cluster.add_node(num_cpus=1, num_gpus=1, node_ip_address=LOOPBACK)

    def worker_nodes(self) -> list[Any]:
        return list(self.cluster.worker_nodes)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("ray", numbered=False)
    env = {"HOME": str(base / "home"), "RAY_TMPDIR": str(base / "t"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    for d in ("home", "t"):
        (base / d).mkdir(exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": LOOPBACK,
                                                            "include_dashboard": False})
    rc = RayCluster(cluster, cluster.address, env)
    for _ in range(2):
        rc.add_worker_node()
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="groundsynth", log_to_driver=False)
    try:
        yield rc
    finally:
        from groundsynth.pipeline.executors.ray_cluster import close_shared

        close_shared()
        ray.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

