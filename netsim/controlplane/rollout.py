"""`rollout status | history | undo` for Deployments, as kubectl does them (client side).

Status messages follow kubectl's DeploymentStatusViewer (staging kubectl pkg/polymorphichelpers/
rollout_status.go); history lists the ReplicaSets' revisions with kubernetes.io/change-cause; undo follows
DeploymentRollbacker (polymorphichelpers/rollback.go): find the ReplicaSet of the wanted revision (0: the one
before the current), refuse for a paused Deployment, skip when the template already matches, otherwise copy
its template (without pod-template-hash) into the Deployment. The controller then finds that ReplicaSet as
the new one and renumbers it to the next revision, so history shows 1,3,4 after undoing from 3 to 2.
"""

from __future__ import annotations

import copy
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.deployment import REVISION, revision, templates_equal, without_hash
from netsim.store import NotFound, Store, StoreError

CHANGE_CAUSE = "kubernetes.io/change-cause"


def rollout_status(d: dict[str, Any]) -> tuple[str, bool]:
    """(message, done) for one Deployment, kubectl's wording without the trailing newline."""
    name = o.name(d)
    status = d.get("status") or {}
    if o.meta(d).get("generation", 1) > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    cond = o.condition(d, "Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        raise StoreError(f'deployment "{name}" exceeded its progress deadline')
    want = int((d.get("spec") or {}).get("replicas", 1))
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new replicas have '
                "been updated..."), False
    if status.get("replicas", 0) > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {status["replicas"] - updated} old replicas '
                "are pending termination..."), False
    if status.get("availableReplicas", 0) < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {status.get("availableReplicas", 0)} of '
                f"{updated} updated replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def _replicasets(store: Store, d: dict[str, Any]) -> list[dict[str, Any]]:
    return [rs for rs in store.list("ReplicaSet", o.namespace(d)) if o.owned_by(rs, d)]


def _deployment(store: Store, namespace: str, name: str) -> dict[str, Any]:
    d = store.get("Deployment", namespace, name)
    if d is None:
        raise NotFound("Deployment", namespace, name)
    return d


def rollout_history(store: Store, namespace: str, name: str) -> list[tuple[int, str | None]]:
    """(revision, change-cause) per ReplicaSet, oldest revision first."""
    d = _deployment(store, namespace, name)
    out = [(revision(rs), o.annotations(rs).get(CHANGE_CAUSE)) for rs in _replicasets(store, d)]
    return sorted(r for r in out if r[0] > 0)


def undo(store: Store, namespace: str, name: str, to_revision: int = 0) -> str:
    """Roll back to `to_revision` (0: the previous revision); returns kubectl's message."""
    with store.transaction() as tx:
        d = _deployment(tx, namespace, name)
        if (d.get("spec") or {}).get("paused"):
            raise StoreError(f"you cannot rollback a paused deployment; resume it first with 'kubectl rollout "
                             f"resume deployment/{name}' and try again")
        rses = _replicasets(tx, d)
        target = None
        if to_revision > 0:
            target = next((rs for rs in rses if revision(rs) == to_revision), None)
            if target is None:
                raise StoreError(f"unable to find specified revision {to_revision} in history")
        else:
            ordered = sorted(rses, key=revision)
            if len(ordered) < 2:
                raise StoreError(f'no rollout history found for deployment "{name}"')
            target = ordered[-2]
        if templates_equal(target["spec"]["template"], d["spec"]["template"]):
            return (f"deployment.apps/{name} skipped rollback (current template already matches revision "
                    f"{revision(target)})")
        new = copy.deepcopy(d)
        new["spec"]["template"] = without_hash(target["spec"]["template"])
        skip = {REVISION, "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
                "deployment.kubernetes.io/max-replicas", "kubectl.kubernetes.io/last-applied-configuration"}
        ann = {k: v for k, v in o.annotations(d).items() if k in skip}
        ann.update({k: v for k, v in o.annotations(target).items() if k not in skip})
        new["metadata"]["annotations"] = ann
        tx.update(new)
    return f"deployment.apps/{name} rolled back"
