"""Objects netsim stores but does not emulate: every other built-in kind, CustomResourceDefinitions and the
custom objects they define.

The API server validates each kind against its own rules before storing it; netsim checks what every object
has (metadata: name, namespace, labels, annotations), the rules of the kinds other objects refer to
(ConfigMap and Secret keys and values, as pkg/apis/core/validation ValidateConfigMap / ValidateSecret do), and
CustomResourceDefinitions as apiextensions-apiserver's validation does (names, group, scope, versions), so
that the kinds they define can be accepted. Everything else in the object is kept as written.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.model import specfields as sf
from netsim.model.errors import Source, SpecError
from netsim.model.meta import DNS1123_LABEL, DNS1123_SUBDOMAIN, Fields, ObjectMeta, parse_metadata

# apimachinery IsConfigMapKey: `[-._a-zA-Z0-9]+`, at most 253 characters, not "." or "..".
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_CONFIG_SIZE = 1024 * 1024  # core.MaxSecretSize, also applied to ConfigMaps
# rbac validation ValidateRBACName is path.IsValidPathSegmentName: anything but "." / ".." and '/' or '%'.
PATH_SEGMENT_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
# Secret types with keys the API server requires (pkg/apis/core/validation ValidateSecret).
SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


@dataclass(frozen=True)
class StoredObject:
    """A stored, non-emulated object: its metadata checked, the rest kept as written."""

    kind: str
    api_version: str
    meta: ObjectMeta
    body: Mapping[str, Any] = field(default_factory=dict)  # every top-level field but apiVersion/kind/metadata
    verified: bool = True  # False: a kind nobody defines, stored as written (`apply --skip-unknown`)

    def to_dict(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(),
                **copy.deepcopy(dict(self.body))}


@dataclass(frozen=True)
class CustomKind:
    """A kind a CustomResourceDefinition defines."""

    kind: str
    group: str
    versions: tuple[str, ...]  # served versions
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{self.group}/{v}" for v in self.versions)


def _metadata(doc: Mapping[str, Any], source: Source, kind: str, namespaced: bool) -> ObjectMeta:
    return parse_metadata(doc, source=source, kind=kind, namespaced=namespaced,
                          path_segment_name=kind in PATH_SEGMENT_KINDS)


def _body(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}


def parse_stored(doc: Mapping[str, Any], source: Source, *, kind: str, namespaced: bool) -> StoredObject:
    """Any object netsim stores without emulating it; ConfigMaps, Secrets and CRDs get their own checks."""
    meta = _metadata(doc, source, kind, namespaced)
    root = Fields(doc, source=source, obj=f"{kind} {meta.key}")
    body = _body(doc)
    if kind == "ConfigMap":
        _check_config_map(root, body)
    elif kind == "Secret":
        body = _secret_body(root, body)
    elif kind == "CustomResourceDefinition":
        custom_kind(doc, source)  # raises when the definition is invalid
    return StoredObject(kind=kind, api_version=str(doc["apiVersion"]), meta=meta, body=body)


def _check_keys(root: Fields, section: str, data: Any, *, strings: bool) -> int:
    """Check one key/value section of a ConfigMap or Secret; return its size in bytes."""
    if data is None:
        return 0
    if not isinstance(data, Mapping):
        raise root.error(section, "must be a mapping of keys to values")
    size = 0
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 253 or key in (".", "..") or not CONFIG_KEY.match(key):
            raise root.error(f"{section}[{key}]", "a valid config key must consist of alphanumeric characters, "
                                                  "'-', '_' or '.' (at most 253 characters)")
        if not isinstance(value, str):
            raise root.error(f"{section}[{key}]", f"must be a string, got {type(value).__name__}")
        if not strings:
            try:
                size += len(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                raise root.error(f"{section}[{key}]", "illegal base64 data") from None
        else:
            size += len(value.encode())
    return size


def _check_config_map(root: Fields, body: Mapping[str, Any]) -> None:
    size = _check_keys(root, "data", body.get("data"), strings=True)
    size += _check_keys(root, "binaryData", body.get("binaryData"), strings=False)
    both = set(body.get("data") or {}) & set(body.get("binaryData") or {})
    if both:
        raise root.error(f"data[{sorted(both)[0]}]", "duplicate of key present in binaryData")
    if size > MAX_CONFIG_SIZE:
        raise root.error("data", f"too long: must have at most {MAX_CONFIG_SIZE} bytes")


def _secret_body(root: Fields, body: dict[str, Any]) -> dict[str, Any]:
    """Check a Secret and fold `stringData` into `data`, base64-encoded, as the API server does on write."""
    size = _check_keys(root, "data", body.get("data"), strings=False)
    size += _check_keys(root, "stringData", body.get("stringData"), strings=True)
    if size > MAX_CONFIG_SIZE:
        raise root.error("data", f"too long: must have at most {MAX_CONFIG_SIZE} bytes")
    kind_type = body.get("type", "Opaque")
    if not isinstance(kind_type, str) or not kind_type:
        raise root.error("type", "must be a non-empty string")
    data = dict(body.get("data") or {})
    for key, value in (body.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
    for key in SECRET_REQUIRED_KEYS.get(kind_type, ()):
        if key not in data:
            raise root.error(f"data[{key}]", f"is required for a Secret of type {kind_type}")
    if data:
        body["data"] = data
    body["type"] = kind_type
    return body


def custom_kind(doc: Mapping[str, Any], source: Source) -> CustomKind:
    """The kind a CustomResourceDefinition defines, validated as apiextensions-apiserver validates it
    (pkg/apis/apiextensions/validation: ValidateCustomResourceDefinition)."""
    meta = _metadata(doc, source, "CustomResourceDefinition", False)
    root = Fields(doc, source=source, obj=f"CustomResourceDefinition {meta.name}")
    spec = root.map("spec", required=True)
    group = spec.str("group", required=True)
    if len(group) > 253 or not DNS1123_SUBDOMAIN.match(group) or "." not in group:
        raise spec.error("group", f"{group!r} should be a domain with at least one dot")
    names = spec.map("names", required=True)
    plural = names.str("plural", required=True)
    kind = names.str("kind", required=True)
    singular = names.str("singular", kind.lower())
    for key, value in (("plural", plural), ("singular", singular)):
        if not DNS1123_LABEL.match(value):
            raise names.error(key, f"{value!r} must be a lowercase RFC 1123 label")
    if not re.match(r"^[A-Za-z][A-Za-z0-9]*$", kind):
        raise names.error("kind", f"{kind!r} must be an alphanumeric name starting with a letter")
    short = sf.str_list(names, "shortNames")
    if meta.name != f"{plural}.{group}":
        raise root.error("metadata.name", f'must be spec.names.plural+"."+spec.group ({plural}.{group})')
    scope = spec.str("scope", required=True)
    if scope not in ("Namespaced", "Cluster"):
        raise spec.error("scope", f"{scope!r}: supported values: \"Cluster\", \"Namespaced\"")
    raw_versions = spec.list("versions")
    if not raw_versions:
        raise spec.error("versions", "must have exactly one version marked as storage version")
    served, storage = [], 0
    for i, raw in enumerate(raw_versions):
        v = spec.sub(raw, f".versions[{i}]")
        name = v.str("name", required=True)
        if not DNS1123_LABEL.match(name):
            raise v.error("name", f"{name!r} must be a lowercase RFC 1123 label")
        if v.bool("served", False):
            served.append(name)
        storage += bool(v.bool("storage", False))
    if storage != 1:
        raise spec.error("versions", "must have exactly one version marked as storage version")
    return CustomKind(kind=kind, group=group, versions=tuple(served), plural=plural, singular=singular,
                      namespaced=scope == "Namespaced", short_names=short)


def custom_kinds_from(crds: list[Mapping[str, Any]]) -> dict[str, CustomKind]:
    """The kinds defined by stored CRD manifests (already validated when they were applied)."""
    out: dict[str, CustomKind] = {}
    for crd in crds:
        try:
            ck = custom_kind(crd, Source("<store>"))
        except SpecError:
            continue
        out[ck.kind] = ck
    return out
