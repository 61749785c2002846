"""ReplicaSet controller (kubernetes pkg/controller/replicaset/replica_set.go, our own code).

Owned pods are those whose controller ownerReference is the ReplicaSet; orphans matching the selector are
adopted. Active pods (not finished, not being deleted) are counted against spec.replicas; missing ones are
created as `<rs>-<5 random chars>` (generateName), surplus ones deleted in the order getPodsToDelete ranks
them (controller.ActivePods: unscheduled before scheduled, Pending before Running, not ready before ready,
newer before older). Status reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and
observedGeneration.

The ReplicaSet and its pods are read typed (netsim.model.workloads.ReplicaSet and Pod from the store's parse
cache: each version parsed once, not walked as a dict on every pass); the writes start from the stored dicts,
at the store edge (new pods from the stored template, an adopted pod, the status), and the change log's rows
are read as they are (they are the edge too).

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
from netsim.model.workloads import ReplicaSet
from netsim.store import DELETED, Change


def _adoption(raw: dict[str, Any], owner: Any) -> Action:
    """The update adopting an orphan pod (its stored dict, at the write edge): a controller ownerReference
    naming `owner` appended."""
    new = copy.deepcopy(raw)
    new["metadata"].setdefault("ownerReferences", []).append(ps.owner_reference(owner))
    return Action("update", new)


def typed_pods_of(snap: Snapshot, owner: Any, *, adopt: bool = True) -> tuple[list[Pod], list[Action]]:
    """The typed Pods (decoded once per version by the store's parse cache) that the typed workload `owner`
    controls, plus adoption actions (dict writes, at the store edge) for the orphans its selector matches
    (controller.PodControllerRefManager's ClaimPods)."""
    owned = snap.typed_owned(owner.meta.uid, "Pod")
    actions = []
    selector = getattr(owner, "selector", None)
    if adopt and selector is not None:
        for raw in snap.orphans("Pod", owner.meta.namespace):
            try:
                pod = snap.decode(raw)
            except NetsimError:
                continue
            if ps.controller_ref(pod) is None and not ps.terminating(pod) and selector.matches(pod.meta.labels):
                owned.append(pod)
                actions.append(_adoption(raw, owner))
    return owned, actions


def _stored(snap: Snapshot, pod: Pod) -> dict[str, Any]:
    """The stored dict of a typed pod, for a write (apply_actions reads only its identity for terminate)."""
    return snap.get("Pod", pod.meta.namespace, pod.meta.name) or {
        "kind": "Pod", "metadata": {"name": pod.meta.name, "namespace": pod.meta.namespace}}


def _creates(rs: ReplicaSet, raw: dict[str, Any], count: int, snap: Snapshot, ctx: Context,
             actor: str) -> list[Action]:
    """`count` new pods from the stored template dict (the write edge: the pods carry the template as the
    client wrote it, and a Deployment's pod-template-hash label with it)."""
    taken = snap.names("Pod", rs.meta.namespace)
    out = []
    for _ in range(count):
        pod_name = o.generate_name(rs.meta.name + "-", ctx.rng, taken)
        taken.add(pod_name)
        pod = o.pod_from_template(raw["spec"].get("template") or {}, pod_name=pod_name,
                                  namespace_=rs.meta.namespace, owner=raw)
        out.append(Action("create", pod, Event(ctx.now, actor, ps.ref(rs), "SuccessfulCreate",
                                               f"Created pod: {pod_name}")))
    return out


def reconcile_replicaset(rs: ReplicaSet, raw: dict[str, Any], snap: Snapshot, ctx: Context, *,
                         actor: str = "controller/replicaset") -> list[Action]:
    """One ReplicaSet, read typed (it and its pods from the store's parse cache); `raw` is its stored dict,
    which the writes (new pods from its template, its status) start from."""
    owned, actions = typed_pods_of(snap, rs)
    active = [p for p in owned if ps.active(p)]
    diff = len(active) - rs.replicas
    if ps.terminating(rs):
        diff = 0
    if diff < 0:
        actions += _creates(rs, raw, -diff, snap, ctx, actor)
    elif diff > 0:
        for pod in sorted(active, key=ps.deletion_rank)[:diff]:
            actions.append(Action("terminate", _stored(snap, pod), Event(ctx.now, actor, ps.ref(rs), "SuccessfulDelete",
                                                                    f"Deleted pod: {pod.meta.name}")))
    template_labels = rs.template.labels
    status: dict[str, Any] = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active
                                    if all(p.meta.labels.get(k) == v for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in active if ps.ready(p)),
        "availableReplicas": sum(1 for p in active if ps.available(p, rs.min_ready_seconds, ctx.now)),
        "observedGeneration": ps.generation(rs),
    }
    if rs.status.raw.get("conditions"):
        status["conditions"] = rs.status.raw["conditions"]
    a = status_action(raw, status)
    if a:
        actions.append(a)
    return actions


QUEUE = "replicaset-queue"
WATCH_KINDS = ("ReplicaSet", "Pod")


def _affected(changes: list[Change], snap: Snapshot, owner_of: dict[Key, Key]) -> set[Key]:
    """The ReplicaSets a batch of changes concerns (replica_set.go's event handlers). `owner_of`: each
    pod's controlling ReplicaSet as last seen (updatePod syncs the old controller when the ref changed).
    Reads the change log's rows (an edge: a deleted pod's last state is no snapshot object)."""
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
        obj = c.object  # once: a change-log entry decodes its body on each read
        ref = o.controller_ref(obj)
        if ref is not None:
            if ref.get("kind") == "ReplicaSet":
                out.add((ns, ref.get("name") or ""))
                if c.type != DELETED:
                    owner_of[pod_key] = (ns, ref.get("name") or "")
        elif c.type != DELETED:
            labels = o.labels(obj)
            for rs in snap.typed("ReplicaSet", ns):
                if rs.selector.matches(labels):
                    out.add(ps.key(rs))
    return out


def _unsettled(rs: ReplicaSet) -> bool:
    """Ready pods that minReadySeconds keeps from counting as available yet: nothing will change in the
    store when they become available, so the ReplicaSet is looked at again next pass."""
    return rs.min_ready_seconds > 0 and rs.status.available_replicas < rs.status.ready_replicas


def reconcile_replicasets(snap: Snapshot, ctx: Context) -> list[Action]:
    q = queue_of(ctx, QUEUE)
    owner_of: dict[Key, Key] = ctx.memory.setdefault(QUEUE + "-owners", {})
    keys = q.take(ctx, WATCH_KINDS, lambda changes: _affected(changes, snap, owner_of))
    if keys is None:
        rses = snap.typed_with_raw("ReplicaSet")
        owner_of.clear()
        for pod in snap.typed("Pod"):
            ref = ps.controller_ref(pod)
            if ref is not None and ref.get("kind") == "ReplicaSet":
                owner_of[ps.key(pod)] = (pod.meta.namespace or "default", ref.get("name") or "")
    else:
        rses = [got for ns, name in sorted(keys) if (got := snap.typed_get("ReplicaSet", ns, name)) is not None]
    actions: list[Action] = []
    for rs, raw in rses:
        acts = reconcile_replicaset(rs, raw, snap, ctx)
        if acts or _unsettled(rs):
            q.retry.add(ps.key(rs))
        actions += acts
    q.synced = len(rses)
    return actions
