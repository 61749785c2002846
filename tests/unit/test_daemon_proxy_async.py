"""kube-proxy syncs run beside the daemon's passes: a round of node syncs (a hundred iptables-restores at
10,000 endpoints) no longer holds up the kubelets; a node busy with an older state syncs again once done,
and the convergence marker waits for every running or deferred sync."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from netsim.controlplane.loop import RealClock
from netsim.daemon import Daemon
from netsim.model.timing import TimingSpec
from netsim.node.sync_runner import SyncRunner
from netsim.proxy.tracker import ProxyTracker
from netsim.store import MemoryStore


class _Proxy:
    """A node's kube-proxy whose sync waits until the test lets it finish."""

    def __init__(self, gate: threading.Event):
        self.gate, self.synced = gate, 0

    def sync(self, sps, eps):
        assert self.gate.wait(10)
        self.synced += 1
        counts = SimpleNamespace(service_ports=len(sps), nat_rules=0)
        return SimpleNamespace(counts=counts, full=True, payload_bytes=0, ms=0.0)


def _daemon(store, nodes, gate):
    d = Daemon.__new__(Daemon)  # only what the kube-proxy sync reads: no cluster, no kernel
    now = time.monotonic()
    d.store, d.clock = store, RealClock()
    d.spec = SimpleNamespace(timing=TimingSpec())
    d.kubelet = SimpleNamespace(node_alive=lambda n: True)
    d.proxies = {n: _Proxy(gate) for n in nodes}
    d._proxy_runners = {n: SyncRunner(0.0, 30.0, now) for n in nodes}
    d._proxy_fp, d._proxy_stale_since, d._proxy_held, d._proxy_force = {}, {}, {}, set()
    d._proxy_inflight, d._proxy_deferred, d._proxy_served = {}, set(), (set(), set())
    d._agent_health, d._reported_invalid = {}, {}
    d._dataplane_pool = ThreadPoolExecutor(max_workers=4)
    d.proxy_tracker, d._proxy_rv = ProxyTracker(d._typed_one), None
    return d


def _service(store, name):
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                  "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}})


def test_a_running_sync_does_not_hold_up_the_pass_and_is_redone_with_the_newer_state():
    store, gate = MemoryStore(), threading.Event()
    _service(store, "a")
    d = _daemon(store, ["node-1", "node-2"], gate)
    try:
        t = threading.Thread(target=d._sync_proxies)
        t.start()
        t.join(3)
        assert not t.is_alive(), "the pass waited for the kube-proxy syncs"
        assert d.proxy_pending() == ["kube-proxy on node-1: syncing", "kube-proxy on node-2: syncing"]
        _service(store, "b")  # changes while both nodes still sync the first state
        d._sync_proxies()
        assert set(d._proxy_deferred) == {"node-1", "node-2"} and len(d.proxy_pending()) == 2
        gate.set()
        deadline = time.monotonic() + 10
        while d.proxy_pending() and time.monotonic() < deadline:
            d._sync_proxies()
            time.sleep(0.02)
        assert d.proxy_pending() == []
        assert all(p.synced == 2 for p in d.proxies.values())  # the second with the newer state
    finally:
        gate.set()
        d._dataplane_pool.shutdown(wait=True)


def test_a_change_that_takes_something_away_is_synced_before_the_pass_goes_on():
    """The drain pass: the next kubelet step may remove the sandbox behind a vanished endpoint, so every node
    must have dropped it first."""
    store, gate = MemoryStore(), threading.Event()
    _service(store, "a")
    _service(store, "b")
    d = _daemon(store, ["node-1", "node-2"], gate)
    try:
        gate.set()
        d._sync_proxies()
        deadline = time.monotonic() + 10
        while d.proxy_pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        gate.clear()
        store.delete("Service", "default", "b")
        t = threading.Thread(target=d._sync_proxies)
        t.start()
        t.join(0.5)
        assert t.is_alive(), "a removal went on without waiting for the nodes"
        gate.set()
        t.join(10)
        assert not t.is_alive() and d.proxy_pending() == []
        assert all(p.synced == 2 for p in d.proxies.values())
    finally:
        gate.set()
        d._dataplane_pool.shutdown(wait=True)
