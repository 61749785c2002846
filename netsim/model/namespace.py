"""Namespace (core/v1): cluster-scoped, a DNS-1123 label name, and the kubernetes.io/metadata.name label.

SetDefaults_Namespace (kubernetes pkg/apis/core/v1/defaults.go) sets that label to the name on every
namespace, which is what lets NetworkPolicy namespaceSelectors pick a namespace by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.meta import DNS1123_LABEL, ObjectMeta

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Namespace:
    kind: ClassVar[str] = "Namespace"
    api_version: ClassVar[str] = "v1"
    meta: ObjectMeta
    finalizers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict()}
        if self.finalizers:
            out["spec"] = {"finalizers": list(self.finalizers)}
        return out


def parse_namespace(doc: Any, source: Source) -> Namespace:
    meta, root = sf.object_fields(doc, source, "Namespace", namespaced=False)
    if len(meta.name) > 63 or not DNS1123_LABEL.match(meta.name):
        raise root.error("metadata.name", f"{meta.name!r} must be a lowercase RFC 1123 label (at most 63)")
    spec = root.map("spec")
    finalizers: tuple[str, ...] = ()
    if spec is not None:
        sf.check_fields(spec, {"finalizers"})
        finalizers = sf.str_list(spec, "finalizers")
    labels = dict(meta.labels)
    labels[NAME_LABEL] = meta.name
    return Namespace(meta=replace(meta, labels=labels), finalizers=finalizers)
