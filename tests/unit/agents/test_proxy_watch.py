"""kube-proxy's own loop (netsim/agents/proxy_watch.py) and the store's change notification
(netsim/storewatch.py): a Service or EndpointSlice write reaches the nodes' kube-proxy without any daemon
pass, woken by the write itself; a sync with nothing changed does no listing and no walk over every
endpoint."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from netsim.agents.kube_proxy import KubeProxy
from netsim.agents.proxy_watch import ProxyWatch
from netsim.controlplane.nodes import HostFacts, node_view
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.model.timing import TimingSpec
from netsim.node.sync_runner import SyncRunner
from netsim.store import SQLiteStore
from netsim.storewatch import ChangeWaiter


class _Agent:
    """A node's kube-proxy agent that records what it was asked to sync and when."""

    def __init__(self):
        self.syncs: list[tuple[float, int]] = []  # (time, endpoints of default/a's port)
        self.done = threading.Event()

    def sync(self, sps, eps, changed=None):
        self.syncs.append((time.monotonic(), sum(len(v) for v in eps.values())))
        self.done.set()
        return SimpleNamespace(counts=SimpleNamespace(service_ports=len(sps), nat_rules=0), full=False,
                               payload_bytes=0, ms=0.0)


def _proxy(store, nodes=("node-1", "node-2")) -> KubeProxy:
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "kpw"},
                          "spec": {"nodes": [{"name": n} for n in nodes]}}, Source("c.yaml"))
    recs = {n: node_view(spec, i, HostFacts()) for i, n in enumerate(nodes)}
    kp = KubeProxy(spec, recs, FakeKernel(), store, ThreadPoolExecutor(max_workers=2),
                   lambda obj: parse_object(obj, Source("<store>")), lambda *e: None)
    now = time.monotonic()
    kp.agents = {n: _Agent() for n in nodes}
    kp.runners = {n: SyncRunner(0.0, 30.0, now) for n in nodes}
    kp.timing = TimingSpec()
    return kp


def _service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}


def _slice(service: str, ips: list[str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def test_a_write_reaches_kube_proxy_without_a_pass(tmp_path):
    """Nothing calls `sync` but the watch: the write from another connection (the CLI's) wakes it."""
    path = str(tmp_path / "store.db")
    daemon_side, cli = SQLiteStore(path), SQLiteStore(path)
    cli.create(_service("a"))
    kp = _proxy(daemon_side)
    watch = ProxyWatch(kp, daemon_side, lambda n: True, idle_seconds=30.0)  # no timer can stand in for the write
    watch.start()
    try:
        deadline = time.monotonic() + 20
        while not all(a.syncs for a in kp.agents.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(a.syncs for a in kp.agents.values()), "the first state never reached the nodes"
        time.sleep(0.2)
        for a in kp.agents.values():
            a.done.clear()
        cli.create(_slice("a", ["10.1.0.5", "10.1.0.6"]))
        for a in kp.agents.values():  # well before the watch's 30 s idle timer (a loaded machine is slow)
            assert a.done.wait(20), "the write did not reach kube-proxy without a pass"
        assert all(a.syncs[-1][1] == 2 for a in kp.agents.values())
    finally:
        watch.stop()
        kp.pool.shutdown(wait=True)
        daemon_side.close()
        cli.close()


def test_the_change_waiter_is_woken_by_another_connections_commit(tmp_path):
    path = str(tmp_path / "store.db")
    reader, writer = SQLiteStore(path), SQLiteStore(path)
    waiter = ChangeWaiter(reader)
    try:
        assert waiter.notified, "no inotify watch on the write-ahead log"
        rv = reader.current_rv()
        assert waiter.wait(rv, 0.05) is False
        for i in range(20):  # each write wakes it, the commit's index update racing the event included
            threading.Timer(0.05, lambda i=i: writer.create(_service(f"b{i}"))).start()
            t = time.monotonic()
            assert waiter.wait(rv, 30.0) is True
            assert time.monotonic() - t < 15.0, "woken by the timeout, not by the write"
            rv = reader.current_rv()
    finally:
        waiter.close()
        reader.close()
        writer.close()


class _CountingStore(SQLiteStore):
    lists = 0

    def list(self, kind, namespace=None, selector=None):
        self.lists += 1
        return super().list(kind, namespace, selector)


def test_a_sync_with_nothing_changed_neither_lists_nor_walks_every_endpoint(tmp_path):
    """The idle path (every store write, heartbeats included, wakes the watch): the tracker's change-log
    query finds nothing, and the drain check looks only at Services a change touched."""
    store = _CountingStore(str(tmp_path / "store.db"))
    for i in range(20):
        store.create(_service(f"s{i}"))
        store.create(_slice(f"s{i}", [f"10.1.{i}.1", f"10.1.{i}.2"]))
    kp = _proxy(store)
    try:
        kp.sync(lambda n: True)
        kp.pool.shutdown(wait=True)
        lists = store.lists
        walked = []
        real = kp.tracker.endpoints
        kp.tracker.endpoints = lambda: walked.append(1) or real()
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"},
                      "data": {}})  # another kind: a heartbeat-like write
        kp.sync(lambda n: True)
        assert store.lists == lists and walked == []
    finally:
        kp.pool.shutdown(wait=True)
        store.close()


def test_a_removed_endpoint_is_still_synced_before_the_pass_goes_on(tmp_path):
    """Looking only at touched Services keeps the drain ordering: a ready endpoint gone is a removal."""
    store = SQLiteStore(str(tmp_path / "store.db"))
    store.create(_service("a"))
    store.create(_slice("a", ["10.1.0.5", "10.1.0.6"]))
    kp = _proxy(store)
    try:
        kp.sync(lambda n: True)
        deadline = time.monotonic() + 5
        while kp.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        store.update(_slice("a", ["10.1.0.5"]))
        kp.track_changes()
        assert kp._takes_away() is True
        store.update(_slice("a", ["10.1.0.5", "10.1.0.7"]))
        kp.track_changes()
        assert kp._takes_away() is False  # only adds
    finally:
        kp.pool.shutdown(wait=True)
        store.close()
