"""Controllers read typed objects from their snapshot through the store's parse cache: the scheduler's
node view is built from the one Node class, each Node version decoded once across passes."""

from __future__ import annotations

from netsim.controlplane.scheduler import NodeInfo, node_infos
from netsim.controlplane.state import Snapshot, SnapshotCache
from netsim.model.node import Node
from netsim.store import MemoryStore


def node(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"zone": name}},
            "spec": {"podCIDR": "10.244.0.0/24", **spec},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}


def test_scheduler_nodes_are_decoded_once_per_version_across_passes():
    store = MemoryStore()
    store.create(node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]))
    store.create(node("b", unschedulable=True))
    cache = SnapshotCache()
    for _ in range(3):
        infos = node_infos(cache.load(store))
    assert store.object_cache().decodes == 2
    assert infos["a"].taints == [{"key": "k", "value": "v", "effect": "NoSchedule"}] and infos["a"].labels["zone"] == "a"
    assert infos["b"].unschedulable and not infos["a"].unschedulable
    cur = store.get("Node", None, "b")
    cur["spec"]["unschedulable"] = False
    store.update(cur)
    assert not node_infos(cache.load(store))["b"].unschedulable
    assert store.object_cache().decodes == 3


def test_a_snapshot_without_a_store_decodes_as_the_store_would():
    snap = Snapshot({"Node": [node("a")]})
    (typed,) = snap.typed("Node")
    assert isinstance(typed, Node) and typed.internal_ip == "172.18.0.2"
    assert NodeInfo.from_node(node("a")) == NodeInfo.from_node(typed)
