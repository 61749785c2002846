"""The DNS agent (netsim/agents/dns.py): the Snapshot it keeps from the change log answers as one built from a
full listing does (netsim.dns.source.snapshot_from_store), and the work of a pass follows the change: a pod's
status update decodes that one pod and publishes nothing; a Service change parses that one Service."""

from __future__ import annotations

from dataclasses import replace

import pytest

import netsim.model.endpointslice as model_slice
import netsim.model.service as model_service
from netsim.agents.dns import DnsAgent
from netsim.dns.records import ClusterDNS, Snapshot
from netsim.dns.server import SnapshotHolder
from netsim.dns.source import snapshot_from_store
from netsim.store import MemoryStore, SQLiteStore

N = 30


def svc(i: int, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": f"ns{i % 3}"},
            "spec": {"clusterIP": f"10.96.1.{i + 1}", "selector": {"app": f"a{i}"}, "ports": [{"port": 80}],
                     **extra}}


def endpoint_slice(i: int, ip: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-x", "namespace": f"ns{i % 3}",
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "", "port": 80}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "namespace": f"ns{i % 3}", "name": f"p{i}"}}]}


def pod(i: int, ip: str, owner: str | None = None) -> dict:
    md: dict = {"name": f"p{i}", "namespace": f"ns{i % 3}", "labels": {"app": f"a{i}"}}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": owner, "uid": "u",
                                  "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def cluster() -> MemoryStore:
    store = MemoryStore()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}})
    for i in range(N):
        ip = f"10.244.0.{i + 10}"
        store.create(svc(i))
        store.create(endpoint_slice(i, ip))
        store.create(pod(i, ip, owner="set" if i == 0 else None))
    return store


def normal(snap: Snapshot) -> tuple:
    """A Snapshot without what DNS does not answer from (resourceVersions, the serial)."""
    def nometa(x):
        return replace(x, meta=replace(x.meta, resource_version=None))
    return (sorted(map(nometa, snap.services), key=repr), sorted(map(nometa, snap.slices), key=repr),
            sorted(snap.pods, key=repr), snap.namespaces)


def agrees(agent_holder: SnapshotHolder, store: MemoryStore) -> bool:
    return normal(agent_holder()) == normal(snapshot_from_store(store))


@pytest.fixture
def counted(monkeypatch):
    """Calls of the model's Service/EndpointSlice parsers from the agent."""
    calls = {"Service": 0, "EndpointSlice": 0}

    def wrap(kind, fn):
        def counting(*a, **kw):
            calls[kind] += 1
            return fn(*a, **kw)
        return counting
    monkeypatch.setattr(model_service, "parse_service", wrap("Service", model_service.parse_service))
    monkeypatch.setattr(model_slice, "parse_endpointslice", wrap("EndpointSlice", model_slice.parse_endpointslice))
    return calls


def test_the_snapshot_follows_the_store_through_changes():
    store = cluster()
    holder = SnapshotHolder()
    agent = DnsAgent(store, holder)
    agent.sync()
    assert agrees(holder, store)
    store.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "set", "namespace": "ns0"},
                  "spec": {"serviceName": "s0", "selector": {"matchLabels": {"app": "a0"}},
                           "template": {"metadata": {"labels": {"app": "a0"}}, "spec": {"containers": [{"name": "c"}]}}}})
    agent.sync()
    assert agrees(holder, store)
    assert ClusterDNS(holder()).answer("p0.s0.ns0.svc.cluster.local.", "A").data("A") == ["10.244.0.10"]
    store.delete("Service", "ns1", "s1")
    store.update(pod(2, "10.244.9.9"))
    store.delete("Namespace", None, "empty")
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    agent.sync()
    assert agrees(holder, store)
    store.compact(store.current_rv())  # the log is gone: the next pass relists
    store.delete("Pod", "ns0", "p3")
    store.compact(store.current_rv())
    agent.tracker.rv = 1
    assert agent.sync().published and agrees(holder, store)


def test_a_pod_status_update_decodes_one_pod_and_publishes_nothing(counted):
    store = cluster()
    holder = SnapshotHolder()
    agent = DnsAgent(store, holder)
    first = agent.sync()
    assert first.published and counted == {"Service": N, "EndpointSlice": N}
    snap = holder()
    p = store.get("Pod", "ns1", "p4")
    p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    store.update_status("Pod", "ns1", "p4", p["status"])
    report = agent.sync()
    assert report.decoded == 1 and not report.published and holder() is snap
    assert counted == {"Service": N, "EndpointSlice": N}


def test_one_service_change_parses_that_service_only(counted):
    store = cluster()
    holder = SnapshotHolder()
    agent = DnsAgent(store, holder)
    agent.sync()
    store.update({**store.get("Service", "ns2", "s5"), "spec": svc(5, clusterIP="10.96.2.2")["spec"]})
    report = agent.sync()
    assert report.decoded == 1 and report.published
    assert counted == {"Service": N + 1, "EndpointSlice": N}
    assert ClusterDNS(holder()).answer("s5.ns2.svc.cluster.local.", "A").data("A") == ["10.96.2.2"]
    assert agrees(holder, store)
    assert agent.sync().decoded == 0  # nothing changed: nothing read


def test_the_agent_runs_on_a_store_connection_of_its_own(tmp_path):
    """Startable on its own: the writer (the API, `netsim apply`) and the agent share only the store file, as
    they would from two processes; the agent follows the writer through the change feed."""
    path = str(tmp_path / "store.db")
    writer, reader = SQLiteStore(path), SQLiteStore(path)
    try:
        writer.create(svc(1))
        holder = SnapshotHolder()
        agent = DnsAgent(reader, holder)
        agent.sync()
        assert ClusterDNS(holder()).answer("s1.ns1.svc.cluster.local.", "A").data("A") == ["10.96.1.2"]
        writer.update({**writer.get("Service", "ns1", "s1"), "spec": svc(1, clusterIP="10.96.3.3")["spec"]})
        assert agent.sync().decoded == 1
        assert ClusterDNS(holder()).answer("s1.ns1.svc.cluster.local.", "A").data("A") == ["10.96.3.3"]
    finally:
        writer.close()
        reader.close()


def test_a_pod_label_change_publishes_nothing(counted):
    store = cluster()
    holder = SnapshotHolder()
    agent = DnsAgent(store, holder)
    agent.sync()
    snap = holder()
    p = store.get("Pod", "ns1", "p4")
    p["metadata"]["labels"] = {"app": "other"}
    store.update(p)
    report = agent.sync()
    assert report.decoded == 1 and not report.published and holder() is snap


def test_dns_and_other_readers_share_one_decode_per_version(counted):
    store = cluster()
    agent = DnsAgent(store, SnapshotHolder())
    agent.sync()
    assert counted == {"Service": N, "EndpointSlice": N}
    # kube-proxy's tracker (and any other reader) decodes the same versions through the store: no parse
    assert len(store.typed_list("Service")) == N and len(store.typed_list("EndpointSlice")) == N
    assert counted == {"Service": N, "EndpointSlice": N}
