"""Building a DNS Snapshot from the objects the store holds (pure: lists of manifest dicts in, Snapshot out).

From a store, every object is the parse cache's typed one (`snapshot_from_typed`: each version decoded
once per process, shared with the agents and controllers); `snapshot_from_dicts` takes manifest dicts
(files, tests) and reads pods as the one pod view straight from them (`PodView.from_dict`). Pods owned by a StatefulSet get the identity the StatefulSet
controller gives them when the dict does not carry it yet: hostname = pod name, subdomain = the set's
spec.serviceName (kubernetes pkg/controller/statefulset stateful_set_utils.go updateIdentity), which is
what makes `web-0.web.<ns>.svc.<zone>` resolve.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from netsim.dns.records import BUILTIN_NAMESPACES, PodInfo, Snapshot
from netsim.model.endpointslice import EndpointSlice, parse_endpointslice
from netsim.model.errors import NetsimError, Source
from netsim.model.pod import Pod
from netsim.model.service import Service, parse_service
from netsim.model.workloads import StatefulSet

log = logging.getLogger(__name__)
_SOURCE = Source("<store>")


def _owner(obj: Mapping[str, Any], kind: str) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return ref.get("name")
    return None


def snapshot_from_dicts(services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]],
                        pods: Iterable[Mapping[str, Any]], *, statefulsets: Iterable[Mapping[str, Any]] = (),
                        namespaces: Iterable[Mapping[str, Any]] | None = None, serial: int = 0) -> Snapshot:
    """A Snapshot from manifest dicts. Objects that do not parse are skipped (and logged): one bad object
    must not take cluster DNS down."""
    parsed_svcs = []
    for doc in services:
        try:
            parsed_svcs.append(parse_service(_without_status(doc), _SOURCE))
        except NetsimError as exc:
            log.warning("dns: skipping a Service: %s", exc)
    parsed_slices = []
    for doc in slices:
        try:
            parsed_slices.append(parse_endpointslice(_without_status(doc), _SOURCE))
        except NetsimError as exc:
            log.warning("dns: skipping an EndpointSlice: %s", exc)
    set_services = {((s.get("metadata") or {}).get("namespace") or "default", (s.get("metadata") or {}).get("name")):
                    (s.get("spec") or {}).get("serviceName") for s in statefulsets}
    infos = []
    for doc in pods:
        if not (doc.get("metadata") or {}).get("name"):
            continue
        info = PodInfo.from_dict(doc, ports=False)
        owner = _owner(doc, "StatefulSet")
        if owner is not None:
            svc_name = set_services.get((info.namespace, owner))
            info = replace(info, hostname=info.hostname or info.name, subdomain=info.subdomain or svc_name)
        infos.append(info)
    ns_names = None
    if namespaces is not None:
        ns_names = frozenset((n.get("metadata") or {}).get("name") for n in namespaces) - {None}
    return Snapshot(tuple(parsed_svcs), tuple(parsed_slices), tuple(infos), ns_names, serial)


def pod_info(pod: Pod) -> PodInfo:
    """A typed pod as DNS sees it: the one pod view, without ports (DNS names no ports of pods)."""
    return replace(PodInfo.of(pod), ports=())


def set_owner(pod: Pod) -> str | None:
    """The StatefulSet controlling a typed pod, by name."""
    return next((r.get("name") for r in pod.meta.owner_references
                 if r.get("kind") == "StatefulSet" and r.get("controller")), None)


def with_set_identity(info: PodInfo, owner: str | None, set_services: Mapping[tuple[str, str], str | None]) -> PodInfo:
    """A StatefulSet's pod gets hostname = its name, subdomain = the set's serviceName when it does not
    carry them (statefulset stateful_set_utils.go updateIdentity)."""
    if owner is None:
        return info
    svc_name = set_services.get((info.namespace, owner))
    return replace(info, hostname=info.hostname or info.name, subdomain=info.subdomain or svc_name)


def snapshot_from_typed(services: Iterable[Service], slices: Iterable[EndpointSlice], pods: Iterable[Pod], *,
                        statefulsets: Iterable[StatefulSet] = (), namespaces: Iterable[str] | None = None,
                        serial: int = 0) -> Snapshot:
    """A Snapshot from typed objects (the store's parse cache's: each version decoded once, shared with
    the agents and controllers)."""
    set_services = {(s.meta.namespace or "default", s.meta.name): s.service_name for s in statefulsets}
    infos = tuple(with_set_identity(pod_info(p), set_owner(p), set_services) for p in pods)
    return Snapshot(tuple(services), tuple(slices), infos,
                    None if namespaces is None else frozenset(namespaces), serial)


def snapshot_from_store(store: Any, *, serial: int | None = None) -> Snapshot:
    """A Snapshot of everything DNS needs from a netsim Store (`store.typed_list(kind)`: an object that
    does not parse is left out, logged once per version); the SOA serial is the store's resourceVersion
    unless given. Namespaces are taken from Namespace objects plus the built-in ones, because netsim
    accepts objects in namespaces that were never created explicitly."""
    snap = snapshot_from_typed(store.typed_list("Service"), store.typed_list("EndpointSlice"),
                               store.typed_list("Pod"), statefulsets=store.typed_list("StatefulSet"),
                               serial=store.current_rv() if serial is None else serial)
    declared = {n.meta.name for n in store.typed_list("Namespace")}
    used = {s.meta.namespace or "default" for s in snap.services} | {p.namespace for p in snap.pods}
    return replace(snap, namespaces=frozenset(declared | used | BUILTIN_NAMESPACES))


def _without_status(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "status"}
