"""Rollouts take real time on a live cluster: minReadySeconds holds every new pod back that long before it
counts as available, maxSurge/maxUnavailable bound the pods and the availability at every moment of the
rollout, and a rollout that cannot progress exceeds its progressDeadlineSeconds (Progressing False,
ProgressDeadlineExceeded; `rollout status` exits 1)."""

from __future__ import annotations

import threading
import time

import pytest

from netsim.controlplane import objects as o
from tests.conftest import live_cluster, run_netsim

pytestmark = pytest.mark.root

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  minReadySeconds: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1", ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers: [{name: web, image: "nginx:1", ports: [{containerPort: 80}]}]
"""


def test_rollouts_take_real_time_within_their_bounds(kernel):
    with live_cluster(kernel, "ro", manifests=APP) as c:
        assert c.wait_for("Deployment", "web", condition="Available", timeout=10)  # ready 2 s first
        seen: list[tuple[int, int]] = []  # (pods of web, available replicas) while the rollout runs
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                pods = [p for p in c.store.list("Pod", "default") if o.labels(p).get("app") == "web"
                        and not o.is_terminating(p)]
                d = c.store.get("Deployment", "default", "web")
                seen.append((len(pods), (d.get("status") or {}).get("availableReplicas", 0)))
                time.sleep(0.05)
        t = threading.Thread(target=watch, daemon=True)
        started = time.monotonic()
        t.start()
        try:
            res = c.rollout("update", "web", image="nginx:2", timeout=60)
        finally:
            stop.set()
            t.join()
        took = time.monotonic() - started
        assert res["complete"]
        # one new pod at a time (maxSurge 1, maxUnavailable 0), each available only once it has been ready for
        # minReadySeconds (counted, as upstream, from the Ready condition's whole-second lastTransitionTime: at
        # least 1 of the 2 s)
        assert took >= 3.0, took
        assert max(n for n, _ in seen) <= 4
        assert min(a for _, a in seen) >= 3
        # a rollout whose new pod never gets ready: past progressDeadlineSeconds it has failed
        d = c.store.get("Deployment", "default", "stuck")
        d["spec"]["template"]["spec"]["containers"][0].update(
            command=["sleep", "3600"], readinessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1})
        c.update(d)
        deadline = time.monotonic() + 20
        cond = None
        while time.monotonic() < deadline:
            cond = o.condition(c.store.get("Deployment", "default", "stuck"), "Progressing")
            if cond and cond.get("reason") == "ProgressDeadlineExceeded":
                break
            time.sleep(0.2)
        assert cond is not None and cond["reason"] == "ProgressDeadlineExceeded" and cond["status"] == "False"
        proc = run_netsim("rollout", "status", "deploy/stuck", "--cluster", c.name, "--timeout", "2", check=False)
        assert proc.returncode == 1 and "exceeded its progress deadline" in proc.stderr + proc.stdout
