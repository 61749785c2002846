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


def _apply_service(cluster: Cluster, name: str) -> tuple[float, float]:
    """Seconds an apply of an unrelated Service took, and the longest daemon pass it waited through."""
    from netsim import daemonctl
    t0 = time.monotonic()
    cluster.apply(f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{selector: {{app: many}}, ports: [{{port: 80}}]}}
""", timeout=30)
    elapsed = time.monotonic() - t0
    return elapsed, float((daemonctl.read_marker(cluster.name) or {}).get("passSeconds") or 0.0)


def test_apply_waits_only_for_what_it_applied_and_says_why_not_ready(cluster: Cluster):
    cluster.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 100
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec: {containers: [{name: app, image: nginx, ports: [{containerPort: 80}]}]}
""", timeout=180)
    # Two of each, so one apply that the loaded machine happened to slow down does not decide.
    (b1, p1), (b2, p2) = _apply_service(cluster, "before-1"), _apply_service(cluster, "before-2")
    baseline, pass_before = max(b1, b2), max(p1, p2)
    with pytest.raises(Exception) as err:
        cluster.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: crash}
spec:
  replicas: 1
  selector: {matchLabels: {app: crash}}
  template:
    metadata: {labels: {app: crash}}
    spec: {containers: [{name: app, image: busybox, command: [sh, -c, "exit 3"]}]}
""", timeout=4)
    text = str(err.value)
    assert "pod/crash-" in text and "container app:" in text, text
    assert "CrashLoopBackOff (back-off 10s restarting failed container=app" in text, text
    (a1, p1), (a2, p2) = _apply_service(cluster, "after-1"), _apply_service(cluster, "after-2")
    elapsed, pass_after = min(a1, a2), max(p1, p2)
    # The crashing pod may cost the unrelated apply one pass (the one under way when its write landed),
    # never a wait for that pod: allow one pass, and one more for the noise of a loaded machine.
    longest = max(pass_before, pass_after)
    assert elapsed <= baseline + 2 * longest, (elapsed, baseline, longest)
