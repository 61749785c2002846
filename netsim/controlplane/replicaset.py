"""ReplicaSet controller (kubernetes pkg/controller/replicaset/replica_set.go, our own code).

Owned pods are those whose controller ownerReference is the ReplicaSet; orphans matching the selector are
adopted. Active pods (not finished, not being deleted) are counted against spec.replicas; missing ones are
created as `<rs>-<5 random chars>` (generateName), surplus ones deleted in the order getPodsToDelete ranks
them (controller.ActivePods: unscheduled before scheduled, Pending before Running, not ready before ready,
newer before older). Status reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and
observedGeneration.

Pods are read typed (`Snapshot.typed`: each Pod version parsed once by the store's parse cache, not walked as
a dict on every pass); the ReplicaSet itself and every write stay dicts, at the store edge.
"""

from __future__ import annotations

import copy
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot, status_action
from netsim.model.pod import Pod


def pods_of(snap: Snapshot, owner: dict[str, Any], *, adopt: bool = True) -> tuple[list[dict], list[Action]]:
    """Pods controlled by `owner`, plus adoption actions for orphans its selector matches."""
    owned = snap.owned(owner, "Pod")
    actions = []
    if adopt:
        selector = o.selector_of(owner)
        for pod in snap.of("Pod", o.namespace(owner)):
            if o.controller_ref(pod) is None and not o.is_terminating(pod) and selector.matches(o.labels(pod)):
                new = copy.deepcopy(pod)
                new["metadata"].setdefault("ownerReferences", []).append(o.owner_reference(owner))
                owned.append(new)
                actions.append(Action("update", new))
    return owned, actions


def typed_pods_of(snap: Snapshot, owner: dict[str, Any], *, adopt: bool = True) -> tuple[list[Pod], list[Action]]:
    """`pods_of` on typed Pods (decoded once per version by the store's parse cache): the pods `owner`
    controls, plus adoption actions (dict writes, at the store edge) for the orphans its selector matches."""
    owned = snap.typed_owned(o.uid(owner), "Pod")
    actions = []
    if adopt:
        selector = o.selector_of(owner)
        for pod in snap.typed("Pod", o.namespace(owner)):
            if ps.controller_ref(pod) is None and not ps.terminating(pod) and selector.matches(pod.meta.labels):
                raw = snap.get("Pod", pod.meta.namespace, pod.meta.name)
                if raw is None:
                    continue
                new = copy.deepcopy(raw)
                new["metadata"].setdefault("ownerReferences", []).append(o.owner_reference(owner))
                owned.append(pod)
                actions.append(Action("update", new))
    return owned, actions


def _stored(snap: Snapshot, pod: Pod) -> dict[str, Any]:
    """The stored dict of a typed pod, for a write (apply_actions reads only its identity for terminate)."""
    return snap.get("Pod", pod.meta.namespace, pod.meta.name) or {
        "kind": "Pod", "metadata": {"name": pod.meta.name, "namespace": pod.meta.namespace}}


def reconcile_replicaset(rs: dict[str, Any], snap: Snapshot, ctx: Context, *,
                         actor: str = "controller/replicaset") -> list[Action]:
    spec = rs.get("spec") or {}
    want = int(spec.get("replicas", 1))
    owned, actions = typed_pods_of(snap, rs)
    active = [p for p in owned if ps.active(p)]
    diff = len(active) - want
    if o.is_terminating(rs):
        diff = 0
    if diff < 0:
        taken = snap.names("Pod", o.namespace(rs))
        for _ in range(-diff):
            pod_name = o.generate_name(o.name(rs) + "-", ctx.rng, taken)
            taken.add(pod_name)
            pod = o.pod_from_template(spec.get("template") or {}, pod_name=pod_name, namespace_=o.namespace(rs),
                                      owner=rs)
            actions.append(Action("create", pod, Event(ctx.now, actor, o.ref(rs), "SuccessfulCreate",
                                                       f"Created pod: {pod_name}")))
    elif diff > 0:
        for pod in sorted(active, key=ps.deletion_rank)[:diff]:
            actions.append(Action("terminate", _stored(snap, pod), Event(ctx.now, actor, o.ref(rs), "SuccessfulDelete",
                                                                    f"Deleted pod: {pod.meta.name}")))
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    status = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active
                                    if all(p.meta.labels.get(k) == v for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in active if ps.ready(p)),
        "availableReplicas": sum(1 for p in active if ps.available(p, min_ready, ctx.now)),
        "observedGeneration": o.meta(rs).get("generation", 1),
    }
    old = rs.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    a = status_action(rs, status)
    if a:
        actions.append(a)
    return actions


def reconcile_replicasets(snap: Snapshot, ctx: Context) -> list[Action]:
    actions: list[Action] = []
    for rs in snap.of("ReplicaSet"):
        actions += reconcile_replicaset(rs, snap, ctx)
    return actions
