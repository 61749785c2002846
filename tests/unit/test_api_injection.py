"""netsim.Cluster acts with what it is given: kernel, store, built state and daemon link injected, the real
ones only as defaults (issue #16 item 4). In process on FakeKernel and MemoryStore: no root needed."""

from __future__ import annotations

import pytest

from netsim import Cluster
from netsim.daemonlink import NoDaemon, ProcessDaemon
from netsim.kernel.fake import FakeKernel
from netsim.model.errors import SpecError, SpecErrors
from netsim.store import MemoryStore


@pytest.fixture(autouse=True)
def not_root(monkeypatch):
    from netsim import preflight
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)  # the real root check would refuse


def test_up_in_process_builds_in_the_given_kernel_and_store():
    k, store = FakeKernel(), MemoryStore()
    c = Cluster.up({"spec": {"nodes": 2}}, name="inj", kernel=k, store=store, daemon=False)
    assert c.in_process and c.kernel is k and c.store is store and isinstance(c.daemon, NoDaemon)
    assert sorted(k.ns) == ["netsim-inj.fabric", "netsim-inj.node.node-1", "netsim-inj.node.node-2"]
    assert sorted(n["metadata"]["name"] for n in store.list("Node")) == ["node-1", "node-2"]
    assert {s["metadata"]["name"] for s in store.list("Service")} == {"kubernetes", "kube-dns"}
    c.close()  # injected: still usable afterwards
    assert store.list("Node") and k.netns_exists("netsim-inj.fabric")
    report = c.down()
    assert report.namespaces == 3 and k.ns == {}


def test_attach_with_everything_injected():
    k, store = FakeKernel(), MemoryStore()
    built = Cluster.up({"spec": {"nodes": 1}}, name="att", kernel=k, store=store, daemon=False)
    c = Cluster("att", kernel=k, store=store, cluster_state=built.state, daemon=NoDaemon(store))
    assert c.netns_for("node/node-1") == "netsim-att.node.node-1"
    lines = c.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}})
    assert lines[0] == "configmap/x created"
    assert store.get("ConfigMap", "default", "x")["data"] == {"a": "b"}
    with pytest.raises((SpecError, SpecErrors)):  # validated as apply always does; nothing written
        c.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})
    assert store.get("ConfigMap", "default", "Bad_Name") is None
    built.down()


def test_the_daemon_link_defaults_to_the_cluster_process():
    k, store = FakeKernel(), MemoryStore()
    built = Cluster.up({"spec": {"nodes": 1}}, name="dfl", kernel=k, store=store, daemon=False)
    c = Cluster("dfl", kernel=k, store=store, cluster_state=built.state)
    assert isinstance(c.daemon, ProcessDaemon) and c.daemon.cluster == "dfl"
    built.down()


def test_a_bad_spec_builds_nothing():
    k = FakeKernel()
    with pytest.raises(SpecError):
        Cluster.up({"spec": {"nodes": -1}}, name="bad", kernel=k, store=MemoryStore())
    assert k.ns == {}
