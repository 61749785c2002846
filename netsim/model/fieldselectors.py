"""Field selectors as the API server supports them per kind (pure).

Every kind answers `metadata.name` and `metadata.namespace`; the extra fields are the ones each kind's
registry registers (kubernetes pkg/registry/*/strategy.go `...ToSelectableFields`, e.g. core/pod
PodToSelectableFields, core/node NodeToSelectableFields, core/secret, core/event, core/namespace,
apps/replicaset, batch/job). Operators: `=`, `==`, `!=`, joined by commas (apimachinery fields.ParseSelector).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _get(obj: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _pod_ips(obj: Mapping[str, Any]) -> str:
    return ",".join(ip.get("ip", "") for ip in (obj.get("status") or {}).get("podIPs") or [])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# kind -> extra selectable fields (beyond metadata.name / metadata.namespace), with their readers
_SELECTABLE: dict[str, dict[str, Any]] = {
    "Pod": {f: None for f in ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                              "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                              "status.nominatedNodeName")} | {"status.podIPs": _pod_ips},
    "Node": {"spec.unschedulable": None},
    "Secret": {"type": None},
    "Namespace": {"status.phase": None},
    "ReplicaSet": {"status.replicas": None},
    "ReplicationController": {"status.replicas": None},
    "Job": {"status.successful": None},
    "Service": {"spec.clusterIP": None, "spec.type": None},
    "Event": {f: None for f in ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                                "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                                "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")},
    "CertificateSigningRequest": {"spec.signerName": None},
}
_DEFAULTS = {("Pod", "spec.hostNetwork"): "false", ("Node", "spec.unschedulable"): "false"}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str


def parse_field_selector(text: str, kind: str) -> tuple[FieldRequirement, ...]:
    """Parse `--field-selector` for `kind`; ValueError with the API server's words for a field it does not
    support."""
    out: list[FieldRequirement] = []
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        op = next((o for o in ("!=", "==", "=") if o in term), None)
        if op is None:
            raise ValueError(f"invalid selector: {term!r}; can't understand it (use field=value or field!=value)")
        field, value = (x.strip() for x in term.split(op, 1))
        equal = op != "!="
        allowed = ["metadata.name", "metadata.namespace", *_SELECTABLE.get(kind, {})]
        if field not in allowed:
            raise ValueError(f'"{field}" is not a known field selector: only '
                             + ", ".join(f'"{a}"' for a in allowed))
        out.append(FieldRequirement(field, equal, value))
    return tuple(out)


def field_value(obj: Mapping[str, Any], kind: str, field: str) -> str:
    reader = _SELECTABLE.get(kind, {}).get(field)
    value = reader(obj) if reader else _get(obj, field)
    if value is None and (kind, field) in _DEFAULTS:
        return _DEFAULTS[(kind, field)]
    return _text(value)


def matches(obj: Mapping[str, Any], kind: str, reqs: tuple[FieldRequirement, ...]) -> bool:
    return all((field_value(obj, kind, r.field) == r.value) == r.equal for r in reqs)
