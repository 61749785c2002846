"""Node leases: a node whose lease is renewed stays Ready however long the daemon's pass (and with it the
kubelets' status heartbeat) takes; a node whose kubelet is gone loses both and goes Unknown."""

from __future__ import annotations

import time

from netsim.controlplane import objects as o
from netsim.controlplane.leases import (
    LEASE_NAMESPACE,
    LeaseRenewer,
    renew,
    renew_interval,
    renew_time,
    status_interval,
)
from netsim.controlplane.nodes import node_ready
from netsim.store import MemoryStore

from .conftest import deployment


def test_a_renewed_lease_keeps_its_node_ready_through_a_long_pass(h):
    h.add_nodes(2)
    h.apply(deployment(replicas=4))
    assert h.converge().converged
    # A pass three grace periods long: no status heartbeat from any kubelet meanwhile; node-1's lease was
    # renewed by its own thread, node-2's kubelet is gone (no lease at all).
    h.clock.advance(3 * h.config.node_monitor_grace_seconds)
    renew(h.store, ["node-1"], h.clock.now() - 1)
    h.once()
    nodes = {o.name(n): n for n in h.store.list("Node")}
    assert node_ready(nodes["node-1"])
    assert o.condition(nodes["node-2"], "Ready")["status"] == "Unknown"
    reasons = [(e["reason"], e["object"]) for e in h.store.events_since(0) if e["reason"] == "NodeNotReady"]
    assert all("node-1" not in ref for _, ref in reasons)
    assert all(o.is_ready(p) for p in h.pods() if o.node_name(p) == "node-1")


def test_a_stale_lease_does_not_hide_a_silent_node(h):
    h.add_nodes(1)
    renew(h.store, ["node-1"], h.clock.now())
    h.clock.advance(2 * h.config.node_monitor_grace_seconds)
    h.once()
    assert o.condition(h.store.list("Node")[0], "Ready")["status"] == "Unknown"


def test_the_renewer_renews_live_nodes_on_its_own_thread():
    store = MemoryStore()
    alive = ["node-1", "node-2"]
    r = LeaseRenewer(lambda: store, lambda: list(alive), 0.02, time.time)
    r.start()
    try:
        deadline = time.monotonic() + 5
        while r.renewals < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        first = renew_time(store.get("Lease", LEASE_NAMESPACE, "node-2"))
        alive.remove("node-2")  # failed: its kubelet stops renewing
        seen = r.renewals
        while r.renewals < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        one, two = (store.get("Lease", LEASE_NAMESPACE, n) for n in ("node-1", "node-2"))
    finally:
        r.stop()
        r.join(5)
    assert not r.is_alive()  # and it closed the store it was given
    assert one["spec"]["holderIdentity"] == "node-1" and one["spec"]["leaseDurationSeconds"] == 40
    assert renew_time(one) > renew_time(two) and renew_time(two) >= first


def test_renew_interval_is_a_quarter_of_the_grace_period_and_status_is_posted_less_often():
    assert renew_interval(40) == 10 and renew_interval(10) == 2.5 and renew_interval(400) == 10
    assert status_interval(10) == 5 and status_interval(40) == 10
