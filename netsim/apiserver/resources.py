"""The resources the API serves: every built-in kind (model/builtin_kinds.py) and every kind a stored
CustomResourceDefinition defines, with the names, verbs and subresources discovery announces.

Verbs are the generic registry's (k8s.io/apiserver pkg/endpoints/installer.go: a store that can be listed,
watched, created... gets those verbs); request-only kinds (reviews) only take `create`. Subresources are the
ones kube-apiserver installs for these kinds that netsim serves: `status` for kinds with a status,
`scale` for Deployment/ReplicaSet/StatefulSet (pkg/registry/apps/*/storage), and for pods `log`, `exec`,
`attach`, `portforward` and `eviction` (pkg/registry/core/pod/storage).
The `all` category is kubectl's `get all` set (pkg/registry/*/storage CategoriesProvider).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.model.builtin_kinds import BUILTIN_KINDS
from netsim.model.generic import CustomKind

STORED_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
REQUEST_VERBS = ("create",)
ALL_CATEGORY = frozenset({"Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                          "CronJob", "ReplicationController", "HorizontalPodAutoscaler"})
SCALABLE = frozenset({"Deployment", "ReplicaSet", "StatefulSet"})
# Kinds without a status subresource in kube-apiserver (no status in their type).
NO_STATUS = frozenset({"ConfigMap", "Secret", "ServiceAccount", "Endpoints", "Event", "LimitRange", "PodTemplate",
                       "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                       "StorageClass", "IngressClass", "RuntimeClass", "Lease", "EndpointSlice",
                       "ControllerRevision", "CSIDriver", "CSINode", "CSIStorageCapacity", "MutatingWebhookConfiguration",
                       "ValidatingWebhookConfiguration", "DeviceClass", "ResourceClaimTemplate", "ResourceSlice",
                       "VolumeAttributesClass", "IPAddress", "NetworkPolicy"})


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str
    version: str
    plural: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    preferred: bool = True  # the group's preferred version
    custom: bool = False
    storage_kind: str = field(default="", compare=False)  # the kind objects are stored under

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def stored_kind(self) -> str:
        return self.storage_kind or self.kind


def _builtin_resources() -> list[Resource]:
    out = []
    for b in BUILTIN_KINDS:
        verbs = STORED_VERBS if b.storable else REQUEST_VERBS
        subs: list[str] = []
        if b.storable and b.kind not in NO_STATUS:
            subs.append("status")
        if b.kind in SCALABLE:
            subs.append("scale")
        if b.kind == "Pod":
            subs += ["log", "exec", "attach", "portforward", "eviction"]
        for i, v in enumerate(b.versions):
            out.append(Resource(b.kind, b.group, v, b.plural, b.kind.lower(), b.namespaced, verbs, b.short_names,
                                ("all",) if b.kind in ALL_CATEGORY else (), tuple(subs), preferred=i == 0))
    # events.k8s.io/v1 serves the core Event resource under another group: the same stored objects.
    out.append(Resource("Event", "events.k8s.io", "v1", "events", "event", True, STORED_VERBS, ("ev",),
                        storage_kind="Event"))
    # Knative Serving's Service (netsim.model.knative), stored as KnativeService: served at its own group's
    # path, as Knative's CRD services.serving.knative.dev makes kube-apiserver serve it.
    out.append(Resource("Service", "serving.knative.dev", "v1", "services", "service", True, STORED_VERBS,
                        ("kservice", "ksvc"), ("all", "knative", "serving"), ("status",),
                        storage_kind="KnativeService"))
    return out


BUILTIN_RESOURCES: tuple[Resource, ...] = tuple(_builtin_resources())


def custom_resources(kinds: Iterable[CustomKind]) -> list[Resource]:
    out = []
    for ck in kinds:
        for i, v in enumerate(ck.versions):
            out.append(Resource(ck.kind, ck.group, v, ck.plural, ck.singular, ck.namespaced, STORED_VERBS,
                                ck.short_names, (), ("status",), preferred=i == 0, custom=True))
    return out


class Catalog:
    """Every served resource, looked up by (group, version, plural)."""

    def __init__(self, custom: Mapping[str, CustomKind] | None = None):
        self.resources: list[Resource] = [*BUILTIN_RESOURCES, *custom_resources((custom or {}).values())]
        self._by_path = {(r.group, r.version, r.plural): r for r in self.resources}

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def group_versions(self) -> dict[str, list[str]]:
        """group -> its versions, preferred first (the core group is "")."""
        out: dict[str, list[str]] = {}
        for r in self.resources:
            vs = out.setdefault(r.group, [])
            if r.version not in vs:
                if r.preferred:
                    vs.insert(0, r.version)
                else:
                    vs.append(r.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]

    def for_kind(self, kind: str, api_version: str) -> Resource | None:
        for r in self.resources:
            if r.kind == kind and r.group_version == api_version:
                return r
        return None


def api_version_of(res: Resource) -> dict[str, Any]:
    return {"apiVersion": res.group_version, "kind": res.kind}
