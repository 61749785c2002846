"""Autoscaling on a live cluster: load raises the emulated CPU of the pods the workload server plays, the
HPA scales the Deployment out within its limits, and back in after the stabilization window once the load
is gone; `netsim top` and `get hpa` show it as kubectl does."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from tests.conftest import NETSIM, live_cluster

pytestmark = pytest.mark.root

SPEC = {"nodes": 2, "autoscaling": {"syncPeriod": "1s", "metricResolution": "2s", "downscaleStabilization": "3s"}}
APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx, ports: [{containerPort: 80}], resources: {requests: {cpu: 100m}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"""


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "hpa", SPEC, manifests=APP) as c:
        yield c


def netsim(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NETSIM, *args, "--cluster", name], capture_output=True, text=True, timeout=60)


def replicas(c) -> int:
    return c.store.get("Deployment", "default", "web")["spec"]["replicas"]


def wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def test_load_scales_out_and_the_quiet_scales_back_in(cluster):
    assert replicas(cluster) == 1
    stop = threading.Event()
    box = {}
    def run() -> None:
        try:
            box.update(cluster.load("default/client", "svc/default/web", rate=300, duration=20, timeout=1.0,
                                    stop=stop))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            box["exception"] = exc
    t = threading.Thread(target=run)
    t.start()
    try:
        # 300 requests/s at the default 1m per request is ~300m against 100m requested: 4 replicas (the max)
        assert wait_for(lambda: replicas(cluster) == 4, 15), replicas(cluster)
        top = netsim(cluster.name, "top", "pods", "-l", "app=web")
        assert top.returncode == 0 and top.stdout.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        def hpa_row() -> list[str]:
            return netsim(cluster.name, "get", "hpa").stdout.splitlines()[1].split()
        # the REPLICAS column is the status the controller wrote at its last sync: it follows within a period
        assert wait_for(lambda: hpa_row()[6] == "4", 15), (hpa_row(), box)
        row = hpa_row()
        assert row[:3] == ["web", "Deployment/web", "cpu:"] and row[4:6] == ["1", "4"], row
        assert re.fullmatch(r"\d+%/50%", row[3]), row
    finally:
        stop.set()
        t.join()
    assert "exception" not in box and box["ok"] > 0, box
    # the quiet: after the 3 s stabilization window the HPA comes back down to minReplicas
    assert wait_for(lambda: replicas(cluster) == 1, 20), replicas(cluster)
    events = [e for e in netsim(cluster.name, "events").stdout.splitlines() if "SuccessfulRescale" in e]
    assert any("New size: 4" in e or "New size: 2" in e for e in events), events
    assert any("All metrics below target" in e for e in events), events
    nodes = netsim(cluster.name, "top", "nodes")
    assert nodes.returncode == 0 and nodes.stdout.splitlines()[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
