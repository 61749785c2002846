"""kubelet_step timing: heartbeats and event times during a long step; one pass of draining before a
sandbox goes."""

from __future__ import annotations

import threading

from netsim.controlplane import objects as o
from netsim.controlplane.loop import DRAINING, kubelet_step
from netsim.controlplane.nodes import node_ready
from netsim.store import parse_time

from .conftest import deployment


def test_a_long_kubelet_step_keeps_heartbeating(h):
    """Making 40 sandboxes at 0.5 s each (20 s, twice the grace period) leaves no node stale."""
    h.add_nodes(2)
    h.apply(deployment(replicas=40))
    h.once()
    h.once()
    slow = h.kubelet.create_sandbox

    def create(pod):
        h.clock.advance(0.5)
        return slow(pod)

    h.kubelet.create_sandbox = create
    kubelet_step(h.store, h.kubelet, h.clock)
    assert len(h.kubelet.created) == 40
    for node in h.store.list("Node"):
        beat = parse_time(o.condition(node, "Ready")["lastHeartbeatTime"])
        assert h.clock.now() - beat <= 1.5, o.name(node)
    # Each SandboxCreated event carries the time its sandbox started, not the step's start.
    times = [e["time"] for e in h.store.events_since(0) if e["reason"] == "SandboxCreated"]
    assert len(times) == 40 and times == sorted(times) and times[-1] - times[0] == 19.5
    h.once()  # the node-lifecycle controller sees fresh heartbeats
    assert all(node_ready(n) for n in h.store.list("Node"))


def test_a_terminating_pod_keeps_its_sandbox_for_one_pass(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=2))
    assert h.converge().converged
    h.store.update({**h.get("Deployment", "web"), "spec": {**h.get("Deployment", "web")["spec"], "replicas": 1}})
    h.once()
    [gone] = [p for p in h.pods() if o.is_terminating(p)]
    key = o.key(gone)
    kubelet_step(h.store, h.kubelet, h.clock)
    # First step: still serving (the data plane syncs after this step), marked as draining.
    assert key in h.kubelet.sandboxes and (h.get("Pod", o.name(gone))["status"] or {}).get(DRAINING)
    kubelet_step(h.store, h.kubelet, h.clock)
    assert key not in h.kubelet.sandboxes and h.get("Pod", o.name(gone)) is None
    assert h.kubelet.deleted == [key]


def test_terminated_pods_lose_their_sandboxes_together(h):
    """Scaling down tears the sandboxes down concurrently: each deletion here waits until three are under
    way at once, which would time out if the step made them one after another."""
    h.add_nodes(2)
    h.apply(deployment(replicas=3))
    assert h.converge().converged
    h.store.update({**h.get("Deployment", "web"), "spec": {**h.get("Deployment", "web")["spec"], "replicas": 0}})
    h.once()
    keys = sorted(o.key(p) for p in h.pods())
    kubelet_step(h.store, h.kubelet, h.clock)  # draining pass
    barrier = threading.Barrier(3, timeout=5)
    plain = h.kubelet.delete_sandbox

    def delete(pod):
        barrier.wait()
        plain(pod)

    h.kubelet.delete_sandbox = delete
    kubelet_step(h.store, h.kubelet, h.clock)
    assert len(keys) == 3 and sorted(h.kubelet.deleted) == keys
    assert h.pods() == [] and not h.kubelet.sandboxes
    kills = [e for e in h.store.events_since(0) if e["reason"] == "Killing"]
    assert len(kills) == 3


def test_a_long_step_posts_node_status_at_the_period_it_is_given(h):
    """With node leases renewed elsewhere, the daemon posts status every few seconds through a long step
    instead of every second: 20 s of sandboxes with a 5 s period is a handful of status rounds, not 20."""
    h.add_nodes(2)
    h.apply(deployment(replicas=40))
    h.once()
    h.once()
    slow = h.kubelet.create_sandbox

    def create(pod):
        h.clock.advance(0.5)
        return slow(pod)

    h.kubelet.create_sandbox = create
    rv = h.store.current_rv()
    kubelet_step(h.store, h.kubelet, h.clock, heartbeat_seconds=5.0)
    node_writes = [c for c in h.store.changes_since(rv) if c.kind == "Node"]
    assert 2 * 2 <= len(node_writes) <= 2 * 5  # a round per 5 s (at 1 s: 20 rounds)
    for node in h.store.list("Node"):
        assert h.clock.now() - parse_time(o.condition(node, "Ready")["lastHeartbeatTime"]) <= 5.5


def test_an_idle_ready_node_posts_its_status_every_heartbeat_period_not_every_step(h):
    """Steps a second apart with nothing to do write a Ready node's status once per `heartbeat_seconds`
    (its lease says it is alive meanwhile): each such write woke every agent of the daemon."""
    h.add_nodes(2)
    h.once()
    kubelet_step(h.store, h.kubelet, h.clock, heartbeat_seconds=5.0)
    rv = h.store.current_rv()
    for _ in range(4):
        h.clock.advance(1.0)
        kubelet_step(h.store, h.kubelet, h.clock, heartbeat_seconds=5.0)
    assert [c for c in h.store.changes_since(rv) if c.kind == "Node"] == []
    h.clock.advance(1.5)
    kubelet_step(h.store, h.kubelet, h.clock, heartbeat_seconds=5.0)
    assert len([c for c in h.store.changes_since(rv) if c.kind == "Node"]) == 2
