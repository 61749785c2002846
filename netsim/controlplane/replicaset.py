"""ReplicaSet controller (kubernetes pkg/controller/replicaset/replica_set.go, our own code).

Owned pods are those whose controller ownerReference is the ReplicaSet; orphans matching the selector are
adopted. Active pods (not finished, not being deleted) are counted against spec.replicas; missing ones are
created as `<rs>-<5 random chars>` (generateName), surplus ones deleted in the order getPodsToDelete ranks
them (controller.ActivePods: unscheduled before scheduled, Pending before Running, not ready before ready,
newer before older). Status reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and
observedGeneration.

Pods are read typed (`Snapshot.typed`: each Pod version parsed once by the store's parse cache, not walked as
a dict on every pass); the ReplicaSet itself and every write stay dicts, at the store edge.

A pass syncs only the ReplicaSets a change concerns (netsim.controlplane.workqueue), as replica_set.go's
event handlers queue them: the ReplicaSet itself changed (addRS/updateRS/deleteRS), one of its pods changed
or went (addPod/updatePod/deletePod: the pod's controllerRef, and the old one when it changed), or an orphan
pod changed that its selector matches (getPodReplicaSets, for adoption). One that wrote is synced again next
pass; one with minReadySeconds whose ready pods are not all available yet is synced every pass until they
are (upstream: enqueueRSAfter(minReadySeconds) in updatePod).
"""

from __future__ import annotations

import copy
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot, status_action
from netsim.controlplane.workqueue import Key, queue_of
from netsim.model.errors import NetsimError
from netsim.model.pod import Pod
from netsim.store import DELETED, Change


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
        for raw in snap.orphans("Pod", o.namespace(owner)):
            try:
                pod = snap.decode(raw)
            except NetsimError:
                continue
            if ps.controller_ref(pod) is None and not ps.terminating(pod) and selector.matches(pod.meta.labels):
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


QUEUE = "replicaset-queue"
WATCH_KINDS = ("ReplicaSet", "Pod")


def _affected(changes: list[Change], snap: Snapshot, owner_of: dict[Key, Key]) -> set[Key]:
    """The ReplicaSets a batch of changes concerns (replica_set.go's event handlers). `owner_of`: each
    pod's controlling ReplicaSet as last seen (updatePod syncs the old controller when the ref changed)."""
    out: set[Key] = set()
    for c in changes:
        ns = c.namespace or "default"
        if c.kind == "ReplicaSet":
            out.add((ns, c.name))
            continue
        pod_key = (ns, c.name)
        old = owner_of.pop(pod_key, None)
        if old is not None:
            out.add(old)
        ref = o.controller_ref(c.object)
        if ref is not None:
            if ref.get("kind") == "ReplicaSet":
                out.add((ns, ref.get("name") or ""))
                if c.type != DELETED:
                    owner_of[pod_key] = (ns, ref.get("name") or "")
        elif c.type != DELETED:
            labels = o.labels(c.object)
            for rs in snap.of("ReplicaSet", ns):
                if o.selector_of(rs).matches(labels):
                    out.add((ns, o.name(rs)))
    return out


def _unsettled(rs: dict[str, Any]) -> bool:
    """Ready pods that minReadySeconds keeps from counting as available yet: nothing will change in the
    store when they become available, so the ReplicaSet is looked at again next pass."""
    status = rs.get("status") or {}
    return (int((rs.get("spec") or {}).get("minReadySeconds") or 0) > 0
            and status.get("availableReplicas", 0) < status.get("readyReplicas", 0))


def reconcile_replicasets(snap: Snapshot, ctx: Context) -> list[Action]:
    q = queue_of(ctx, QUEUE)
    owner_of: dict[Key, Key] = ctx.memory.setdefault(QUEUE + "-owners", {})
    keys = q.take(ctx, WATCH_KINDS, lambda changes: _affected(changes, snap, owner_of))
    if keys is None:
        rses = snap.of("ReplicaSet")
        owner_of.clear()
        for pod in snap.of("Pod"):
            ref = o.controller_ref(pod)
            if ref is not None and ref.get("kind") == "ReplicaSet":
                owner_of[(o.namespace(pod) or "default", o.name(pod))] = (o.namespace(pod) or "default",
                                                                          ref.get("name") or "")
    else:
        rses = [rs for ns, name in sorted(keys) if (rs := snap.get("ReplicaSet", ns, name)) is not None]
    actions: list[Action] = []
    for rs in rses:
        acts = reconcile_replicaset(rs, snap, ctx)
        if acts or _unsettled(rs):
            q.retry.add((o.namespace(rs) or "default", o.name(rs)))
        actions += acts
    q.synced = len(rses)
    return actions
