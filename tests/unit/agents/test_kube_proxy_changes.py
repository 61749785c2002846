"""kube-proxy's sync after a one-endpoint change follows the change (netsim/agents/kube_proxy.py hands each
node's agent the Services changed since its last sync, as upstream's syncProxyRules gets serviceChanged /
endpointsChanged): the work on every node is the same at 1,000 Services as at 100, and the rules written
are those of the changed Service."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from netsim.agents.kube_proxy import KubeProxy
from netsim.controlplane.nodes import HostFacts, node_view
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.model.timing import TimingSpec
from netsim.node.sync_runner import SyncRunner
from netsim.store import MemoryStore

NODES = ("node-1", "node-2")


def _alive(node: str) -> bool:
    return True


def _store(n: int) -> MemoryStore:
    store = MemoryStore()
    for i in range(n):
        ports = [{"name": "http", "port": 80}] + ([{"name": "dns", "port": 53, "protocol": "UDP"}] if i % 50 == 0
                                                   else [])
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": "default"},
                      "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}", "ports": ports}})
        store.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": f"svc-{i}-1", "namespace": "default",
                                   "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
                      "addressType": "IPv4",
                      "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}],
                      "endpoints": [{"addresses": [f"10.244.{k}.{i % 250 + 1}"], "nodeName": NODES[k % 2]}
                                    for k in range(3)]})
    return store


def _calls_of_one_endpoint_change(n: int) -> tuple[int, KubeProxy]:
    store = _store(n)
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "kpc"},
                          "spec": {"nodes": [{"name": x} for x in NODES]}}, Source("c.yaml"))
    recs = {x: node_view(spec, i, HostFacts()) for i, x in enumerate(NODES)}
    counting = False
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if counting and event in ("call", "c_call"):
            calls += 1
    pool = ThreadPoolExecutor(max_workers=2)
    counted = None
    try:
        kernel = FakeKernel()
        kp = KubeProxy(spec, recs, kernel, store, pool, lambda obj: parse_object(obj, Source("<store>")),
                       lambda *e: None)
        for agent in kp.agents.values():
            kernel.netns_create(agent.netns)
        kp.runners = {x: SyncRunner(0.0, 30.0, time.monotonic()) for x in NODES}
        kp.timing = TimingSpec()
        kp.sync(_alive)  # the first sync: a relist and a full sync on each node
        futures_wait(list(kp.inflight.values()))
        assert all(a.state is not None for a in kp.agents.values())
        sl = store.get("EndpointSlice", "default", f"svc-{n // 2 + 1}-1")  # a TCP-only Service
        sl["endpoints"][0]["addresses"] = ["10.244.9.9"]
        store.update(sl)
        threading.setprofile(profile)  # for the worker threads of a new pool, which the next syncs use
        kp.pool = counted = ThreadPoolExecutor(max_workers=2)
        counting = True
        sys.setprofile(profile)
        try:
            kp.sync(_alive)
            futures_wait(list(kp.inflight.values()))
        finally:
            sys.setprofile(None)
            counting = False
        kp.reap()
        return calls, kp
    finally:
        threading.setprofile(None)
        pool.shutdown()
        if counted is not None:
            counted.shutdown()


def test_a_one_endpoint_change_costs_every_node_the_same_at_1000_services_as_at_100():
    small, _ = _calls_of_one_endpoint_change(100)
    big, kp = _calls_of_one_endpoint_change(1000)
    for agent in kp.agents.values():
        payload = agent.last_payload
        assert "10.244.9.9" in payload and "-A KUBE-SERVICES" not in payload  # that Service's chains only
    # A walk over every port (endpoint identity checks, digests, UDP frontends) makes tens of thousands
    # of calls more at 1,000 Services.
    assert big <= small + 100, (small, big)
