"""Pod termination on a live cluster: preStop hooks, the grace period, SIGKILL for a process that ignores
SIGTERM, and a played container that drains before it stops accepting."""

from __future__ import annotations

import time

import pytest

from netsim.controlplane.events import list_events
from netsim.probe.engine import Probe, run_probes
from tests.conftest import live_cluster

pytestmark = pytest.mark.root

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers: [{name: app, image: busybox, command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80}]
    lifecycle: {preStop: {sleep: {seconds: 2}}}
---
apiVersion: v1
kind: Pod
metadata: {name: drainer, annotations: {netsim.io/drain-seconds: "2"}}
spec:
  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: quick}
spec:
  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: obedient}
spec:
  terminationGracePeriodSeconds: 20
  containers: [{name: app, image: busybox, command: [sleep, "300"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox}]
"""


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "term", {"nodes": 1}, manifests=PODS) as c:
        yield c


def timed_delete(c, name: str) -> float:
    t = time.monotonic()
    c.delete("Pod", name)
    return time.monotonic() - t


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(cluster):
    time.sleep(1.0)  # the shell must have run its `trap` before the signal comes (Ready says it started)
    took = timed_delete(cluster, "stubborn")
    evs = [(e.time, e.reason, e.message) for e in list_events(cluster.store, object="Pod default/stubborn")]
    assert 1.8 <= took < 8, (took, evs, cluster.store.get("Pod", "default", "stubborn"))
    events = [(e.reason, e.message) for e in list_events(cluster.store, object="Pod default/stubborn")]
    assert ("Killing", "Stopping container app") in events


def test_a_container_that_exits_at_sigterm_is_not_restarted_and_the_pod_goes_at_once(cluster):
    """restartPolicy Always does not bring back a container of a pod being deleted (it would run, and
    hold the deletion, until the 20 s grace period's SIGKILL)."""
    took = timed_delete(cluster, "obedient")
    assert took < 10, took
    assert cluster.store.get("Pod", "default", "obedient") is None


def test_a_prestop_sleep_keeps_the_pod_serving_and_holds_the_deletion(cluster):
    ip = cluster.store.get("Pod", "default", "hooked")["status"]["podIP"]
    client = [ep for ep in cluster.sources("default/client")][0]
    t = time.monotonic()
    cluster.delete("Pod", "hooked", wait=False)
    time.sleep(1.0)  # within the hook: still answering, as a real server before its SIGTERM
    [r] = run_probes(cluster.kernel, [Probe(client.netns or "", "default/client", ip, 80, "TCP", 1.0)])
    assert r.outcome == "connected", r.to_json()
    cluster.wait_converged(30)
    assert time.monotonic() - t >= 2.0 and cluster.store.get("Pod", "default", "hooked") is None


def test_a_played_container_drains_for_its_annotation_then_a_plain_one_stops_at_once(cluster):
    ip = cluster.store.get("Pod", "default", "drainer")["status"]["podIP"]
    client = [ep for ep in cluster.sources("default/client")][0]
    t = time.monotonic()
    cluster.delete("Pod", "drainer", wait=False)
    time.sleep(0.8)
    [r] = run_probes(cluster.kernel, [Probe(client.netns or "", "default/client", ip, 80, "TCP", 1.0)])
    assert r.outcome == "connected", r.to_json()
    cluster.wait_converged(30)
    assert time.monotonic() - t >= 2.0
    assert timed_delete(cluster, "quick") < 5
