"""Object metadata and field readers shared by every manifest kind.

`Fields` wraps one mapping of a document with its location, so every reader names the file, the object
and the dotted field path in its error without the caller repeating them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.model.errors import Source, SpecError
from netsim.model.limits import annotations_problem
from netsim.model.selectors import validate_labels

# RFC 1123 label (namespaces, service names) and subdomain (most object names), as apimachinery validates.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str | None = None  # None for cluster-scoped kinds
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    uid: str | None = None
    resource_version: int | None = None
    generation: int | None = None
    owner_references: tuple[dict, ...] = ()
    creation_timestamp: str | None = None
    # Set by the API server when a graceful deletion starts (the kubelet or a finalizer finishes it);
    # controllers stop counting such objects as active (controller.FilterActivePods).
    deletion_timestamp: str | None = None

    @property
    def key(self) -> str:
        """`ns/name` for namespaced objects, `name` otherwise."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.uid:
            out["uid"] = self.uid
        if self.resource_version is not None:
            out["resourceVersion"] = str(self.resource_version)
        if self.generation is not None:
            out["generation"] = self.generation
        if self.owner_references:
            out["ownerReferences"] = [dict(o) for o in self.owner_references]
        if self.creation_timestamp:
            out["creationTimestamp"] = self.creation_timestamp
        if self.deletion_timestamp:
            out["deletionTimestamp"] = self.deletion_timestamp
        return out


class Fields:
    """Typed reads from one mapping, with errors that say where."""

    def __init__(self, data: Any, *, source: Source, obj: str, path: str = ""):
        if not isinstance(data, Mapping):
            raise SpecError("must be a mapping", source=source, obj=obj, field=path or None)
        self.data = data
        self.source = source
        self.obj = obj
        self.path = path

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, message: str) -> SpecError:
        return SpecError(message, source=self.source, obj=self.obj,
                         field=(self._p(key) if key else self.path) or None)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        v = self.data.get(key)
        return default if v is None else v

    def str(self, key: str, default: str | None = None, *, required: bool = False,
            choices: tuple[str, ...] | None = None) -> str | None:
        v = self.data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return default
        if not isinstance(v, str):
            raise self.error(key, f"must be a string, got {type(v).__name__} {v!r}")
        if choices and v not in choices:
            raise self.error(key, f"{v!r} is not one of {', '.join(choices)}")
        return v

    def int(self, key: str, default: int | None = None, *, required: bool = False, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
        v = self.data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"must be an integer, got {type(v).__name__} {v!r}")
        if minimum is not None and v < minimum:
            raise self.error(key, f"must be at least {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise self.error(key, f"must be at most {maximum}, got {v}")
        return v

    def bool(self, key: str, default: bool | None = None) -> bool | None:
        v = self.data.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def list(self, key: str, *, required: bool = False) -> list:
        v = self.data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return []
        if not isinstance(v, list):
            raise self.error(key, f"must be a list, got {type(v).__name__}")
        return v

    def map(self, key: str, *, required: bool = False) -> Fields | None:
        v = self.data.get(key)
        if v is None:
            if required:
                raise self.error(key, "is required")
            return None
        return Fields(v, source=self.source, obj=self.obj, path=self._p(key))

    def sub(self, value: Any, path_suffix: str) -> Fields:
        """Fields over a nested value (e.g. a list item) with `path_suffix` appended to the path."""
        return Fields(value, source=self.source, obj=self.obj, path=f"{self.path}{path_suffix}")

    def reject_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise self.error(unknown[0], f"unknown field {unknown[0]!r}")


def checked_annotations(f: Fields, key: str) -> dict[str, str]:
    """An annotations map as apimachinery ValidateAnnotations checks it: string keys (qualified names)
    and values, at most 256 KiB in total (netsim.model.limits)."""
    annotations = f.get(key, {})
    if not isinstance(annotations, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise f.error(key, "must be a mapping of strings to strings")
    problem = annotations_problem(dict(annotations))
    if problem:
        bad_key, why = problem
        raise f.error(f"{key}.{bad_key}" if bad_key else key, why)
    return dict(annotations)


def parse_metadata(doc: Mapping[str, Any], *, source: Source, kind: str, namespaced: bool,
                   default_namespace: str = "default", path_segment_name: bool = False) -> ObjectMeta:
    """Read `metadata` of a document: name (DNS-1123 subdomain, or for `path_segment_name` kinds such as
    RBAC's any path segment), namespace (label), labels, annotations."""
    md = doc.get("metadata")
    raw_name = md.get("name") if isinstance(md, Mapping) else None
    raw_ns = md.get("namespace") if isinstance(md, Mapping) else None
    if not isinstance(raw_ns, str):
        raw_ns = default_namespace
    if not isinstance(raw_name, str):
        obj = kind
    else:
        obj = f"{kind} {raw_ns}/{raw_name}" if namespaced else f"{kind} {raw_name}"
    f = Fields(md if md is not None else {}, source=source, obj=obj, path="metadata")
    name = f.str("name", required=True)
    if path_segment_name:
        if name in (".", "..") or "/" in name or "%" in name or not name:
            raise f.error("name", f"{name!r} may not be '.' or '..' and may not contain '/' or '%'")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        raise f.error("name", f"{name!r} must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')")
    namespace = None
    if namespaced:
        namespace = f.str("namespace", default_namespace)
        if len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
            raise f.error("namespace", f"{namespace!r} must be a lowercase RFC 1123 label")
    labels = validate_labels(f.get("labels"), source=source, obj=obj, path="metadata.labels")
    annotations = checked_annotations(f, "annotations")
    rv = f.get("resourceVersion")
    return ObjectMeta(
        name=name,
        namespace=namespace,
        labels=labels,
        annotations=annotations,
        uid=f.str("uid"),
        resource_version=int(rv) if isinstance(rv, (int, str)) and str(rv).isdigit() else None,
        generation=f.int("generation"),
        owner_references=tuple(f.list("ownerReferences")),
        creation_timestamp=f.str("creationTimestamp"),
        deletion_timestamp=md.get("deletionTimestamp") if isinstance(md, Mapping) and isinstance(
            md.get("deletionTimestamp"), str) else None,
    )


def object_name(kind: str, meta: ObjectMeta) -> str:
    """How errors and events name an object: `Kind ns/name`."""
    return f"{kind} {meta.key}"
