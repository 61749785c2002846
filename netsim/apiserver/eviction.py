"""`pods/eviction` with PodDisruptionBudgets, as kube-apiserver's EvictionREST decides
(pkg/registry/core/pod/storage/eviction.go Create, checkAndDecrement, getPodDisruptionBudgets).

- a pod that is Succeeded, Failed, Pending or already being deleted is deleted without looking at
  budgets (canIgnorePDB);
- the budgets whose selector matches the pod: none, the pod is deleted; more than one, 500 ("This pod
  has more than one PodDisruptionBudget, which the eviction subresource does not support.");
- one: a pod that is not Ready goes without using the budget when its `unhealthyPodEvictionPolicy` is
  AlwaysAllow, or (IfHealthyBudget, the default) the budget is met (currentHealthy >= desiredHealthy > 0);
  otherwise the budget's status, as the disruption controller (controlplane/disruption.py) wrote it,
  must be current (observedGeneration, else 429 "still being processed") and allow a disruption (else
  429 TooManyRequests with a DisruptionBudget cause saying how many healthy pods it needs and has); then
  `disruptionsAllowed` is decremented and the pod is recorded in `status.disruptedPods` (the controller
  no longer counts it as healthy) in one status write guarded by the resourceVersion read, retried on a
  conflict, before the pod is deleted. `dryRun` checks everything and writes nothing.

The budgets are read typed (netsim.model.disruption, from the store's parse cache); a budget that does not
parse is not consulted (the parse cache logs it). The status write starts from the stored status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netsim.apiserver import errors
from netsim.controlplane import objects as o
from netsim.model.disruption import PodDisruptionBudget
from netsim.store import Conflict, Store, rfc3339

TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."
MAX_DISRUPTED_PODS = 2000  # eviction.go MaxDisruptedPodSize
RETRIES = 5


def _too_many(message: str, retry_after: int = 0) -> errors.ApiError:
    details: dict[str, Any] = {"causes": [{"reason": "DisruptionBudget", "message": message}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return errors.ApiError(429, "TooManyRequests", TOO_MANY, details)


def _decrement(store: Store, pdb: PodDisruptionBudget, pod_name: str, now: float, dry_run: bool) -> None:
    """checkAndDecrement against the budget as stored (re-read on every retry)."""
    name, ns = pdb.meta.name, pdb.meta.namespace
    for _ in range(RETRIES):
        st = pdb.status
        generation = pdb.meta.generation if pdb.meta.generation is not None else 1
        if (st.observed_generation or 0) < generation:
            raise _too_many(f"The disruption budget {name} is still being processed by the server.", 10)
        allowed = st.disruptions_allowed
        if allowed < 0:
            raise errors.ApiError(403, "Forbidden", f'poddisruptionbudgets.policy "{name}" is forbidden: '
                                  "pdb disruptions allowed is negative")
        if len(st.disrupted_pods) > MAX_DISRUPTED_PODS:
            raise errors.ApiError(403, "Forbidden", f'poddisruptionbudgets.policy "{name}" is forbidden: '
                                  "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
        if allowed == 0:
            raise _too_many(f"The disruption budget {name} needs {st.desired_healthy} healthy pods "
                            f"and has {st.current_healthy} currently")
        if dry_run:
            return
        # the write starts from the stored status (fields netsim does not model survive)
        new = dict(st.raw)
        new["disruptionsAllowed"] = allowed - 1
        if allowed - 1 == 0:
            new["conditions"] = [{**c, "status": "False", "reason": "InsufficientPods", "message": "",
                                  "lastTransitionTime": rfc3339(now)} if c.get("type") == "DisruptionAllowed" else c
                                 for c in new.get("conditions") or []]
        new["disruptedPods"] = {**st.disrupted_pods, pod_name: rfc3339(now)}
        try:
            store.update_status("PodDisruptionBudget", ns, name, new, expected_rv=pdb.meta.resource_version)
            return
        except Conflict:
            fresh = store.typed("PodDisruptionBudget", ns, name)
            if fresh is None:
                return
            pdb = fresh
    raise errors.conflict("poddisruptionbudgets", "policy", name,
                          "the object has been modified; please apply your changes to the latest version and try again")


def evict(store: Store, pod: dict[str, Any], now: float, dry_run: bool, delete: Callable[[], None]) -> None:
    """Decide on the eviction of `pod`; `delete` deletes it (as a DELETE with the Eviction's options)."""
    if o.phase(pod) in ("Succeeded", "Failed", "Pending") or o.is_terminating(pod):
        if not dry_run:
            delete()
        return
    labels = o.labels(pod)
    pdbs = [p for p in store.typed_list("PodDisruptionBudget", o.namespace(pod)) if p.selects(labels)]
    if len(pdbs) > 1:
        raise errors.internal("This pod has more than one PodDisruptionBudget, which the eviction subresource "
                              "does not support.")
    if pdbs:
        pdb = pdbs[0]
        st = pdb.status
        unready_ok = not o.is_ready(pod) and (
            pdb.eviction_policy == "AlwaysAllow" or st.current_healthy >= st.desired_healthy > 0)
        if not unready_ok:
            _decrement(store, pdb, o.name(pod), now, dry_run)
    if not dry_run:
        delete()
