"""Field-level OpenAPI schemas of the built-in kinds, for `kubectl explain KIND.FIELD.FIELD...`.

netsim keeps no copy of upstream's OpenAPI documents. What describes the built-in types field by field
on this machine is the official Python client (`kubernetes` on PyPI, generated from those documents):
each model class names its fields and their types (`openapi_types`, `attribute_map`), and in recent
releases carries each field's description and whether it is required (pydantic `model_fields`). This
module reads that metadata when the package is installed and builds OpenAPI v3 component schemas from
it, named as kube-apiserver names them (`io.k8s.api.<group>.<version>.<Type>`; kubectl explain shows the
last segment as the type). Without the package the documents keep their top-level sketch.

kubectl explain (k8s.io/kubectl pkg/explain/v2, templates/plaintext.tmpl) finds the kind's schema by
`x-kubernetes-group-version-kind` and walks `properties`, following `$ref` and `allOf: [{$ref}]`,
`items` for lists and `additionalProperties` for maps; each field's description sits beside its
`allOf` reference, as kube-openapi writes it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_VERSIONED = re.compile(r"^(?:([A-Z][a-z0-9]*?))?(V\d+(?:alpha\d+|beta\d+)?)([A-Z].*)$")
_LIST = re.compile(r"^(?:List|list)\[(.*)\]$")
_DICT = re.compile(r"^(?:Dict\[str, ?|dict\(str, ?)(.*)[\])]$")
PRIMITIVES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "format": "int64"}, "float": {"type": "number", "format": "double"},
    "str": {"type": "string"}, "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"}, "date": {"type": "string", "format": "date"},
    "bytearray": {"type": "string", "format": "byte"}, "object": {"type": "object"},
}
# Types whose JSON form is not an object although the client models them as one (kube-openapi's
# OpenAPIDefinition overrides: IntOrString, Quantity, Time...).
SPECIAL = {"IntOrString": {"type": "string", "format": "int-or-string"},
           "Quantity": {"type": "string"}, "MicroTime": {"type": "string", "format": "date-time"}}


def _models() -> Any:
    try:
        import kubernetes.client.models as models
    except ImportError:
        return None
    return models


@functools.lru_cache(maxsize=1)
def source_version() -> str:
    """What the schemas are read from: the client's version, or "" (top-level sketches only)."""
    from importlib.metadata import PackageNotFoundError, version
    try:  # without importing the models (a second): the index is asked for often
        return f"kubernetes {version('kubernetes')}"
    except PackageNotFoundError:
        return ""


def class_for(kind: str, group: str, version: str) -> str | None:
    """The client's model class of a kind (V1Deployment, V2HorizontalPodAutoscaler, CoreV1Event...)."""
    m = _models()
    if m is None:
        return None
    ver = version[:1].upper() + version[1:]
    prefix = (group.split(".")[0] or "core").title()
    for name in (f"{ver}{kind}", f"{prefix}{ver}{kind}", f"Core{ver}{kind}"):
        if hasattr(m, name) and hasattr(getattr(m, name), "openapi_types"):
            return name
    return None


def schema_name(cls_name: str, group: str = "") -> str:
    """io.k8s.api.<group>.<version>.<Type>: the group is known for the kinds themselves; nested types are
    named under the group of the kind that first reached them."""
    m = _VERSIONED.match(cls_name)
    if m is None:
        return f"io.k8s.api.{group or 'core'}.{cls_name}"
    version, typ = m.group(2).lower(), m.group(3)
    return f"io.k8s.api.{group or 'core'}.{version}.{typ}"


def _field_schema(typ: str, group: str, out: dict[str, dict[str, Any]]) -> dict[str, Any]:
    typ = typ.strip()
    if typ in PRIMITIVES:
        return dict(PRIMITIVES[typ])
    if (lm := _LIST.match(typ)) is not None:
        return {"type": "array", "items": _field_schema(lm.group(1), group, out)}
    if (dm := _DICT.match(typ)) is not None:
        return {"type": "object", "additionalProperties": _field_schema(dm.group(1), group, out)}
    return {"$ref": f"#/components/schemas/{_type(typ, group, out)}"}


def _type(cls_name: str, group: str, out: dict[str, dict[str, Any]]) -> str:
    """Add the schema of model class `cls_name` (and of everything it reaches) to `out`; its name."""
    m = _models()
    short = (_VERSIONED.match(cls_name) or re.match(r"()()(.*)", cls_name)).group(3)  # type: ignore[union-attr]
    name = schema_name(cls_name, group)
    if name in out:
        return name
    cls = getattr(m, cls_name, None) if m is not None else None
    if short in SPECIAL or cls is None or not hasattr(cls, "openapi_types"):
        out[name] = dict(SPECIAL.get(short, {"type": "object"}))
        return name
    doc = " ".join((cls.__doc__ or "").split("Attributes:")[0].split())
    schema: dict[str, Any] = {"type": "object", "description": doc, "properties": {}}
    out[name] = schema
    fields = getattr(cls, "model_fields", {}) or {}
    required = []
    for py, typ in cls.openapi_types.items():
        json_name = cls.attribute_map.get(py, py)
        prop = _field_schema(typ, group, out)
        info = fields.get(py)
        desc = (getattr(info, "description", None) or "") if info is not None else ""
        if "$ref" in prop:
            prop = {"allOf": [prop], **({"description": desc} if desc else {})}
        elif desc:
            prop["description"] = desc
        if info is not None and getattr(info, "is_required", lambda: False)():
            required.append(json_name)
        schema["properties"][json_name] = prop
    if required:
        schema["required"] = sorted(required)
    return name


@functools.lru_cache(maxsize=256)
def kind_schemas(kind: str, group: str, version: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """(the kind's schema name, every schema it reaches) or None when the client does not know it."""
    cls = class_for(kind, group, version)
    if cls is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    name = _type(cls, group, out)
    out[name] = {**out[name], "x-kubernetes-group-version-kind": [{"group": group, "version": version,
                                                                   "kind": kind}]}
    return name, out
