"""Which kind a kubectl spelling names in a cluster (built-in kinds, then its CRDs), and the kind's scope."""

from __future__ import annotations

from netsim.model.builtin_kinds import builtin
from netsim.model.errors import UsageError
from netsim.model.generic import CustomKind, custom_kinds_from
from netsim.model.registry import custom_alias, kind_alias
from netsim.model.registry import namespaced as kind_namespaced


def custom_kinds(store) -> dict[str, CustomKind]:
    return custom_kinds_from(store.list("CustomResourceDefinition"))


def resolve_kind(name: str, store=None) -> str:
    """The kind `pods`, `deploy`, `ingresses.networking.k8s.io` or a CRD's plural/short name names."""
    kind = kind_alias(name)
    if kind is None and store is not None:
        kind = custom_alias(name, custom_kinds(store))
    if kind is None:
        raise UsageError(f'the server doesn\'t have a resource type "{name}"')
    return kind


def is_namespaced(kind: str, store=None) -> bool:
    return kind_namespaced(kind, custom_kinds(store) if store is not None and builtin(kind) is None else None)


def resource_name(kind: str, store=None) -> str:
    """kubectl's `-o name` prefix: `pod`, `deployment.apps`, `widget.example.com`."""
    b = builtin(kind)
    if b is not None:
        return kind.lower() + (f".{b.group}" if b.group else "")
    if kind == "KnativeService":  # stored under a kind of its own (netsim.model.knative)
        return "service.serving.knative.dev"
    ck = custom_kinds(store).get(kind) if store is not None else None
    return kind.lower() + (f".{ck.group}" if ck else "")
