"""The disruption controller: each PodDisruptionBudget's status, which the eviction API consults.

As kube-controller-manager's (pkg/controller/disruption/disruption.go):

- the PDB's pods: those in its namespace its selector matches (policy/v1: an empty selector matches
  every pod, a missing one none);
- expected pods and desired healthy (getExpectedPodCount): `minAvailable` as a number: that many, out
  of the pods found; `minAvailable` as a percentage or `maxUnavailable`: scaled against the summed
  scale of the pods' controllers (getExpectedScale: a ReplicaSet's Deployment, else the ReplicaSet,
  StatefulSet, ReplicationController; each controller once), rounding up; a pod without a controller
  makes the count fail, and a failing count gives the fail-safe status (no disruption allowed);
- current healthy (countHealthyPods): Ready pods not being deleted and not recorded in
  `status.disruptedPods` (evicted pods the API server is still deleting; an entry expires after two
  minutes, or when its pod is gone or being deleted: buildDisruptedPodMap);
- disruptionsAllowed = currentHealthy - desiredHealthy, 0 when negative or nothing is expected; the
  `DisruptionAllowed` condition (pdb/helpers UpdateDisruptionAllowedCondition): True/SufficientPods
  when some disruption is allowed, False/InsufficientPods otherwise; `observedGeneration`.

Everything is read typed from the store's parse cache: the PDB (netsim.model.disruption), its pods and
their controllers (ReplicaSet, Deployment, StatefulSet, ReplicationController); only the status write
starts from the stored dict.
"""

from __future__ import annotations

import math
from typing import Any

from netsim.controlplane import podstate as ps
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.disruption import PodDisruptionBudget
from netsim.model.pod import Pod
from netsim.store import parse_time, rfc3339

DELETION_TIMEOUT = 120.0  # disruption.go DeletionTimeout: how long an evicted pod stays in disruptedPods


class CountFailed(Exception):
    pass


def scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with roundUp=true."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%") or not text[:-1].isdigit():
        raise CountFailed(f"invalid value for IntOrString: invalid value {text!r}")
    return math.ceil(int(text[:-1]) * total / 100)


def pods_of(snap: Snapshot, pdb: PodDisruptionBudget) -> list[Pod]:
    """The PDB's pods, typed (each version parsed once by the store's parse cache, not walked as dicts)."""
    if pdb.selector is None:
        return []
    return [p for p in snap.typed("Pod", pdb.meta.namespace) if pdb.selector.matches(p.meta.labels)]


def _controller_scale(snap: Snapshot, ns: str | None, ref: dict[str, Any]) -> tuple[str, int]:
    """(the controller's uid, its scale) for a pod's controllerRef (the finders of getExpectedScale), the
    controllers read typed from the store's parse cache."""
    kind, name = ref.get("kind"), ref.get("name", "")
    if kind == "ReplicaSet":
        got = snap.typed_get("ReplicaSet", ns, name)
        if got is None or got[0].meta.uid != ref.get("uid"):
            raise CountFailed(f"replicaset {name} not found")
        rs = got[0]
        dref = ps.controller_ref(rs)
        if dref is not None and dref.get("kind") == "Deployment":
            dep = snap.typed_get("Deployment", ns, dref.get("name", ""))
            if dep is not None and dep[0].meta.uid == dref.get("uid"):
                return dep[0].meta.uid, dep[0].replicas
        return rs.meta.uid, rs.replicas
    if kind == "StatefulSet":
        got = snap.typed_get(kind, ns, name)
        if got is not None and got[0].meta.uid == ref.get("uid"):
            return got[0].meta.uid, got[0].replicas
        raise CountFailed(f"{kind.lower()} {name} not found")
    if kind == "ReplicationController":
        return _replication_controller_scale(snap, ns, name, ref)
    raise CountFailed(f"found no controllers for pod with controller {kind}/{name}")


def _replication_controller_scale(snap: Snapshot, ns: str | None, name: str, ref: dict[str, Any]) -> tuple[str, int]:
    """A ReplicationController's scale (netsim.model.replicationcontroller; netsim runs no RC controller)."""
    got = snap.typed_get("ReplicationController", ns, name)
    if got is not None and got[0].meta.uid == ref.get("uid"):
        return got[0].meta.uid, got[0].replicas
    raise CountFailed(f"replicationcontroller {name} not found")


def expected_scale(snap: Snapshot, pods: list[Pod]) -> int:
    seen: dict[str, int] = {}
    for pod in pods:
        ref = ps.controller_ref(pod)
        if ref is None:
            raise CountFailed(f'found no controller ref for pod "{pod.meta.name}"')
        uid, scale = _controller_scale(snap, pod.meta.namespace, ref)
        seen[uid] = scale
    return sum(seen.values())


def expected_and_desired(snap: Snapshot, pdb: PodDisruptionBudget, pods: list[Pod]) -> tuple[int, int]:
    if pdb.max_unavailable is not None:
        expected = expected_scale(snap, pods)
        return expected, max(0, expected - scaled(pdb.max_unavailable, expected))
    if pdb.min_available is not None:
        if isinstance(pdb.min_available, int):
            return len(pods), pdb.min_available
        expected = expected_scale(snap, pods)
        return expected, scaled(pdb.min_available, expected)
    return 0, 0


def disrupted_map(pdb: PodDisruptionBudget, pods: list[Pod], now: float) -> dict[str, str]:
    """buildDisruptedPodMap: entries of pods that still exist, are not being deleted, and are recent."""
    by_name = {p.meta.name: p for p in pods}
    out = {}
    for name, when in pdb.status.disrupted_pods.items():
        pod = by_name.get(name)
        if pod is None or ps.terminating(pod):
            continue
        at = parse_time(when)
        if at is not None and at + DELETION_TIMEOUT < now:
            continue
        out[name] = when
    return out


def status_of(snap: Snapshot, pdb: PodDisruptionBudget, now: float) -> dict[str, Any]:
    """The status the controller writes (a dict: the write starts from the stored status, so fields netsim
    does not model survive a failed count)."""
    pods = pods_of(snap, pdb)
    gen = ps.generation(pdb)
    try:
        expected, desired = expected_and_desired(snap, pdb, pods)
    except CountFailed as e:  # failSafe: nothing may be disrupted until the count works again
        status = {**pdb.status.raw, "disruptionsAllowed": 0, "observedGeneration": gen}
        status.setdefault("currentHealthy", 0)
        status.setdefault("desiredHealthy", 0)
        status.setdefault("expectedPods", 0)
        _condition(status, False, "SyncFailed", str(e), pdb, now)
        return status
    disrupted = disrupted_map(pdb, pods, now)
    healthy = sum(1 for p in pods if not ps.terminating(p) and p.meta.name not in disrupted and ps.ready(p))
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = {"observedGeneration": gen, "disruptionsAllowed": allowed, "currentHealthy": healthy,
              "desiredHealthy": desired, "expectedPods": expected}
    if disrupted:
        status["disruptedPods"] = disrupted
    if allowed > 0:
        _condition(status, True, "SufficientPods", "", pdb, now)
    else:
        _condition(status, False, "InsufficientPods", "", pdb, now)
    return status


def _condition(status: dict[str, Any], ok: bool, reason: str, message: str, pdb: PodDisruptionBudget,
               now: float) -> None:
    """UpdateDisruptionAllowedCondition: lastTransitionTime kept while the condition's status stays."""
    value = "True" if ok else "False"
    prev = pdb.status.condition("DisruptionAllowed")
    since = prev.last_transition_time if prev is not None and prev.status == value and \
        prev.last_transition_time else rfc3339(now)
    status["conditions"] = [{"type": "DisruptionAllowed", "status": value, "reason": reason, "message": message,
                             "observedGeneration": status["observedGeneration"], "lastTransitionTime": since}]


def reconcile_disruption(snap: Snapshot, ctx: Context) -> list[Action]:
    """Each typed PDB's status; a changed one is written on its stored dict (the write edge). A PDB that
    does not parse is left out (the parse cache logs it once per version)."""
    actions = []
    for pdb, raw in snap.typed_with_raw("PodDisruptionBudget"):
        status = status_of(snap, pdb, ctx.now)
        if status != pdb.status.raw:
            actions.append(Action("status", {**raw, "status": status}))
    return actions
