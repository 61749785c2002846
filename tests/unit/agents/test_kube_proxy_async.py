"""kube-proxy syncs (netsim/agents/kube_proxy.py) run beside the daemon's passes: a round of node syncs (a hundred iptables-restores at
10,000 endpoints) no longer holds up the kubelets; a node busy with an older state syncs again once done,
and the convergence marker waits for every running or deferred sync."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from netsim.agents.kube_proxy import KubeProxy
from netsim.controlplane.nodes import HostFacts, node_view
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.model.timing import TimingSpec
from netsim.node.sync_runner import SyncRunner
from netsim.store import MemoryStore


class _Proxy:
    """A node's kube-proxy whose sync waits until the test lets it finish."""

    def __init__(self, gate: threading.Event):
        self.gate, self.synced = gate, 0

    def sync(self, sps, eps, changed=None):
        assert self.gate.wait(10)
        self.synced += 1
        counts = SimpleNamespace(service_ports=len(sps), nat_rules=0)
        return SimpleNamespace(counts=counts, full=True, payload_bytes=0, ms=0.0)


def ALIVE(node: str) -> bool:
    return True


def _daemon(store, nodes, gate):
    """kube-proxy on `nodes` (netsim/agents/kube_proxy.py) with node agents that wait for the gate."""
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "kpa"},
                          "spec": {"nodes": [{"name": n} for n in nodes]}}, Source("c.yaml"))
    recs = {n: node_view(spec, i, HostFacts()) for i, n in enumerate(nodes)}
    d = KubeProxy(spec, recs, FakeKernel(), store, ThreadPoolExecutor(max_workers=4),
                  lambda obj: parse_object(obj, Source("<store>")), lambda *e: None)
    now = time.monotonic()
    d.agents = {n: _Proxy(gate) for n in nodes}
    d.runners = {n: SyncRunner(0.0, 30.0, now) for n in nodes}
    d.timing = TimingSpec()
    return d


def _service(store, name):
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                  "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}})


def test_a_running_sync_does_not_hold_up_the_pass_and_is_redone_with_the_newer_state():
    store, gate = MemoryStore(), threading.Event()
    _service(store, "a")
    d = _daemon(store, ["node-1", "node-2"], gate)
    try:
        t = threading.Thread(target=d.sync, args=(ALIVE,))
        t.start()
        t.join(3)
        assert not t.is_alive(), "the pass waited for the kube-proxy syncs"
        assert d.pending() == ["kube-proxy on node-1: syncing", "kube-proxy on node-2: syncing"]
        _service(store, "b")  # changes while both nodes still sync the first state
        d.sync(ALIVE)
        assert set(d.deferred) == {"node-1", "node-2"} and len(d.pending()) == 2
        gate.set()
        deadline = time.monotonic() + 10
        while d.pending() and time.monotonic() < deadline:
            d.sync(ALIVE)
            time.sleep(0.02)
        assert d.pending() == []
        assert all(p.synced == 2 for p in d.agents.values())  # the second with the newer state
    finally:
        gate.set()
        d.pool.shutdown(wait=True)


def test_a_change_that_takes_something_away_is_synced_before_the_pass_goes_on():
    """The drain pass: the next kubelet step may remove the sandbox behind a vanished endpoint, so every node
    must have dropped it first."""
    store, gate = MemoryStore(), threading.Event()
    _service(store, "a")
    _service(store, "b")
    d = _daemon(store, ["node-1", "node-2"], gate)
    try:
        gate.set()
        d.sync(ALIVE)
        deadline = time.monotonic() + 10
        while d.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        gate.clear()
        store.delete("Service", "default", "b")
        t = threading.Thread(target=d.sync, args=(ALIVE,))
        t.start()
        t.join(0.5)
        assert t.is_alive(), "a removal went on without waiting for the nodes"
        gate.set()
        t.join(10)
        assert not t.is_alive() and d.pending() == []
        assert all(p.synced == 2 for p in d.agents.values())
    finally:
        gate.set()
        d.pool.shutdown(wait=True)
