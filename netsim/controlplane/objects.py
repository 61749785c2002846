"""Small readers and builders over manifest dicts, shared by the scheduler and the controllers.

Controllers work on the dicts the store holds (not the typed model) because they read and write `status`,
ownerReferences and server metadata, which the model does not carry. Helpers here say what Kubernetes means
by "active", "ready", "owned", and how it names generated objects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from netsim.model.errors import Source
from netsim.model.selectors import LabelSelector, parse_selector
from netsim.store import parse_time, rfc3339

if TYPE_CHECKING:
    import random

# apimachinery pkg/util/rand: the alphabet without vowels (no words) and without 0, 1, 3 (look-alikes).
ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
# apiserver storage names.SimpleNameGenerator: generateName + 5 random characters, base cut to 58.
_MAX_GENERATED_BASE = 63 - 5


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def name(obj: Mapping[str, Any]) -> str:
    return meta(obj)["name"]


def namespace(obj: Mapping[str, Any]) -> str | None:
    return meta(obj).get("namespace")


def uid(obj: Mapping[str, Any]) -> str | None:
    return meta(obj).get("uid")


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return meta(obj).get("labels") or {}


def annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return meta(obj).get("annotations") or {}


def key(obj: Mapping[str, Any]) -> str:
    ns = namespace(obj)
    return f"{ns}/{name(obj)}" if ns else name(obj)


def ref(obj: Mapping[str, Any]) -> str:
    """`Kind ns/name`, as events and errors name objects."""
    return f"{obj['kind']} {key(obj)}"


def created(obj: Mapping[str, Any]) -> float:
    return parse_time(meta(obj).get("creationTimestamp")) or 0.0


def creation_order(obj: Mapping[str, Any]) -> tuple[float, int, str]:
    """Oldest first; the resourceVersion of creation breaks ties within one second."""
    return created(obj), int(meta(obj).get("resourceVersion") or 0), name(obj)


def selector_of(obj: Mapping[str, Any]) -> LabelSelector:
    return parse_selector((obj.get("spec") or {}).get("selector"), source=Source("<store>"), obj=ref(obj),
                          path="spec.selector")


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    return next((o for o in meta(obj).get("ownerReferences") or [] if o.get("controller")), None)


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref_ = controller_ref(obj)
    return ref_ is not None and ref_.get("uid") == uid(owner)


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner["kind"], "name": name(owner),
            "uid": uid(owner), "controller": True, "blockOwnerDeletion": True}


def generate_name(base: str, rng: random.Random, taken: Iterable[str] = ()) -> str:
    """`<base><5 random chars>` (base usually ends in '-'), avoiding names in `taken`."""
    base = base[:_MAX_GENERATED_BASE]
    taken = set(taken)
    while True:
        candidate = base + "".join(rng.choice(ALPHANUMS) for _ in range(5))
        if candidate not in taken:
            return candidate


# -- pods ---------------------------------------------------------------------------------------------

def phase(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_active(pod: Mapping[str, Any]) -> bool:
    """controller.FilterActivePods: not finished and not being deleted."""
    return not is_terminal(pod) and not is_terminating(pod)


def condition(obj: Mapping[str, Any], typ: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == typ), None)


def is_ready(pod: Mapping[str, Any]) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """podutil.IsPodAvailable: ready, and for at least minReadySeconds."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(condition(pod, "Ready").get("lastTransitionTime")) or now
    return now - since >= min_ready_seconds


def node_name(pod: Mapping[str, Any]) -> str | None:
    return (pod.get("spec") or {}).get("nodeName")


def set_condition(status: dict[str, Any], typ: str, value: str, now: float, reason: str | None = None,
                  message: str | None = None) -> bool:
    """Set a condition in a status dict; lastTransitionTime moves only when the status flips. Returns
    whether anything changed."""
    conds = status.setdefault("conditions", [])
    cur = next((c for c in conds if c.get("type") == typ), None)
    new = {"type": typ, "status": value}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    if cur is not None:
        same = cur.get("status") == value
        new["lastTransitionTime"] = cur.get("lastTransitionTime") if same else rfc3339(now)
        if "lastUpdateTime" in cur:
            new["lastUpdateTime"] = cur["lastUpdateTime"]
        if all(cur.get(k) == new.get(k) for k in ("status", "reason", "message")):
            return False
        new["lastUpdateTime"] = rfc3339(now)
        conds[conds.index(cur)] = new
        return True
    new["lastTransitionTime"] = rfc3339(now)
    new["lastUpdateTime"] = rfc3339(now)
    conds.append(new)
    return True


def pod_from_template(template: Mapping[str, Any], *, pod_name: str, namespace_: str | None,
                      owner: Mapping[str, Any], extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Pod built from a workload's spec.template (controller.GetPodFromTemplate)."""
    tmd = template.get("metadata") or {}
    md: dict[str, Any] = {"name": pod_name, "namespace": namespace_,
                          "labels": {**(tmd.get("labels") or {}), **(extra_labels or {})},
                          "ownerReferences": [owner_reference(owner)]}
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": copy.deepcopy(template.get("spec") or {}),
            "status": {"phase": "Pending"}}


def int_or_percent(value: int | str | None, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    pct = int(str(value).rstrip("%"))
    scaled = pct * total
    return -(-scaled // 100) if round_up else scaled // 100
