"""What the controllers ask of a typed Pod (netsim.model.pod.Pod, decoded once per resourceVersion by the
store's parse cache): the typed twins of objects.py's dict readers, with the same meanings.

- active: controller.FilterActivePods (pkg/controller/controller_utils.go IsPodActive): not Succeeded or
  Failed, and no deletionTimestamp;
- ready / available: podutil.IsPodReady and IsPodAvailable (pkg/api/v1/pod/util.go): the Ready condition is
  True, and for available has been for minReadySeconds, counted from its lastTransitionTime;
- deletion_rank: the order ReplicaSet scale-down deletes in (controller.ActivePods' Less: unscheduled before
  scheduled, Pending < Unknown < Running, not ready before ready, newer before older).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netsim.store import parse_time

if TYPE_CHECKING:  # for typing only: `netsim apply` of a slice imports this module, not the Pod model
    from netsim.model.pod import Pod

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def phase(pod: Pod) -> str:
    return pod.status.phase or "Pending"


def terminating(obj: Any) -> bool:
    return bool(obj.meta.deletion_timestamp)


def terminal(pod: Pod) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def active(pod: Pod) -> bool:
    return not terminal(pod) and not terminating(pod)


def ready(pod: Pod) -> bool:
    return pod.status.ready


def available(pod: Pod, min_ready_seconds: int, now: float) -> bool:
    if not pod.status.ready:
        return False
    if min_ready_seconds <= 0:
        return True
    cond = pod.status.condition("Ready")
    since = parse_time(cond.last_transition_time if cond else None) or now
    return now - since >= min_ready_seconds


def controller_ref(obj: Any) -> dict[str, Any] | None:
    return next((r for r in obj.meta.owner_references if isinstance(r, dict) and r.get("controller")), None)


def created(obj: Any) -> float:
    return parse_time(obj.meta.creation_timestamp) or 0.0


def creation_order(obj: Any) -> tuple[float, int, str]:
    """Oldest first; the resourceVersion of creation breaks ties within one second (objects.creation_order)."""
    return created(obj), obj.meta.resource_version or 0, obj.meta.name


def deletion_rank(pod: Pod) -> tuple:
    """Sort key: the pod to delete first sorts first (objects-level twin: replicaset.deletion_rank)."""
    t, rv, name = creation_order(pod)
    return (pod.spec.node_name is not None, _PHASE_RANK.get(phase(pod), 3), ready(pod), -t, -rv, name)


def ref(obj: Any) -> str:
    """`Kind ns/name` of a typed object, as events and errors name objects (objects.ref's typed twin)."""
    return f"{obj.kind} {obj.meta.key}"


def key(obj: Any) -> tuple[str, str]:
    """The work queue's key of a typed object: (namespace, or "default", name)."""
    return obj.meta.namespace or "default", obj.meta.name


def generation(obj: Any) -> int:
    """metadata.generation as observedGeneration reports it (1 when the store set none)."""
    return obj.meta.generation if obj.meta.generation is not None else 1


def owner_reference(owner: Any) -> dict[str, Any]:
    """The controller ownerReference naming a typed owner (objects.owner_reference's typed twin): what an
    adopted or created dependent carries, so it is a dict, at the write edge."""
    return {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.meta.name, "uid": owner.meta.uid,
            "controller": True, "blockOwnerDeletion": True}
