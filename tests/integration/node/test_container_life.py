"""Containers over their life as the kubelet runs them (probes, liveness restarts, apply's waiting) and the
node fields a kubelet sets, on one shared three-node cluster with zones."""

from __future__ import annotations

import os
import time

import pytest

from netsim.api import Cluster
from netsim.controlplane.nodes import goarch
from tests.conftest import live_cluster

pytestmark = pytest.mark.root

SPEC = {"nodes": [{"name": "node-1", "zone": "zone-a", "region": "r1"},
                  {"name": "node-2", "zone": "zone-b", "region": "r1"},
                  {"name": "node-3", "zone": "zone-b", "region": "r1"}]}


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "life", SPEC) as c:
        yield c


def _wait(predicate, timeout: float = 20.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_selectors_and_affinities_written_for_real_clusters_schedule(cluster: Cluster):
    arch = goarch(os.uname().machine)
    node = cluster.store.get("Node", None, "node-2")
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/os"] == labels["beta.kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == labels["beta.kubernetes.io/arch"] == arch
    assert labels["topology.kubernetes.io/zone"] == "zone-b" and labels["topology.kubernetes.io/region"] == "r1"
    info = node["status"]["nodeInfo"]
    assert info["architecture"] == arch and info["kernelVersion"] == os.uname().release
    assert node["status"]["capacity"]["pods"] == "110" and int(node["status"]["capacity"]["cpu"]) >= 1
    cluster.apply(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: zoned}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: zoned}}}}
  template:
    metadata: {{labels: {{app: zoned}}}}
    spec:
      nodeSelector: {{kubernetes.io/os: linux, beta.kubernetes.io/arch: {arch}}}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{{key: topology.kubernetes.io/zone, operator: In, values: [zone-b]}}]
      containers: [{{name: app, image: nginx, ports: [{{containerPort: 80}}]}}]
""", timeout=60)
    pods = [p for p in cluster.pods("default") if p["metadata"]["name"].startswith("zoned-")]
    assert len(pods) == 4
    assert {p["spec"]["nodeName"] for p in pods} <= {"node-2", "node-3"}
    assert all(o_ready(p) for p in pods)


def o_ready(pod) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])
