"""Containers as the kubelet runs them: `args` without `command` are flags for the image's entrypoint, which
the workload server plays (nothing is exec'd); a readiness probe gates Ready and the EndpointSlice from the
first pass, and probes on ports the container never declares are answered."""

from __future__ import annotations

import os
import time

import pytest

from netsim.api import Cluster
from tests.conftest import unique_name

pytestmark = pytest.mark.root


def _cmdlines_with(marker: str) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            out.append(cmd)
    return out


def _ready_endpoints(c: Cluster, service: str) -> list[str]:
    out = []
    for sl in c.store.list("EndpointSlice"):
        if (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name") != service:
            continue
        out += [a for ep in sl.get("endpoints") or [] if (ep.get("conditions") or {}).get("ready")
                for a in ep.get("addresses") or []]
    return out


def test_args_without_command_are_played_by_the_workload_server():
    name = unique_name("ep")
    marker = f"--netsim-marker={name}"
    c = Cluster.up(None, name=name)
    try:
        c.apply(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.39
        # Flags for the image's entrypoint; run as a program (the old behaviour) they would be a shell that
        # stays up with the marker in its command line.
        args: [sh, -c, "sleep 60", "{marker}"]
        ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
""", timeout=60)
        pods = [p for p in c.store.list("Pod") if (p["metadata"].get("labels") or {}).get("app") == "web"]
        assert len(pods) == 2
        for p in pods:
            conds = {x["type"]: x["status"] for x in p["status"].get("conditions") or []}
            assert conds.get("Ready") == "True", p["status"]
            states = [s.get("state") for s in p["status"].get("containerStatuses") or []]
            assert all("running" in (s or {"running": {}}) for s in states), states
            assert all(s.get("restartCount", 0) == 0 for s in p["status"].get("containerStatuses") or [])
        assert len(_ready_endpoints(c, "web")) == 2
        assert c.probe("node/node-1", "svc/default/web", [80], timeout=1)[0].connected
        assert _cmdlines_with(marker) == []  # the args were never exec'd
    finally:
        c.down()


def test_readiness_probe_gates_endpoints_from_the_first_pass_and_undeclared_ports_answer():
    c = Cluster.up(None, name=unique_name("rg"))
    try:
        start = time.monotonic()
        c.apply("""
apiVersion: v1
kind: Pod
metadata: {name: gated, labels: {app: gated}}
spec:
  containers:
  - name: c
    image: x
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 9901}, initialDelaySeconds: 2, periodSeconds: 1}
  - name: side
    image: x
    readinessProbe: {httpGet: {port: 9902, path: /healthz}, periodSeconds: 1}
    livenessProbe: {exec: {command: [/bin/only-in-the-image]}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: gated}
spec: {selector: {app: gated}, ports: [{port: 80, targetPort: 8080}]}
""", wait=False)
        first_ready = None
        while time.monotonic() - start < 20:
            if _ready_endpoints(c, "gated"):
                first_ready = time.monotonic() - start
                break
            time.sleep(0.005)
        assert first_ready is not None, "never ready: the probes on undeclared ports were not answered"
        assert first_ready >= 2.0, f"ready endpoint {first_ready:.3f} s after apply, before initialDelaySeconds"
        deadline = time.monotonic() + 10  # kube-proxy programs the endpoint on its next sync
        while not c.probe("node/node-1", "svc/default/gated", [80], timeout=1)[0].connected:
            assert time.monotonic() < deadline, "the ready endpoint was never programmed"
            time.sleep(0.1)
    finally:
        c.down()
