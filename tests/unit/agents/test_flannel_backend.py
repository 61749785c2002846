"""The flannel-like backend (netsim/agents/flannel.py) on the fake kernel: leases from the Node objects'
change log; a lease added or removed is programmed on every other node as flanneld's handleSubnetEvents
does (ARP, FDB, route; or one host-gw route), with no kernel reads, ending where a full sync ends; a Node
update that leaves the lease alone does nothing."""

from __future__ import annotations

import pytest

from netsim import naming
from netsim.agents.flannel import FlannelBackend
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.store import MemoryStore

READS = {"run", "link_get", "links", "routes", "neighs", "fdbs", "addrs", "sysctl_get"}


def spec(backend: str):
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "flb"},
                          "spec": {"nodes": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}],
                                   "network": {"plugin": "flannel", "backend": backend}}}, Source("c.yaml"))


def node(name: str, ip: str, cidr: str, **status) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}], **status}}


def world(backend: str, tmp_path, monkeypatch) -> tuple[FakeKernel, MemoryStore, FlannelBackend]:
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path))
    s = spec(backend)
    kernel = FakeKernel()
    store = MemoryStore()
    for i, n in enumerate(s.nodes):
        ns = naming.node_ns(s.name, n.name)
        kernel.netns_create(ns)
        kernel.bridge_add(ns, naming.UPLINK)
        store.create(node(n.name, s.node_ip(i), s.node_pod_cidr(i)))
    return kernel, store, FlannelBackend(s, kernel, store, [n.name for n in s.nodes])


def kernel_state(kernel: FakeKernel) -> dict:
    return {ns: (sorted(map(repr, st.routes)), sorted(map(repr, st.neighs)), sorted(map(repr, st.fdbs)))
            for ns, st in kernel.ns.items()}


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_a_lease_event_programs_one_peer_and_ends_as_a_full_sync(backend, tmp_path, monkeypatch):
    kernel, store, backend_agent = world(backend, tmp_path, monkeypatch)
    first = backend_agent.sync()
    assert first.full == ["n1", "n2", "n3"]
    start = len(kernel.calls)
    store.create(node("n4", "172.18.0.50", "10.244.9.0/24"))  # a node of another host joins
    report = backend_agent.sync()
    calls = kernel.calls[start:]
    per_node = 3 if backend == "vxlan" else 1
    assert report.full == [] and report.events == [("added", "n4")]
    assert report.writes == 3 * per_node and len(calls) == 3 * per_node
    assert not {c[0] for c in calls} & READS
    full_kernel, full_store, full_agent = world(backend, tmp_path / "full", monkeypatch)
    full_store.create(node("n4", "172.18.0.50", "10.244.9.0/24"))
    full_agent.sync()
    assert kernel_state(kernel) == kernel_state(full_kernel)
    store.delete("Node", None, "n4")
    assert backend_agent.sync().events == [("removed", "n4")]
    full_store.delete("Node", None, "n4")
    full_agent.tracker.rv, full_agent._programmed = None, {}  # a fresh start: relist, sync in full
    full_agent.sync()
    assert kernel_state(kernel) == kernel_state(full_kernel)


def test_a_heartbeat_changes_nothing(tmp_path, monkeypatch):
    kernel, store, backend_agent = world("vxlan", tmp_path, monkeypatch)
    backend_agent.sync()
    start = len(kernel.calls)
    n2 = store.get("Node", None, "n2")
    store.update_status("Node", None, "n2", {**n2["status"], "conditions": [{"type": "Ready", "status": "True"}]})
    report = backend_agent.sync()
    assert report.full == [] and report.events == [] and kernel.calls[start:] == []
