"""Deployment controller (kubernetes pkg/controller/deployment: sync.go, rolling.go, recreate.go,
util/deployment_util.go; our own code).

One ReplicaSet per pod template, named `<deployment>-<pod-template-hash>`; the hash is
controller.ComputeHash's recipe (pkg/controller/controller_utils.go: FNV-1a 32 over the template, the
collision count appended as 8 little-endian bytes, the decimal sum mapped through rand.SafeEncodeString).
Go hashes a spew dump of the Go struct, which cannot be reproduced outside Go, so we hash the template's
canonical JSON: same shape of name, different letters from a real cluster.

RollingUpdate follows NewRSNewReplicas (scale the new RS up to replicas+maxSurge total) and
reconcileOldReplicaSets (clean up unhealthy old pods, then scale old RSs down only while at least
replicas-maxUnavailable pods stay available); availability is counted from the pods themselves.
Recreate scales every old RS to 0, waits for their pods to be gone, then scales the new one up.
Revisions: the new RS gets max(old revisions)+1 in `deployment.kubernetes.io/revision` (an RS brought back
by a rollback is renumbered, its previous numbers kept in `deployment.kubernetes.io/revision-history`), and
the Deployment carries the new RS's revision. Old RSs scaled to zero beyond revisionHistoryLimit are deleted,
lowest revision first. A paused Deployment only scales; it starts no rollout.

A pass syncs only the Deployments a change concerns (netsim.controlplane.workqueue), as deployment_controller.go
queues them: the Deployment changed, one of its ReplicaSets changed (addReplicaSet/updateReplicaSet/
deleteReplicaSet, by controllerRef), or a pod of one of them (availability is counted from the pods here,
where upstream reads it from the ReplicaSets' status, which their pods' changes update). One that wrote,
or whose rollout is not complete (the Progressing condition not NewReplicaSetAvailable: minReadySeconds and
progressDeadlineSeconds are waits on the clock, upstream's requeueStuckDeployment), is synced again next pass.
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.controlplane.workqueue import Key, queue_of
from netsim.model.pod import Pod
from netsim.store import Change, parse_time, rfc3339

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ACTOR = "controller/deployment"


def fnv1a32(data: bytes, h: int = 0x811C9DC5) -> int:
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """rand.SafeEncodeString: each character mapped into the vowel-free alphabet."""
    return "".join(o.ALPHANUMS[ord(c) % len(o.ALPHANUMS)] for c in s)


def compute_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    h = fnv1a32(json.dumps(template, sort_keys=True, separators=(",", ":")).encode())
    if collision_count is not None:
        h = fnv1a32(struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0" * 4, h)
    return safe_encode(str(h))


def without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    return t


def templates_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """EqualIgnoreHash."""
    return json.dumps(without_hash(a), sort_keys=True) == json.dumps(without_hash(b), sort_keys=True)


def revision(obj: dict[str, Any]) -> int:
    try:
        return int(o.annotations(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def strategy(d: dict[str, Any]) -> tuple[str, int, int]:
    """(type, maxSurge, maxUnavailable) resolved against replicas (ResolveFenceposts)."""
    spec = d.get("spec") or {}
    st = spec.get("strategy") or {}
    typ = st.get("type") or "RollingUpdate"
    if typ == "Recreate":
        return typ, 0, 0
    ru = st.get("rollingUpdate") or {}
    replicas = int(spec.get("replicas", 1))
    surge = o.int_or_percent(ru.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = o.int_or_percent(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return typ, surge, unavailable


class _View:
    """The Deployment's ReplicaSets with their live pod counts and the replicas we decide for them."""

    def __init__(self, d: dict[str, Any], snap: Snapshot, ctx: Context):
        self.d = d
        self.min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        self.rses = sorted(snap.owned(d, "ReplicaSet"), key=o.creation_order)
        # Pods typed (decoded once per version by the store's parse cache); ReplicaSets stay the dicts
        # this controller rewrites.
        self.pods = {o.uid(rs): snap.typed_owned(o.uid(rs), "Pod") for rs in self.rses}
        self.replicas = {o.uid(rs): int((rs.get("spec") or {}).get("replicas", 0)) for rs in self.rses}
        self.now = ctx.now

    def active(self, rs: dict[str, Any]) -> list[Pod]:
        return [p for p in self.pods[o.uid(rs)] if ps.active(p)]

    def available(self, rs: dict[str, Any]) -> int:
        return sum(1 for p in self.active(rs) if ps.available(p, self.min_ready, self.now))

    def ready(self, rs: dict[str, Any]) -> int:
        return sum(1 for p in self.active(rs) if ps.ready(p))


def _scaled(rs: dict[str, Any], replicas: int, d: dict[str, Any], surge: int, ctx: Context) -> Action:
    new = copy.deepcopy(rs)
    old = int(new["spec"].get("replicas", 0))
    new["spec"]["replicas"] = replicas
    ann = new["metadata"].setdefault("annotations", {})
    want = int(d["spec"].get("replicas", 1))
    ann[DESIRED_REPLICAS] = str(want)
    ann[MAX_REPLICAS] = str(want + surge)
    direction = "up" if replicas > old else "down"
    return Action("update", new, Event(ctx.now, ACTOR, o.ref(d), "ScalingReplicaSet",
                                       f"Scaled {direction} replica set {o.name(rs)} from {old} to {replicas}"))


def _new_rs(d: dict[str, Any], view: _View, replicas: int, surge: int, ctx: Context) -> dict[str, Any]:
    spec = d["spec"]
    template = copy.deepcopy(spec["template"])
    h = compute_hash(template, (d.get("status") or {}).get("collisionCount"))
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    want = int(spec.get("replicas", 1))
    rev = max((revision(rs) for rs in view.rses), default=0) + 1
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{o.name(d)}-{h}", "namespace": o.namespace(d),
                         "labels": dict(template["metadata"]["labels"]),
                         "annotations": {REVISION: str(rev), DESIRED_REPLICAS: str(want),
                                         MAX_REPLICAS: str(want + surge)},
                         "ownerReferences": [o.owner_reference(d)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": int(spec.get("minReadySeconds") or 0)}}


def _rolling(d: dict[str, Any], view: _View, new: dict[str, Any], old: list[dict], surge: int,
             max_unavailable: int, ctx: Context) -> list[Action]:
    want = int(d["spec"].get("replicas", 1))
    r = view.replicas
    new_replicas = r[o.uid(new)]
    # reconcileNewReplicaSet / NewRSNewReplicas
    if new_replicas > want:
        return [_scaled(new, want, d, surge, ctx)]
    if new_replicas < want:
        total = sum(r.values())
        room = want + surge - total
        if room > 0:
            return [_scaled(new, new_replicas + min(room, want - new_replicas), d, surge, ctx)]
    # reconcileOldReplicaSets
    old_live = [rs for rs in old if r[o.uid(rs)] > 0]
    if not old_live:
        return []
    all_pods = sum(r.values())
    min_available = want - max_unavailable
    new_unavailable = r[o.uid(new)] - view.available(new)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    decided: dict[str, int] = {}
    cleaned = 0
    for rs in old_live:  # cleanupUnhealthyReplicas: old pods that are not available go first
        if cleaned >= max_scaled_down:
            break
        cur = r[o.uid(rs)]
        unhealthy = cur - view.available(rs)
        if unhealthy <= 0:
            continue
        down = min(max_scaled_down - cleaned, unhealthy)
        decided[o.uid(rs)] = cur - down
        cleaned += down
    available = sum(view.available(rs) for rs in view.rses)
    if available > min_available:  # scaleDownOldReplicaSetsForRollingUpdate
        budget = available - min_available
        for rs in old_live:
            if budget <= 0:
                break
            cur = decided.get(o.uid(rs), r[o.uid(rs)])
            down = min(cur, budget)
            if down:
                decided[o.uid(rs)] = cur - down
                budget -= down
    return [_scaled(rs, decided[o.uid(rs)], d, surge, ctx) for rs in old_live
            if o.uid(rs) in decided and decided[o.uid(rs)] != r[o.uid(rs)]]


def _recreate(d: dict[str, Any], view: _View, new: dict[str, Any] | None, old: list[dict],
              ctx: Context) -> tuple[list[Action], bool]:
    """Returns (actions, may create the new RS now)."""
    downs = [_scaled(rs, 0, d, 0, ctx) for rs in old if view.replicas[o.uid(rs)] > 0]
    if downs:
        return downs, False
    if any(not ps.terminal(p) for rs in old for p in view.pods[o.uid(rs)]):
        return [], False  # oldPodsRunning: wait until the old pods are really gone
    want = int(d["spec"].get("replicas", 1))
    if new is not None and view.replicas[o.uid(new)] != want:
        return [_scaled(new, want, d, 0, ctx)], True
    return [], True


def _renumber(rs: dict[str, Any], rev: int) -> Action:
    new = copy.deepcopy(rs)
    ann = new["metadata"].setdefault("annotations", {})
    old = ann.get(REVISION)
    if old:
        history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
        ann[REVISION_HISTORY] = ",".join([*history, old])
    ann[REVISION] = str(rev)
    return Action("update", new)


def _cleanup(d: dict[str, Any], view: _View, old: list[dict], ctx: Context) -> list[Action]:
    limit = int(d["spec"].get("revisionHistoryLimit", 10))
    idle = [rs for rs in old if view.replicas[o.uid(rs)] == 0 and not view.pods[o.uid(rs)]]
    excess = len(idle) - limit
    if excess <= 0:
        return []
    return [Action("delete", rs, Event(ctx.now, ACTOR, o.ref(d), "DeletedReplicaSet",
                                       f"Deleted old replica set {o.name(rs)} (revision {revision(rs)})"))
            for rs in sorted(idle, key=revision)[:excess]]


def _status(d: dict[str, Any], view: _View, new: dict[str, Any] | None, surge_unavailable: int,
            ctx: Context) -> dict[str, Any]:
    want = int(d["spec"].get("replicas", 1))
    total = sum(len(view.active(rs)) for rs in view.rses)
    updated = len(view.active(new)) if new is not None else 0
    available = sum(view.available(rs) for rs in view.rses)
    status = copy.deepcopy(d.get("status") or {})
    status.update({"observedGeneration": o.meta(d).get("generation", 1), "replicas": total,
                   "updatedReplicas": updated, "readyReplicas": sum(view.ready(rs) for rs in view.rses),
                   "availableReplicas": available, "unavailableReplicas": max(want - available, 0)})
    if available >= want - surge_unavailable:
        o.set_condition(status, "Available", "True", ctx.now, "MinimumReplicasAvailable",
                        "Deployment has minimum availability.")
    else:
        o.set_condition(status, "Available", "False", ctx.now, "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.")
    if (d["spec"].get("paused")):
        o.set_condition(status, "Progressing", "Unknown", ctx.now, "DeploymentPaused", "Deployment is paused")
    elif new is not None and updated == want and available == want and total == want:
        o.set_condition(status, "Progressing", "True", ctx.now, "NewReplicaSetAvailable",
                        f'ReplicaSet "{o.name(new)}" has successfully progressed.')
    elif new is not None:
        _progress(d, status, new, ctx)
    return status


def _progress(d: dict[str, Any], status: dict[str, Any], new: dict[str, Any], ctx: Context) -> None:
    """A rollout under way: progress.go syncRolloutStatus. The Progressing condition's lastUpdateTime moves
    when the rollout made progress (DeploymentProgressing: more updated, ready or available replicas, or fewer
    old ones); when it has not moved for progressDeadlineSeconds (DeploymentTimedOut) the condition turns
    False with reason ProgressDeadlineExceeded (what `rollout status` reports as exceeding its deadline)."""
    old = d.get("status") or {}
    progressed = (status["updatedReplicas"] > old.get("updatedReplicas", 0)
                  or status["readyReplicas"] > old.get("readyReplicas", 0)
                  or status["availableReplicas"] > old.get("availableReplicas", 0)
                  or status["replicas"] - status["updatedReplicas"]
                  < old.get("replicas", 0) - old.get("updatedReplicas", 0))
    cur = o.condition({"status": status}, "Progressing")
    deadline = d["spec"].get("progressDeadlineSeconds")
    if progressed or cur is None or cur.get("reason") not in ("ReplicaSetUpdated", "ProgressDeadlineExceeded") \
            or cur.get("message", "").split('"')[1:2] != [o.name(new)]:
        o.set_condition(status, "Progressing", "True", ctx.now, "ReplicaSetUpdated",
                        f'ReplicaSet "{o.name(new)}" is progressing.')
        o.condition({"status": status}, "Progressing")["lastUpdateTime"] = rfc3339(ctx.now)
        return
    if cur.get("reason") == "ProgressDeadlineExceeded" or not deadline:
        return
    since = parse_time(cur.get("lastUpdateTime")) or ctx.now
    if since + int(deadline) < ctx.now:
        o.set_condition(status, "Progressing", "False", ctx.now, "ProgressDeadlineExceeded",
                        f'ReplicaSet "{o.name(new)}" has timed out progressing.')


def _name_collides(d: dict[str, Any], view: _View, snap: Snapshot) -> bool:
    h = compute_hash(d["spec"]["template"], (d.get("status") or {}).get("collisionCount"))
    return snap.get("ReplicaSet", o.namespace(d), f"{o.name(d)}-{h}") is not None


def reconcile_deployment(d: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    if o.is_terminating(d):
        return []
    spec = d["spec"]
    view = _View(d, snap, ctx)
    typ, surge, max_unavailable = strategy(d)
    new = next((rs for rs in view.rses if templates_equal(rs["spec"].get("template"), spec.get("template"))), None)
    old = [rs for rs in view.rses if rs is not new]
    actions: list[Action] = []
    if spec.get("paused"):
        if new is not None and not any(view.replicas[o.uid(rs)] for rs in old):
            want = int(spec.get("replicas", 1))
            if view.replicas[o.uid(new)] != want:
                actions.append(_scaled(new, want, d, surge, ctx))
    else:
        max_old = max((revision(rs) for rs in old), default=0)
        if new is not None and revision(new) <= max_old:
            renumbered = _renumber(new, max_old + 1)
            actions.append(renumbered)
            new = renumbered.obj
        if typ == "Recreate":
            acts, may_create = _recreate(d, view, new, old, ctx)
            actions += acts
            if new is None and may_create:
                rs = _new_rs(d, view, int(spec.get("replicas", 1)), 0, ctx)
                actions.append(Action("create", rs, Event(
                    ctx.now, ACTOR, o.ref(d), "ScalingReplicaSet",
                    f"Scaled up replica set {o.name(rs)} from 0 to {rs['spec']['replicas']}")))
        elif new is None and _name_collides(d, view, snap):
            # ComputeHash collision with a ReplicaSet of another template: retry with collisionCount+1.
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            return [Action("status", {**d, "status": status})]
        elif new is None:
            want = int(spec.get("replicas", 1))
            room = want + surge - sum(view.replicas.values())
            first = min(max(room, 0), want)
            rs = _new_rs(d, view, first, surge, ctx)
            actions.append(Action("create", rs, Event(ctx.now, ACTOR, o.ref(d), "ScalingReplicaSet",
                                                      f"Scaled up replica set {o.name(rs)} from 0 to {first}")))
        else:
            view.replicas[o.uid(new)] = int(new["spec"].get("replicas", 0))
            actions += _rolling(d, view, new, old, surge, max_unavailable, ctx)
        actions += _cleanup(d, view, old, ctx)
    status = _status(d, view, new, max_unavailable, ctx)
    new_d = copy.deepcopy(d)
    changed = status != (d.get("status") or {})
    new_d["status"] = status
    target_rev = str(revision(new)) if new is not None else None
    created = next((a.obj for a in actions if a.verb == "create"), None)
    if created is not None:
        target_rev = created["metadata"]["annotations"][REVISION]
    if target_rev and o.annotations(d).get(REVISION) != target_rev:
        new_d["metadata"].setdefault("annotations", {})[REVISION] = target_rev
        changed = True
    if changed:
        actions.append(Action("update", new_d))
    return actions


QUEUE = "deployment-queue"
WATCH_KINDS = ("Deployment", "ReplicaSet", "Pod")


def _owner(obj: dict[str, Any], kind: str) -> str | None:
    ref = o.controller_ref(obj)
    return ref.get("name") if ref is not None and ref.get("kind") == kind else None


def _affected(changes: list[Change], snap: Snapshot) -> set[Key]:
    """The Deployments a batch of changes concerns (deployment_controller.go's event handlers)."""
    out: set[Key] = set()
    for c in changes:
        ns = c.namespace or "default"
        if c.kind == "Deployment":
            out.add((ns, c.name))
        elif c.kind == "ReplicaSet":
            if (name := _owner(c.object, "Deployment")) is not None:
                out.add((ns, name))
        elif (rs_name := _owner(c.object, "ReplicaSet")) is not None:
            rs = snap.get("ReplicaSet", ns, rs_name)
            if rs is not None and (name := _owner(rs, "Deployment")) is not None:
                out.add((ns, name))
    return out


def _settled(d: dict[str, Any]) -> bool:
    """Nothing but a change can move it: paused, or its rollout complete (NewReplicaSetAvailable)."""
    if (d.get("spec") or {}).get("paused"):
        return True
    c = o.condition(d, "Progressing") or {}
    return c.get("reason") == "NewReplicaSetAvailable"


def reconcile_deployments(snap: Snapshot, ctx: Context) -> list[Action]:
    q = queue_of(ctx, QUEUE)
    keys = q.take(ctx, WATCH_KINDS, lambda changes: _affected(changes, snap))
    if keys is None:
        deployments = snap.of("Deployment")
    else:
        deployments = [d for ns, name in sorted(keys) if (d := snap.get("Deployment", ns, name)) is not None]
    actions: list[Action] = []
    for d in deployments:
        acts = reconcile_deployment(d, snap, ctx)
        if acts or not _settled(d):
            q.retry.add((o.namespace(d) or "default", o.name(d)))
        actions += acts
    q.synced = len(deployments)
    return actions
