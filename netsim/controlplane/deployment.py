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
from collections.abc import Mapping
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.controlplane.workqueue import Key, queue_of
from netsim.model.pod import Pod
from netsim.model.workloads import Deployment, ReplicaSet
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


def revision_of(annotations: Mapping[str, str]) -> int:
    """deployment.kubernetes.io/revision as a number (0 when absent or not a number)."""
    try:
        return int(annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def revision(obj: dict[str, Any]) -> int:
    """The revision of a stored object (kubectl's client side: `rollout history | undo`)."""
    return revision_of(o.annotations(obj))


def _rev(rs: ReplicaSet) -> int:
    return revision_of(rs.meta.annotations)


def strategy(d: Deployment) -> tuple[str, int, int]:
    """(type, maxSurge, maxUnavailable) resolved against replicas (ResolveFenceposts)."""
    st = d.strategy
    if st.type == "Recreate":
        return st.type, 0, 0
    surge = o.int_or_percent(st.max_surge, d.replicas, round_up=True)
    unavailable = o.int_or_percent(st.max_unavailable, d.replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return st.type, surge, unavailable


class _View:
    """The Deployment's ReplicaSets (typed, with their stored dicts for the writes) with their live pod
    counts and the replicas we decide for them."""

    def __init__(self, d: Deployment, snap: Snapshot, ctx: Context):
        self.d = d
        self.min_ready = d.min_ready_seconds
        self.rses: list[ReplicaSet] = sorted(snap.typed_owned(d.meta.uid, "ReplicaSet"), key=ps.creation_order)
        self.raw: dict[str | None, dict[str, Any]] = {}
        for rs in self.rses:
            raw = snap.get("ReplicaSet", rs.meta.namespace, rs.meta.name)
            if raw is not None:
                self.raw[rs.meta.uid] = raw
        self.rses = [rs for rs in self.rses if rs.meta.uid in self.raw]
        # Pods typed (decoded once per version by the store's parse cache), by owning ReplicaSet.
        self.pods = {rs.meta.uid: snap.typed_owned(rs.meta.uid, "Pod") for rs in self.rses}
        self.replicas = {rs.meta.uid: rs.replicas for rs in self.rses}
        self.now = ctx.now

    def active(self, rs: ReplicaSet) -> list[Pod]:
        return [p for p in self.pods[rs.meta.uid] if ps.active(p)]

    def available(self, rs: ReplicaSet) -> int:
        return sum(1 for p in self.active(rs) if ps.available(p, self.min_ready, self.now))

    def ready(self, rs: ReplicaSet) -> int:
        return sum(1 for p in self.active(rs) if ps.ready(p))


def _scaled(view: _View, rs: ReplicaSet, replicas: int, surge: int, ctx: Context) -> Action:
    """The ReplicaSet's update to `replicas` (from its stored dict: the write edge)."""
    d = view.d
    new = copy.deepcopy(view.raw[rs.meta.uid])
    old = rs.replicas
    new["spec"]["replicas"] = replicas
    ann = new["metadata"].setdefault("annotations", {})
    ann[DESIRED_REPLICAS] = str(d.replicas)
    ann[MAX_REPLICAS] = str(d.replicas + surge)
    direction = "up" if replicas > old else "down"
    return Action("update", new, Event(ctx.now, ACTOR, ps.ref(d), "ScalingReplicaSet",
                                       f"Scaled {direction} replica set {rs.meta.name} from {old} to {replicas}"))


def _new_rs(d: Deployment, raw: dict[str, Any], view: _View, replicas: int, surge: int) -> dict[str, Any]:
    """The new ReplicaSet, built from the Deployment's stored template and selector dicts (the write edge:
    its name's pod-template-hash is computed over the stored template)."""
    spec = raw["spec"]
    template = copy.deepcopy(spec["template"])
    h = compute_hash(template, d.status.raw.get("collisionCount"))
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    rev = max((_rev(rs) for rs in view.rses), default=0) + 1
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{d.meta.name}-{h}", "namespace": d.meta.namespace,
                         "labels": dict(template["metadata"]["labels"]),
                         "annotations": {REVISION: str(rev), DESIRED_REPLICAS: str(d.replicas),
                                         MAX_REPLICAS: str(d.replicas + surge)},
                         "ownerReferences": [ps.owner_reference(d)]},
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": d.min_ready_seconds}}


def _rolling(view: _View, new: ReplicaSet, old: list[ReplicaSet], surge: int, max_unavailable: int,
             ctx: Context) -> list[Action]:
    want = view.d.replicas
    r = view.replicas
    new_replicas = r[new.meta.uid]
    # reconcileNewReplicaSet / NewRSNewReplicas
    if new_replicas > want:
        return [_scaled(view, new, want, surge, ctx)]
    if new_replicas < want:
        total = sum(r.values())
        room = want + surge - total
        if room > 0:
            return [_scaled(view, new, new_replicas + min(room, want - new_replicas), surge, ctx)]
    # reconcileOldReplicaSets
    old_live = [rs for rs in old if r[rs.meta.uid] > 0]
    if not old_live:
        return []
    all_pods = sum(r.values())
    min_available = want - max_unavailable
    new_unavailable = r[new.meta.uid] - view.available(new)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    decided: dict[str | None, int] = {}
    cleaned = 0
    for rs in old_live:  # cleanupUnhealthyReplicas: old pods that are not available go first
        if cleaned >= max_scaled_down:
            break
        cur = r[rs.meta.uid]
        unhealthy = cur - view.available(rs)
        if unhealthy <= 0:
            continue
        down = min(max_scaled_down - cleaned, unhealthy)
        decided[rs.meta.uid] = cur - down
        cleaned += down
    available = sum(view.available(rs) for rs in view.rses)
    if available > min_available:  # scaleDownOldReplicaSetsForRollingUpdate
        budget = available - min_available
        for rs in old_live:
            if budget <= 0:
                break
            cur = decided.get(rs.meta.uid, r[rs.meta.uid])
            down = min(cur, budget)
            if down:
                decided[rs.meta.uid] = cur - down
                budget -= down
    return [_scaled(view, rs, decided[rs.meta.uid], surge, ctx) for rs in old_live
            if rs.meta.uid in decided and decided[rs.meta.uid] != r[rs.meta.uid]]


def _recreate(view: _View, new: ReplicaSet | None, old: list[ReplicaSet], ctx: Context) -> tuple[list[Action], bool]:
    """Returns (actions, may create the new RS now)."""
    downs = [_scaled(view, rs, 0, 0, ctx) for rs in old if view.replicas[rs.meta.uid] > 0]
    if downs:
        return downs, False
    if any(not ps.terminal(p) for rs in old for p in view.pods[rs.meta.uid]):
        return [], False  # oldPodsRunning: wait until the old pods are really gone
    want = view.d.replicas
    if new is not None and view.replicas[new.meta.uid] != want:
        return [_scaled(view, new, want, 0, ctx)], True
    return [], True


def _renumber(raw: dict[str, Any], rev: int) -> Action:
    """The ReplicaSet brought back by a rollback, renumbered (its stored dict: the write edge)."""
    new = copy.deepcopy(raw)
    ann = new["metadata"].setdefault("annotations", {})
    old = ann.get(REVISION)
    if old:
        history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
        ann[REVISION_HISTORY] = ",".join([*history, old])
    ann[REVISION] = str(rev)
    return Action("update", new)


def _cleanup(view: _View, old: list[ReplicaSet], ctx: Context) -> list[Action]:
    d = view.d
    idle = [rs for rs in old if view.replicas[rs.meta.uid] == 0 and not view.pods[rs.meta.uid]]
    excess = len(idle) - d.revision_history_limit
    if excess <= 0:
        return []
    return [Action("delete", view.raw[rs.meta.uid], Event(
        ctx.now, ACTOR, ps.ref(d), "DeletedReplicaSet", f"Deleted old replica set {rs.meta.name} (revision {_rev(rs)})"))
        for rs in sorted(idle, key=_rev)[:excess]]


def _condition(status: dict[str, Any], typ: str) -> dict[str, Any] | None:
    """A condition of the status being built (a dict: it is the write)."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == typ), None)


def _status(view: _View, new: ReplicaSet | None, surge_unavailable: int, ctx: Context) -> dict[str, Any]:
    """The Deployment's status to write: its stored status (fields we do not compute kept) updated from the
    typed ReplicaSets and pods."""
    d = view.d
    want = d.replicas
    total = sum(len(view.active(rs)) for rs in view.rses)
    updated = len(view.active(new)) if new is not None else 0
    available = sum(view.available(rs) for rs in view.rses)
    status = copy.deepcopy(dict(d.status.raw))
    status.update({"observedGeneration": ps.generation(d), "replicas": total,
                   "updatedReplicas": updated, "readyReplicas": sum(view.ready(rs) for rs in view.rses),
                   "availableReplicas": available, "unavailableReplicas": max(want - available, 0)})
    if available >= want - surge_unavailable:
        o.set_condition(status, "Available", "True", ctx.now, "MinimumReplicasAvailable",
                        "Deployment has minimum availability.")
    else:
        o.set_condition(status, "Available", "False", ctx.now, "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.")
    if d.paused:
        o.set_condition(status, "Progressing", "Unknown", ctx.now, "DeploymentPaused", "Deployment is paused")
    elif new is not None and updated == want and available == want and total == want:
        o.set_condition(status, "Progressing", "True", ctx.now, "NewReplicaSetAvailable",
                        f'ReplicaSet "{new.meta.name}" has successfully progressed.')
    elif new is not None:
        _progress(d, status, new, ctx)
    return status


def _progress(d: Deployment, status: dict[str, Any], new: ReplicaSet, ctx: Context) -> None:
    """A rollout under way: progress.go syncRolloutStatus. The Progressing condition's lastUpdateTime moves
    when the rollout made progress (DeploymentProgressing: more updated, ready or available replicas, or fewer
    old ones); when it has not moved for progressDeadlineSeconds (DeploymentTimedOut) the condition turns
    False with reason ProgressDeadlineExceeded (what `rollout status` reports as exceeding its deadline)."""
    old = d.status
    progressed = (status["updatedReplicas"] > old.updated_replicas
                  or status["readyReplicas"] > old.ready_replicas
                  or status["availableReplicas"] > old.available_replicas
                  or status["replicas"] - status["updatedReplicas"] < old.replicas - old.updated_replicas)
    cur = _condition(status, "Progressing")
    deadline = d.progress_deadline_seconds
    if progressed or cur is None or cur.get("reason") not in ("ReplicaSetUpdated", "ProgressDeadlineExceeded") \
            or cur.get("message", "").split('"')[1:2] != [new.meta.name]:
        o.set_condition(status, "Progressing", "True", ctx.now, "ReplicaSetUpdated",
                        f'ReplicaSet "{new.meta.name}" is progressing.')
        _condition(status, "Progressing")["lastUpdateTime"] = rfc3339(ctx.now)
        return
    if cur.get("reason") == "ProgressDeadlineExceeded" or not deadline:
        return
    since = parse_time(cur.get("lastUpdateTime")) or ctx.now
    if since + int(deadline) < ctx.now:
        o.set_condition(status, "Progressing", "False", ctx.now, "ProgressDeadlineExceeded",
                        f'ReplicaSet "{new.meta.name}" has timed out progressing.')


def _template_match(view: _View, raw: dict[str, Any]) -> ReplicaSet | None:
    """The ReplicaSet whose stored template is the Deployment's, the hash label aside (EqualIgnoreHash; the
    stored dicts, over which the pod-template hash is computed too)."""
    template = raw["spec"].get("template")
    return next((rs for rs in view.rses if templates_equal(view.raw[rs.meta.uid]["spec"].get("template"), template)),
                None)


def _name_collides(d: Deployment, raw: dict[str, Any], snap: Snapshot) -> bool:
    h = compute_hash(raw["spec"]["template"], d.status.raw.get("collisionCount"))
    return snap.get("ReplicaSet", d.meta.namespace, f"{d.meta.name}-{h}") is not None


def _collision(raw: dict[str, Any]) -> Action:
    """ComputeHash collided with a ReplicaSet of another template: collisionCount+1 (a status write)."""
    status = copy.deepcopy(raw.get("status") or {})
    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
    return Action("status", {**raw, "status": status})


def _deployment_update(raw: dict[str, Any], status: dict[str, Any], target_rev: str | None) -> Action | None:
    """The Deployment's update (its stored dict with the new status and revision annotation), if anything
    changed."""
    new_d = copy.deepcopy(raw)
    changed = status != (raw.get("status") or {})
    new_d["status"] = status
    if target_rev and o.annotations(raw).get(REVISION) != target_rev:
        new_d["metadata"].setdefault("annotations", {})[REVISION] = target_rev
        changed = True
    return Action("update", new_d) if changed else None


def reconcile_deployment(d: Deployment, raw: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    """One Deployment, read typed (it, its ReplicaSets and their pods from the store's parse cache); `raw`
    is its stored dict, which its writes start from."""
    if ps.terminating(d):
        return []
    view = _View(d, snap, ctx)
    typ, surge, max_unavailable = strategy(d)
    new = _template_match(view, raw)
    old = [rs for rs in view.rses if rs is not new]
    actions: list[Action] = []
    new_rev = _rev(new) if new is not None else None
    if d.paused:
        if new is not None and not any(view.replicas[rs.meta.uid] for rs in old) \
                and view.replicas[new.meta.uid] != d.replicas:
            actions.append(_scaled(view, new, d.replicas, surge, ctx))
    else:
        max_old = max((_rev(rs) for rs in old), default=0)
        if new is not None and _rev(new) <= max_old:
            renumbered = _renumber(view.raw[new.meta.uid], max_old + 1)
            actions.append(renumbered)
            view.raw[new.meta.uid] = renumbered.obj  # later writes of it carry the new number
            new_rev = max_old + 1
        if typ == "Recreate":
            acts, may_create = _recreate(view, new, old, ctx)
            actions += acts
            if new is None and may_create:
                rs = _new_rs(d, raw, view, d.replicas, 0)
                new_rev = max((_rev(x) for x in view.rses), default=0) + 1
                actions.append(Action("create", rs, Event(
                    ctx.now, ACTOR, ps.ref(d), "ScalingReplicaSet",
                    f"Scaled up replica set {o.name(rs)} from 0 to {d.replicas}")))
        elif new is None and _name_collides(d, raw, snap):
            return [_collision(raw)]
        elif new is None:
            room = d.replicas + surge - sum(view.replicas.values())
            first = min(max(room, 0), d.replicas)
            rs = _new_rs(d, raw, view, first, surge)
            new_rev = max((_rev(x) for x in view.rses), default=0) + 1
            actions.append(Action("create", rs, Event(ctx.now, ACTOR, ps.ref(d), "ScalingReplicaSet",
                                                      f"Scaled up replica set {o.name(rs)} from 0 to {first}")))
        else:
            actions += _rolling(view, new, old, surge, max_unavailable, ctx)
        actions += _cleanup(view, old, ctx)
    status = _status(view, new, max_unavailable, ctx)
    update = _deployment_update(raw, status, str(new_rev) if new_rev is not None else None)
    if update is not None:
        actions.append(update)
    return actions


QUEUE = "deployment-queue"
WATCH_KINDS = ("Deployment", "ReplicaSet", "Pod")


def _owner(obj: dict[str, Any], kind: str) -> str | None:
    """The controller of a change log row, if of `kind` (the change log is an edge)."""
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
            got = snap.typed_get("ReplicaSet", ns, rs_name)
            ref = ps.controller_ref(got[0]) if got is not None else None
            if ref is not None and ref.get("kind") == "Deployment":
                out.add((ns, ref.get("name") or ""))
    return out


def _settled(d: Deployment) -> bool:
    """Nothing but a change can move it: paused, or its rollout complete (NewReplicaSetAvailable)."""
    if d.paused:
        return True
    c = d.status.condition("Progressing")
    return c is not None and c.reason == "NewReplicaSetAvailable"


def reconcile_deployments(snap: Snapshot, ctx: Context) -> list[Action]:
    q = queue_of(ctx, QUEUE)
    keys = q.take(ctx, WATCH_KINDS, lambda changes: _affected(changes, snap))
    if keys is None:
        deployments = snap.typed_with_raw("Deployment")
    else:
        deployments = [got for ns, name in sorted(keys) if (got := snap.typed_get("Deployment", ns, name)) is not None]
    actions: list[Action] = []
    for d, raw in deployments:
        acts = reconcile_deployment(d, raw, snap, ctx)
        if acts or not _settled(d):
            q.retry.add(ps.key(d))
        actions += acts
    q.synced = len(deployments)
    return actions
