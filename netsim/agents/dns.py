"""The DNS agent: keeps cluster DNS's Snapshot current from the store's change log.

CoreDNS's kubernetes plugin keeps informer caches of minimal objects (plugin/kubernetes/object: ToService,
ToPod, ToEndpoints keep only what DNS answers from) and, on an update, moves the zone's SOA serial only when
the object changed in a way DNS sees (controller.go detectChanges, endpointsEquivalent, serviceModified).
Here the same: each pass takes the changes since the last one (netsim.agents.changes), decodes only the
objects that changed, and only when one of them changed what DNS answers (a Service's or a slice's spec, a
pod's addresses or hostname/subdomain, the set of namespaces, a StatefulSet's serviceName) publishes a new
Snapshot, whose serial is the resourceVersion of that change. A pod's status update that leaves its
addresses alone (readiness, container statuses: most of the writes of a running cluster) costs a
comparison, not a rebuild of every record.

Objects that do not parse are left out and logged, as `snapshot_from_dicts` does: one bad object never
takes cluster DNS down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netsim.agents.changes import Batch, ChangeTracker
from netsim.dns.records import BUILTIN_NAMESPACES, PodInfo, Snapshot
from netsim.dns.server import SnapshotHolder
from netsim.dns.source import pod_info, set_owner, with_set_identity
from netsim.model.errors import NetsimError
from netsim.store import Store

log = logging.getLogger(__name__)
KINDS = frozenset({"Service", "EndpointSlice", "Pod", "Namespace", "StatefulSet"})
NsName = tuple[str, str]


def _answered(entry: tuple[PodInfo, str | None]) -> tuple[Any, ...]:
    """What of a pod DNS answers from: its addresses, hostname, subdomain and StatefulSet."""
    info, owner = entry
    return info.ips, info.hostname, info.subdomain, owner


def _spec_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What of a Service or EndpointSlice DNS reads: everything but status and the resourceVersion (a
    status-only write, such as a LoadBalancer ingress, changes no name)."""
    md = {k: v for k, v in (doc.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**{k: v for k, v in doc.items() if k not in ("status", "metadata")}, "metadata": md}


@dataclass
class DnsSyncReport:
    """What one pass did: objects decoded (parsed through the model) and whether a new Snapshot went out."""

    decoded: int = 0
    published: bool = False


class DnsAgent:
    """Cluster DNS's view of the store (see the module docstring). `sync()` once per pass."""

    def __init__(self, store: Store, holder: SnapshotHolder):
        self.store = store
        self.holder = holder
        self.tracker = ChangeTracker(store, KINDS)
        self._views: dict[tuple[str, NsName], dict[str, Any]] = {}  # Service/EndpointSlice -> _spec_view
        self._services: dict[NsName, Any] = {}
        self._slices: dict[NsName, Any] = {}
        self._pods: dict[NsName, tuple[PodInfo, str | None]] = {}  # the pod's own info, its StatefulSet
        self._set_services: dict[NsName, str | None] = {}  # StatefulSet -> spec.serviceName
        self._declared: set[str] = set()
        self._final: dict[NsName, PodInfo] = {}  # pod infos with the StatefulSet identity filled in
        self._tuples: dict[str, tuple[Any, ...]] = {}  # the Snapshot's tuples, remade per kind that changed
        self.decoded = 0  # every object parsed so far (tests count the work of a pass with it)

    def sync(self, batch: Batch | None = None) -> DnsSyncReport:
        """Take in what changed (the tracker's next batch unless given) and publish a Snapshot if DNS
        answers differently now."""
        batch = self.tracker.poll() if batch is None else batch
        before = self.decoded
        changed: set[str] = set()
        if batch.resync:
            changed = self._forget_missing(batch)
        for (kind, ns, name), obj in batch.objects.items():
            key = (ns or "default", name)
            if self._take(kind, key, obj):
                changed.add(kind)
        published = bool(changed) or not self._tuples  # the first pass publishes, even an empty cluster
        if published:
            self._publish(changed, batch.rv)
        return DnsSyncReport(self.decoded - before, published)

    # -- taking changes in ---------------------------------------------------------------------------
    def _forget_missing(self, batch: Batch) -> set[str]:
        present = {(kind, ns or "default", name) for kind, ns, name in batch.objects}
        changed = set()
        tables: list[tuple[str, dict[NsName, Any]]] = [("Service", self._services), ("EndpointSlice", self._slices),
                                                       ("Pod", self._pods), ("StatefulSet", self._set_services)]
        for kind, table in tables:
            for key in [k for k in table if (kind, *k) not in present]:
                self._take(kind, key, None)
                changed.add(kind)
        for name in [n for n in self._declared if ("Namespace", "default", n) not in present]:
            self._declared.discard(name)
            changed.add("Namespace")
        return changed

    def _take(self, kind: str, key: NsName, obj: dict[str, Any] | None) -> bool:
        """One object's newest state (None: deleted); True when DNS sees a difference."""
        if kind in ("Service", "EndpointSlice"):
            table = self._services if kind == "Service" else self._slices
            if obj is None:
                self._views.pop((kind, key), None)
                return table.pop(key, None) is not None
            view = _spec_view(obj)
            if self._views.get((kind, key)) == view:
                return False
            self._views[(kind, key)] = view
            self.decoded += 1
            try:
                # The store's parse cache: the version kube-proxy's tracker decodes too is parsed once.
                parsed = self.store.decode(obj)
            except NetsimError as exc:
                log.warning("dns: skipping a%s %s: %s", "" if kind == "Service" else "n", kind, exc)
                return table.pop(key, None) is not None
            table[key] = parsed
            return True
        if kind == "Pod":
            if obj is None:
                self._final.pop(key, None)
                return self._pods.pop(key, None) is not None
            self.decoded += 1
            try:
                typed = self.store.decode(obj)  # the parse cache's: the kubelet's and controllers' decode
            except NetsimError as exc:
                log.warning("dns: skipping a Pod: %s", exc)
                self._final.pop(key, None)
                return self._pods.pop(key, None) is not None
            entry = (pod_info(typed), set_owner(typed))
            old = self._pods.get(key)
            self._pods[key] = entry
            self._final[key] = self._identity(key, entry)
            # Only what DNS answers from counts as a difference (a label or node change publishes nothing).
            return old is None or _answered(old) != _answered(entry)
        if kind == "StatefulSet":
            had = key in self._set_services
            if obj is None:
                if not had:
                    return False
                del self._set_services[key]
            else:
                svc = self._service_name(obj)
                if had and self._set_services[key] == svc:
                    return False
                self._set_services[key] = svc
            for pkey, entry in self._pods.items():  # the set's pods take their identity from it
                if entry[1] == key[1] and pkey[0] == key[0]:
                    self._final[pkey] = self._identity(pkey, entry)
            return True
        if kind == "Namespace":
            name = key[1]
            if (obj is None) == (name not in self._declared):
                return False
            (self._declared.discard if obj is None else self._declared.add)(name)
            return True
        return False

    def _service_name(self, obj: dict[str, Any]) -> str | None:
        """A StatefulSet's spec.serviceName, from its typed object (None when it does not parse)."""
        try:
            return self.store.decode(obj).service_name
        except NetsimError as exc:
            log.warning("dns: skipping a StatefulSet: %s", exc)
            return None

    def _identity(self, key: NsName, entry: tuple[PodInfo, str | None]) -> PodInfo:
        """A StatefulSet's pod gets hostname = its name, subdomain = the set's serviceName when it does not
        carry them (statefulset stateful_set_utils.go updateIdentity), as netsim.dns.source does."""
        info, owner = entry
        return with_set_identity(info, owner, self._set_services)

    # -- publishing ----------------------------------------------------------------------------------
    def _publish(self, changed: set[str], rv: int) -> None:
        """A new Snapshot from the held objects; only the tuples of the kinds that changed are remade, in
        the store's order (namespace, name), which the resolver's indexes rely on for ties."""
        t = self._tuples
        if "Service" in changed or "Service" not in t:
            t["Service"] = tuple(self._services[k] for k in sorted(self._services))
        if "EndpointSlice" in changed or "EndpointSlice" not in t:
            t["EndpointSlice"] = tuple(self._slices[k] for k in sorted(self._slices))
        if {"Pod", "StatefulSet"} & changed or "Pod" not in t:
            t["Pod"] = tuple(self._final[k] for k in sorted(self._final))
        used = {k[0] for k in self._services} | {k[0] for k in self._final}
        namespaces = frozenset(self._declared | used | BUILTIN_NAMESPACES)
        self.holder.set(Snapshot(t["Service"], t["EndpointSlice"], t["Pod"], namespaces, rv))


__all__ = ["DnsAgent", "DnsSyncReport", "KINDS"]
