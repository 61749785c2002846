"""Node objects, the node lifecycle controller, and garbage collection.

Node lifecycle (kubernetes pkg/controller/nodelifecycle, taint manager in pkg/controller/tainteviction;
our own code): a node whose kubelet has not heartbeaten for `node_monitor_grace_seconds` gets Ready=Unknown
and the taints node.kubernetes.io/unreachable (NoSchedule and NoExecute); a node reporting Ready=False gets
node.kubernetes.io/not-ready. Pods on a NoExecute-tainted node that do not tolerate the taint are evicted
(gracefully deleted) once they have stayed for their toleration's tolerationSeconds, or for
`pod_eviction_seconds` (the DefaultTolerationSeconds admission plugin's 300 s) when they carry no
toleration; a toleration without tolerationSeconds keeps the pod for ever (DaemonSet pods). Their
controllers replace them elsewhere. When heartbeats resume the taints go away.

Garbage collection (pkg/controller/garbagecollector and podgc): objects whose controller owner is gone are
deleted (cascading Deployment -> ReplicaSet -> Pod, Job -> Pod, Service -> EndpointSlice); pods bound to a
node that no longer exists are deleted.
"""

from __future__ import annotations

import copy
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.events import Event
from netsim.controlplane.scheduler import tolerations_of
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.cluster import ClusterSpec
from netsim.store import parse_time, rfc3339

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
ACTOR = "controller/node-lifecycle"


def node_object(spec: ClusterSpec, index: int, now: float) -> dict[str, Any]:
    """The Node object for the index-th node of a cluster spec (what a kubelet registers)."""
    n = spec.nodes[index]
    labels = {"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", **n.labels}
    taints = [{"key": t.key, "value": t.value, "effect": t.effect} if t.value else {"key": t.key, "effect": t.effect}
              for t in n.taints]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name, "labels": labels},
            "spec": {"podCIDR": spec.node_pod_cidr(index), "podCIDRs": [spec.node_pod_cidr(index)],
                     **({"taints": taints} if taints else {})},
            "status": {"addresses": [{"type": "InternalIP", "address": spec.node_ip(index)},
                                     {"type": "Hostname", "address": n.name}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": rfc3339(now)}]}}


def node_ip(node: dict[str, Any]) -> str | None:
    return next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"), None)


def heartbeat_status(node: dict[str, Any], now: float, ready: bool = True) -> dict[str, Any]:
    """The status a kubelet writes when it reports in."""
    status = copy.deepcopy(node.get("status") or {})
    value = "True" if ready else "False"
    o.set_condition(status, "Ready", value, now, "KubeletReady" if ready else "KubeletNotReady")
    for c in status["conditions"]:
        if c["type"] == "Ready":
            c["lastHeartbeatTime"] = rfc3339(now)
            c.pop("lastUpdateTime", None)
    return status


def node_ready(node: dict[str, Any]) -> bool:
    c = o.condition(node, "Ready")
    return c is not None and c.get("status") == "True"


def _lifecycle_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    c = o.condition(node, "Ready")
    status = c.get("status") if c else "Unknown"
    if status == "True":
        return []
    key = NOT_READY if status == "False" else UNREACHABLE
    return [{"key": key, "effect": "NoSchedule"}, {"key": key, "effect": "NoExecute"}]


def reconcile_node(node: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    actions: list[Action] = []
    cfg = ctx.config
    c = o.condition(node, "Ready")
    beat = parse_time(c.get("lastHeartbeatTime")) if c else None
    new = copy.deepcopy(node)
    if c is not None and c.get("status") != "Unknown" and (beat is None or
                                                           ctx.now - beat > cfg.node_monitor_grace_seconds):
        o.set_condition(new["status"], "Ready", "Unknown", ctx.now, "NodeStatusUnknown",
                        "Kubelet stopped posting node status.")
        actions.append(Action("status", new, Event(ctx.now, ACTOR, o.ref(node), "NodeNotReady",
                                                   f"Node {o.name(node)} status is now: NodeNotReady",
                                                   type="Warning")))
        new = copy.deepcopy(new)
    wanted = _lifecycle_taints(new)
    taints = [t for t in (new.get("spec") or {}).get("taints") or [] if t.get("key") not in (NOT_READY, UNREACHABLE)]
    current = [t for t in (new.get("spec") or {}).get("taints") or [] if t.get("key") in (NOT_READY, UNREACHABLE)]
    if [(t["key"], t["effect"]) for t in current] != [(t["key"], t["effect"]) for t in wanted]:
        stamped = [{**t, "timeAdded": rfc3339(ctx.now)} if t["effect"] == "NoExecute" else t for t in wanted]
        new.setdefault("spec", {})["taints"] = taints + stamped
        if not new["spec"]["taints"]:
            del new["spec"]["taints"]
        if actions:  # the status write above and this spec write must not race each other
            actions = [Action("update", new, actions[0].event)]
        else:
            actions.append(Action("update", new))
    return actions


def evictions(snap: Snapshot, ctx: Context) -> list[Action]:
    actions: list[Action] = []
    for node in snap.of("Node"):
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") != "NoExecute":
                continue
            added = parse_time(taint.get("timeAdded")) or ctx.now
            for pod in snap.of("Pod"):
                if o.node_name(pod) != o.name(node) or o.is_terminating(pod) or o.is_terminal(pod):
                    continue
                matching = [t for t in tolerations_of(pod)
                            if t.tolerates(taint.get("key", ""), taint.get("value") or None, "NoExecute")]
                if matching and any(t.toleration_seconds is None for t in matching):
                    continue
                if matching:
                    wait = min(t.toleration_seconds for t in matching)
                elif taint.get("key") in (NOT_READY, UNREACHABLE):
                    wait = ctx.config.pod_eviction_seconds
                else:
                    wait = 0
                if ctx.now - added >= wait:
                    actions.append(Action("terminate", pod, Event(
                        ctx.now, "controller/taint-eviction", o.ref(pod), "TaintManagerEviction",
                        f"Marking for deletion Pod {o.key(pod)}")))
    return actions


def reconcile_nodes(snap: Snapshot, ctx: Context) -> list[Action]:
    actions: list[Action] = []
    for node in snap.of("Node"):
        actions += reconcile_node(node, snap, ctx)
    return actions + evictions(snap, ctx)


def reconcile_garbage(snap: Snapshot, ctx: Context) -> list[Action]:
    uids = snap.uids()
    nodes = snap.names("Node", None)
    actions: list[Action] = []
    for kind, items in snap.objects.items():
        for obj in items:
            ref = o.controller_ref(obj)
            if ref is not None and ref.get("uid") not in uids:
                verb = "terminate" if kind == "Pod" else "delete"
                actions.append(Action(verb, obj, Event(ctx.now, "controller/garbage-collector", o.ref(obj),
                                                       "GarbageCollected",
                                                       f"owner {ref.get('kind')} {ref.get('name')} is gone")))
            elif kind == "Pod" and o.node_name(obj) and o.node_name(obj) not in nodes:
                actions.append(Action("delete", obj, Event(ctx.now, "controller/pod-gc", o.ref(obj), "PodGC",
                                                           f"node {o.node_name(obj)} no longer exists")))
    return actions
