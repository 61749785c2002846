"""readinessProbe: exec and tcpSocket probes gate a pod's Ready condition, and endpoints follow."""

from __future__ import annotations

import time

import pytest

from netsim.api import Cluster
from tests.conftest import unique_name

pytestmark = pytest.mark.root


def _ready(c: Cluster, name: str) -> bool:
    pod = c.store.get("Pod", "default", name) or {}
    conds = {x["type"]: x["status"] for x in (pod.get("status") or {}).get("conditions") or []}
    return conds.get("Ready") == "True"


def _wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_readiness_probes_gate_ready_and_endpoints(tmp_path):
    flag = tmp_path / "ready"
    c = Cluster.up(None, name=unique_name("rp"))
    try:
        c.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: gated, labels: {{app: gated}}}}
spec:
  containers:
  - name: c
    image: x
    ports: [{{containerPort: 8080}}]
    command: [sleep, "3600"]
    readinessProbe: {{exec: {{command: [test, -e, "{flag}"]}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: tcp}}
spec:
  containers:
  - name: c
    image: x
    ports: [{{containerPort: 8080, name: web}}]
    readinessProbe: {{tcpSocket: {{port: web}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: gated}}
spec: {{selector: {{app: gated}}, ports: [{{port: 80, targetPort: 8080}}]}}
""", wait=False)
        assert _wait(lambda: _ready(c, "tcp"))
        time.sleep(2)
        assert not _ready(c, "gated")
        refused = c.probe("node/node-1", "svc/default/gated", [80], timeout=0.5)
        assert refused[0].outcome == "refused"  # no ready endpoint: kube-proxy rejects
        flag.touch()
        assert _wait(lambda: _ready(c, "gated"))
        assert _wait(lambda: c.probe("node/node-1", "svc/default/gated", [80], timeout=0.5)[0].connected)
    finally:
        c.down()


def test_http_get_probe_of_a_real_process_is_judged_by_its_status_code():
    c = Cluster.up(None, name=unique_name("hp"))
    try:
        c.apply("""
apiVersion: v1
kind: Pod
metadata: {name: ok}
spec:
  containers:
  - name: c
    image: x
    command: [python3, -m, http.server, "8080"]
    readinessProbe: {httpGet: {port: 8080, path: /}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: notfound}
spec:
  containers:
  - name: c
    image: x
    command: [python3, -m, http.server, "8080"]
    readinessProbe: {httpGet: {port: 8080, path: /no-such-file-here}, periodSeconds: 1}
""", wait=False)
        assert _wait(lambda: _ready(c, "ok"))
        time.sleep(2.5)  # the 404 pod has been probed more than twice by now
        assert not _ready(c, "notfound")  # answered 404: listening, but not ready
    finally:
        c.down()
