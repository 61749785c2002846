"""Scheduler: filters in kube-scheduler's order, its FitError message, and spreading."""

from __future__ import annotations

import dataclasses
from typing import Any

from netsim.controlplane.scheduler import NodeUsage, pick_node
from netsim.model.nodeview import NodeView
from netsim.model.pod import Pod
from netsim.objcache import decode_stored


def node_usage(name: str, *, pod_count: int = 0, host_ports: set | None = None, **view: Any) -> NodeUsage:
    """A node (the one node view) with `pod_count` pods counted on it."""
    return NodeUsage(NodeView(name, **view), pod_count=pod_count, host_ports=host_ports or set())


def pod(spec_extra: dict | None = None, owner: str | None = None) -> Pod:
    """A typed Pod, as the scheduler reads it from the store's parse cache."""
    md: dict = {"name": "p", "namespace": "default"}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner,
                                  "controller": True}]
    return decode_stored({"apiVersion": "v1", "kind": "Pod", "metadata": md,
                          "spec": {"containers": [{"name": "c", "image": "busybox"}], **(spec_extra or {})}})


def nodes(*infos: NodeUsage) -> list[NodeUsage]:
    return list(infos)


def test_node_selector_mismatch_message():
    d = pick_node(pod({"nodeSelector": {"disk": "ssd"}}), nodes(node_usage("a"), node_usage("b"), node_usage("c")))
    assert d.node is None
    assert d.reason == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."


def test_taints_and_mixed_reasons_sorted():
    ns = nodes(node_usage("a", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
               node_usage("b", labels={"zone": "x"}), node_usage("c", labels={"zone": "x"}))
    d = pick_node(pod({"nodeSelector": {"zone": "y"}}), ns)
    assert d.reason == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node "
                        "affinity/selector.")


def test_toleration_allows_tainted_node_and_prefer_no_schedule_is_soft():
    tainted = node_usage("a", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    soft = node_usage("b", taints=[{"key": "slow", "effect": "PreferNoSchedule"}])
    assert pick_node(pod(), nodes(tainted, soft)).node == "b"  # only b passes; its soft taint is no filter
    tol = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}
    assert pick_node(pod(tol), nodes(tainted, soft)).node == "a"  # soft taint loses the tie
    no_execute = node_usage("c", taints=[{"key": "k", "effect": "NoExecute"}])
    assert pick_node(pod(), nodes(no_execute)).node is None


def test_required_node_affinity_terms_are_ored():
    aff = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}]}}}}
    ns = nodes(node_usage("a", labels={"zone": "z2"}), node_usage("b", labels={"zone": "z1"}, pod_count=5),
               node_usage("c", pod_count=9))
    assert pick_node(pod(aff), ns).node == "b"
    ns[1].node = dataclasses.replace(ns[1].node, labels={})
    assert pick_node(pod(aff), ns).node == "c"


def test_unschedulable_and_node_name():
    cordoned = node_usage("a", unschedulable=True)
    d = pick_node(pod(), nodes(cordoned))
    assert d.reason == "0/1 nodes are available: 1 node(s) were unschedulable."
    d = pick_node(pod({"nodeName": "zz"}), nodes(node_usage("a"), node_usage("b")))
    assert d.reason == "0/2 nodes are available: 2 node(s) didn't match the requested node name."


def test_spread_prefers_fewest_pods_of_same_owner_then_fewest_pods_then_name():
    a, b, c = node_usage("a"), node_usage("b"), node_usage("c")
    a.owner_counts["u1"] = 1
    a.pod_count = 1
    b.pod_count = 4
    c.pod_count = 4
    assert pick_node(pod(owner="u1"), [a, b, c]).node == "b"  # avoids a (same owner); b before c by name
    assert pick_node(pod(owner="u2"), [a, b, c]).node == "a"  # other owner: fewest pods


def test_host_port_conflict():
    p = pod({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80, "protocol": "TCP"}]}]})
    busy = node_usage("a", host_ports={(80, "TCP")})
    assert pick_node(p, [busy]).reason == \
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    assert pick_node(p, [busy, node_usage("b")]).node == "b"


def test_no_nodes():
    assert pick_node(pod(), []).node is None


def test_replicas_of_one_template_are_filtered_once_per_node_and_still_spread(h, monkeypatch):
    """300 pending replicas on 30 nodes: 30 filter calls per scheduling pass, not 9,000; the spread is
    the same as filtering each pod anew (10 per node)."""
    from collections import Counter

    from netsim.controlplane import objects as o
    from netsim.controlplane import scheduler

    from .conftest import deployment
    calls = []
    plain = scheduler.filter_node
    monkeypatch.setattr(scheduler, "filter_node", lambda pod, node: calls.append(1) or plain(pod, node))
    h.add_nodes(30)
    h.apply(deployment(replicas=300))
    for _ in range(4):
        h.once()
    placed = Counter(o.node_name(p) for p in h.pods())
    assert sum(placed.values()) == 300 and set(placed.values()) == {10}
    assert len(calls) <= 2 * 30
