"""Whether an object has reached a named condition, read from its stored status: what `kubectl wait
--for=condition=...` and a scenario's `wait: {condition: ...}` step ask.

Workload kinds count replicas as their controllers report them in status (readyReplicas, availableReplicas,
numberReady ...; kubectl's rollout status reads the same fields, `RolledOut` for a Deployment is
`netsim.controlplane.rollout.rollout_status`); other kinds answer from `status.conditions`. `Deleted` holds
when the object is gone. `Replicas=N` holds when a workload asks for N replicas and its status counts N
(kubectl wait --for=jsonpath='{.status.replicas}'=N).
"""

from __future__ import annotations

from typing import Any

from netsim.controlplane.rollout import rollout_status


def holds(obj: dict[str, Any] | None, condition: str) -> bool:
    """Does `obj` (a stored manifest dict, None when absent) satisfy `condition` now?"""
    if condition == "Deleted":
        return obj is None
    if obj is None:
        return False
    status = obj.get("status") or {}
    kind = obj.get("kind")
    if condition == "RolledOut" and kind == "Deployment":
        return rollout_status(obj)[1]
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    if condition.startswith("Replicas="):  # scaled to exactly N: asked for and observed
        want = int(condition.partition("=")[2])
        return replicas == want and int(status.get("replicas", 0)) == want
    if kind in ("Deployment", "StatefulSet", "ReplicaSet") and condition in ("Ready", "Available"):
        key = "availableReplicas" if condition == "Available" and kind == "Deployment" else "readyReplicas"
        return status.get(key, 0) >= replicas
    if kind == "StatefulSet" and condition == "RolledOut":
        return (status.get("readyReplicas", 0) >= replicas
                and status.get("currentRevision") == status.get("updateRevision"))
    if kind == "DaemonSet" and condition in ("Ready", "Available", "RolledOut"):
        desired = status.get("desiredNumberScheduled", 0)
        have = {"Ready": status.get("numberReady", 0), "Available": status.get("numberAvailable", 0),
                "RolledOut": min(status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0))}
        return desired > 0 and have[condition] >= desired
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return conds.get(condition) == "True"
