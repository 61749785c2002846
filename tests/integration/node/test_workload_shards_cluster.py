"""A cluster whose node agent may hold only 3 listeners (NETSIM_WORKLOAD_LISTENERS): the pods past them are
served by workload shard processes, answer probes and readiness checks as the others do, a killed shard's
pods are served again by themselves, and `down` leaves no shard behind."""

from __future__ import annotations

import os
import signal
import time

import pytest

from netsim import daemonproc
from netsim.api import Cluster
from netsim.workload.shards import CAP_ENV
from tests.conftest import unique_name

pytestmark = pytest.mark.root

REPLICAS = 7
MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: c
        image: web
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
"""


def shards_of(name: str) -> list[int]:
    return sorted(pid for pid, (role, _) in daemonproc.find_all(name).items() if role == "workload")


def web_pods(c: Cluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in c.pods("default") if p["metadata"]["name"].startswith("web-"))


def answering(c: Cluster) -> set[str]:
    results = c.probe("node/node-1", "default/*", [8080], timeout=2.0)
    return {r.served_by.rpartition("/")[2] for r in results if r.connected and r.served_by}


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_pods_past_the_agents_listeners_are_served_by_shards(monkeypatch):
    monkeypatch.setenv(CAP_ENV, "3")
    name = unique_name("wsh")
    c = Cluster.up(None, name=name)
    try:
        c.apply(MANIFEST)  # waits until every pod is Ready: their tcpSocket probes connected
        pods = web_pods(c)
        assert len(pods) == REPLICAS
        shards = shards_of(name)
        assert len(shards) >= 2, shards  # 7 pods, 3 listeners a process: the agent's own and two shards
        assert answering(c) == set(pods)
        health = c.status()["daemon"]["components"]["workload"]
        assert sum(s["pods"] for s in health["shards"]) >= REPLICAS - 3
        served = {r.served_by for r in c.probe("node/node-1", "svc/default/web", [80], count=40)}
        assert len(served) >= 3  # kube-proxy spreads over pods in every process
        os.kill(shards[0], signal.SIGKILL)
        # Its pods are served again at once by another shard: every pod answers again, and stays Ready.
        assert wait_for(lambda: shards[0] not in shards_of(name) and answering(c) == set(pods))
        assert all(s["state"] == "running" or s["pid"] == shards[0]
                   for s in c.status()["daemon"]["components"]["workload"]["shards"])
    finally:
        c.down()
    assert shards_of(name) == []
