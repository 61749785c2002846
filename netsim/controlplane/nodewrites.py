"""Writes to Node objects from outside the daemon: what `kubectl cordon|uncordon|taint|label|annotate node`
change, and nothing else.

netsim makes nodes from the Cluster spec (a Node is never created or replaced by `apply`), but the
scheduler reads a Node's labels, taints and `spec.unschedulable` from its object, as kube-scheduler
does, so those may change. Taints are checked as the API server checks them (k8s pkg/apis/core/validation
validateNodeTaints: a qualified key, a label-shaped value, effect NoSchedule | PreferNoSchedule |
NoExecute, no duplicate key+effect); every other change of a Node's spec is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netsim.model.errors import Source, SpecError
from netsim.model.selectors import label_key_problem, label_value_problem, validate_labels

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MUTABLE_SPEC = frozenset({"unschedulable", "taints"})


def check_node_update(current: Mapping[str, Any], new: Mapping[str, Any], source: str = "<api>") -> None:
    """Raise SpecError naming the field unless `new` differs from `current` only where kubectl's node
    verbs write."""
    name = (current.get("metadata") or {}).get("name", "")
    src, obj = Source(source), f"Node {name}"
    md = new.get("metadata") or {}
    validate_labels(md.get("labels"), source=src, obj=obj, path="metadata.labels")
    spec, old = dict(new.get("spec") or {}), dict(current.get("spec") or {})
    for key in set(spec) | set(old):
        if key not in MUTABLE_SPEC and spec.get(key) != old.get(key):
            raise SpecError("may not be changed: netsim's nodes come from the Cluster spec (labels, annotations, "
                            "taints and spec.unschedulable may change)", source=src, obj=obj, field=f"spec.{key}")
    if "unschedulable" in spec and not isinstance(spec["unschedulable"], bool):
        raise SpecError("must be a boolean", source=src, obj=obj, field="spec.unschedulable")
    seen = set()
    for i, t in enumerate(spec.get("taints") or []):
        field = f"spec.taints[{i}]"
        if not isinstance(t, Mapping):
            raise SpecError("must be an object with key and effect", source=src, obj=obj, field=field)
        problem = label_key_problem(t.get("key") or "")
        if problem:
            raise SpecError(problem, source=src, obj=obj, field=f"{field}.key")
        if t.get("value") not in (None, "") and label_value_problem(t["value"]):
            raise SpecError(label_value_problem(t["value"]) or "", source=src, obj=obj, field=f"{field}.value")
        if t.get("effect") not in EFFECTS:
            raise SpecError(f'Unsupported value: "{t.get("effect")}": supported values: "NoSchedule", '
                            '"PreferNoSchedule", "NoExecute"', source=src, obj=obj, field=f"{field}.effect")
        if (t["key"], t["effect"]) in seen:
            raise SpecError(f"taints must be unique by key and effect pair ({t['key']}:{t['effect']})", source=src,
                            obj=obj, field=field)
        seen.add((t["key"], t["effect"]))
