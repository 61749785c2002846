"""Which kinds netsim understands: apiVersions accepted, parser, scope, and kubectl's names for them.

Parsers take `(doc, source)` and return a frozen typed object with `kind`, `api_version`, `meta` and
`to_dict()`. NetworkPolicy's parser lives in netsim.model.networkpolicy and is imported on first use.
Aliases follow kubectl's resource names and short names (`kubectl api-resources`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netsim.model.builtin_kinds import BUILTIN_KINDS, builtin, served_api_versions
from netsim.model.errors import Source


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_versions: tuple[str, ...]
    namespaced: bool
    module: str  # where the parser lives, imported lazily so optional modules may be absent
    parser_name: str
    plural: str
    short_names: tuple[str, ...] = ()
    # False: typed (parsed, validated, decoded by the store's parse cache) but not acted on by netsim
    emulated: bool = True

    @property
    def parser(self) -> Callable[[Mapping[str, Any], Source], Any]:
        return getattr(importlib.import_module(self.module), self.parser_name)


KINDS: dict[str, KindInfo] = {k.kind: k for k in (
    KindInfo("Namespace", ("v1",), False, "netsim.model.namespace", "parse_namespace", "namespaces", ("ns",)),
    KindInfo("Pod", ("v1",), True, "netsim.model.pod", "parse_pod", "pods", ("po",)),
    KindInfo("Service", ("v1",), True, "netsim.model.service", "parse_service", "services", ("svc",)),
    KindInfo("Deployment", ("apps/v1",), True, "netsim.model.workloads", "parse_deployment", "deployments",
             ("deploy",)),
    KindInfo("ReplicaSet", ("apps/v1",), True, "netsim.model.workloads", "parse_replicaset", "replicasets",
             ("rs",)),
    KindInfo("DaemonSet", ("apps/v1",), True, "netsim.model.workloads", "parse_daemonset", "daemonsets",
             ("ds",)),
    KindInfo("StatefulSet", ("apps/v1",), True, "netsim.model.workloads", "parse_statefulset", "statefulsets",
             ("sts",)),
    KindInfo("Job", ("batch/v1",), True, "netsim.model.batch", "parse_job", "jobs"),
    KindInfo("CronJob", ("batch/v1",), True, "netsim.model.batch", "parse_cronjob", "cronjobs", ("cj",)),
    KindInfo("EndpointSlice", ("discovery.k8s.io/v1",), True, "netsim.model.endpointslice",
             "parse_endpointslice", "endpointslices", ("eps",)),
    KindInfo("NetworkPolicy", ("networking.k8s.io/v1",), True, "netsim.model.networkpolicy",
             "parse_networkpolicy", "networkpolicies", ("netpol",)),
    KindInfo("HorizontalPodAutoscaler", ("autoscaling/v2", "autoscaling/v1"), True, "netsim.model.hpa",
             "parse_hpa", "horizontalpodautoscalers", ("hpa",)),
    # Knative Serving's Service, stored under a kind of its own (it shares its manifest kind with the core
    # Service, and the store keys objects by kind): netsim.model.knative.
    KindInfo("KnativeService", ("serving.knative.dev/v1",), True, "netsim.model.knative", "parse_knative_service",
             "kservices", ("ksvc",)),
    # Typed for the disruption controller and the eviction API (netsim.controlplane.disruption,
    # netsim.apiserver.eviction), which keep its status and honour it; `apply` still notes it as stored-only
    # (its contract since before the typed model: netsim does not emulate the rest of what policy/v1 implies).
    KindInfo("PodDisruptionBudget", ("policy/v1",), True, "netsim.model.disruption", "parse_pdb",
             "poddisruptionbudgets", ("pdb",), emulated=False),
    # Typed for the disruption controller's expected scale; netsim runs no ReplicationController controller.
    KindInfo("ReplicationController", ("v1",), True, "netsim.model.replicationcontroller",
             "parse_replicationcontroller", "replicationcontrollers", ("rc",), emulated=False),
)}

# Manifest kinds served under a stored kind of another name: (apiVersion, kind) -> stored kind.
STORED_AS: dict[tuple[str, str], str] = {("serving.knative.dev/v1", "Service"): "KnativeService"}

_ALIASES: dict[str, str] = {}
for _info in KINDS.values():
    for _name in (_info.kind, _info.plural, _info.plural.removesuffix("s"), *_info.short_names):
        _ALIASES[_name.lower()] = _info.kind
# kubectl also answers to these: `ep`/`endpoints` name the older Endpoints view of the same data.
_ALIASES.update({"ep": "EndpointSlice", "endpoints": "EndpointSlice", "endpointslice": "EndpointSlice",
                 "networkpolicy": "NetworkPolicy", "policy": "NetworkPolicy",
                 "services.serving.knative.dev": "KnativeService", "service.serving.knative.dev": "KnativeService"})
# Every other built-in kind answers to its kind, plural, singular and short names (kubectl api-resources).
for _b in BUILTIN_KINDS:
    for _name in (_b.kind, _b.plural, *_b.short_names):
        _ALIASES.setdefault(_name.lower(), _b.kind)


def kind_alias(name: str) -> str | None:
    """The canonical kind for a CLI spelling (`po`, `pods`, `deploy`, `svc`, `netpol`...), or None.

    A `kind.group` form (`deployments.apps`) is accepted as kubectl does.
    """
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    head, _, group = key.partition(".")
    kind = _ALIASES.get(head)
    if kind and group and any(v.rpartition("/")[0] == group for v in served_api_versions(kind)):
        return kind
    return None


def custom_alias(name: str, custom: Mapping[str, Any]) -> str | None:
    """The kind a CRD-defined spelling names (kind, plural, singular, short names, `plural.group`)."""
    key = name.strip().lower()
    for ck in custom.values():
        names = {ck.kind.lower(), ck.plural, ck.singular, *ck.short_names, f"{ck.plural}.{ck.group}"}
        if key in names:
            return ck.kind
    return None


def is_emulated(kind: str) -> bool:
    """Whether netsim acts on objects of `kind` (the others are stored, listed and deleted only)."""
    info = KINDS.get(kind)
    return (info is not None and info.emulated) or kind == "Node"


def namespaced(kind: str, custom: Mapping[str, Any] | None = None) -> bool:
    """The scope of a built-in or CRD-defined kind; unknown kinds count as namespaced."""
    b = builtin(kind)
    if b is not None:
        return b.namespaced
    ck = (custom or {}).get(kind)
    return ck.namespaced if ck is not None else True


def stored_kind(api_version: str, kind: str) -> str:
    """The kind an object of manifest `kind` under `api_version` is stored as (mostly `kind` itself)."""
    return STORED_AS.get((api_version, kind), kind)


def kind_info(kind: str) -> KindInfo | None:
    return KINDS.get(kind)


def kinds_for_api_version(api_version: str) -> list[str]:
    return [k.kind for k in KINDS.values() if api_version in k.api_versions]
