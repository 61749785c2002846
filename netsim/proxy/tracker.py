"""kube-proxy's change trackers (pure): the service map and endpoints map kept up to date from the store's
change log, so the work before a sync follows the size of the change, not of the cluster.

Upstream (kubernetes pkg/proxy/servicechangetracker.go, endpointschangetracker.go, endpointslicecache.go):
informer events are recorded per object (`ServiceChangeTracker.Update`, `EndpointsChangeTracker.
EndpointSliceUpdate`), and at the start of a sync `ServicePortMap.Update` / `EndpointsMap.Update` merge the
pending changes into the maps kube-proxy renders from; the endpoint slice cache keeps each slice's parsed
endpoints, so a changed slice is parsed once and only its Service's endpoint lists are rebuilt
(`EndpointSliceCache.checkoutChanges`). Here `record` takes change-log entries, `update` merges them, and
`services()` / `endpoints()` are the maps, whose unchanged entries stay the very same objects between syncs:
that is what lets the incremental renderer (netsim.proxy.render) reuse each unchanged port's render by
identity.

The result equals `netsim.proxy.adapter.collect` over all Services and slices (the tests hold it to that):
one ServicePort per (service, port) with the same fields; endpoints matched by port name and protocol,
IPv4 slices only, slices of a Service taken in name order, the first address of each endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.proxy.adapter import service_ports
from netsim.proxy.model import Endpoint, ServicePort

SERVICE, SLICE = "Service", "EndpointSlice"
KINDS = frozenset({SERVICE, SLICE})
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

ServiceKey = tuple[str, str]  # (namespace, name)
Parse = Callable[[Mapping[str, Any]], Any | None]  # a stored dict -> the typed object, None if it does not parse


def _ns(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace") or "default"


def _rv(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


@dataclass
class _Slice:
    """One slice as the endpoint slice cache keeps it: its Service and its endpoints per (port name,
    protocol), already in the renderer's form."""

    rv: str | None
    service: ServiceKey | None
    by_port: dict[tuple[str, str], tuple[Endpoint, ...]] = field(default_factory=dict)


@dataclass
class UpdateResult:
    """What one `update` changed (upstream's UpdateServiceMapResult / UpdateEndpointsMapResult)."""

    services: set[ServiceKey] = field(default_factory=set)  # whose ports or endpoints changed
    parsed: int = 0  # objects parsed (decoded into the model) by this update


class ProxyTracker:
    """The service map and endpoints map of one cluster, fed by change-log entries."""

    KINDS = KINDS  # the kinds it watches

    def __init__(self, parse: Parse):
        self._parse = parse
        self._pending: dict[tuple[str, str, str], Mapping[str, Any] | None] = {}  # (kind, ns, name) -> object
        self._svc_rv: dict[ServiceKey, str | None] = {}
        self._ports: dict[ServiceKey, tuple[ServicePort, ...]] = {}
        self._slices: dict[tuple[str, str], _Slice] = {}  # (namespace, slice name) -> parsed slice
        self._slices_of: dict[ServiceKey, set[str]] = {}  # service -> names of the slices labelled for it
        self._endpoints: dict[tuple[str, str], list[Endpoint]] = {}  # ServicePort.key -> endpoints
        self._keys_of: dict[ServiceKey, set[tuple[str, str]]] = {}  # service -> its keys in _endpoints
        self._services: tuple[ServicePort, ...] | None = ()
        self.generation = 0  # moves whenever services() or endpoints() changed
        self.parsed = 0  # objects parsed so far (a one-endpoint change parses one slice)
        self.joined = 0  # Services whose endpoint lists were rebuilt so far

    # -- feeding -------------------------------------------------------------------------------------
    @property
    def pending(self) -> set[tuple[str, str, str]]:
        """(kind, namespace, name) of the objects recorded since the last `update`."""
        return set(self._pending)

    def record(self, kind: str, namespace: str | None, name: str, obj: Mapping[str, Any] | None) -> None:
        """An object's new state (None: deleted), as an informer event; the last one per object wins."""
        if kind in KINDS:
            self._pending[(kind, namespace or "default", name)] = obj

    def record_changes(self, changes: Iterable[Any]) -> None:
        """Change-log entries (netsim.store.Change) of Services and EndpointSlices; others are ignored."""
        for c in changes:
            self.record(c.kind, c.namespace, c.name, None if c.type == "DELETED" else c.object)

    def relist(self, services: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]]) -> None:
        """Start over from a full listing (first sync, or a watch whose history was compacted): what is not
        listed is gone. Unchanged objects (same resourceVersion) are kept without parsing them again."""
        listed: set[tuple[str, str, str]] = set()
        for kind, objs in ((SERVICE, services), (SLICE, slices)):
            for obj in objs:
                key = (kind, _ns(obj), obj["metadata"]["name"])
                listed.add(key)
                self._pending[key] = obj
        for ns, name in self._svc_rv:
            if (SERVICE, ns, name) not in listed:
                self._pending[(SERVICE, ns, name)] = None
        for ns, name in self._slices:
            if (SLICE, ns, name) not in listed:
                self._pending[(SLICE, ns, name)] = None

    # -- merging -------------------------------------------------------------------------------------
    def update(self) -> UpdateResult:
        """Merge the recorded changes into the maps: parse only the changed objects, rebuild the endpoint
        lists of only the Services they concern."""
        result = UpdateResult()
        pending, self._pending = self._pending, {}
        touched: set[ServiceKey] = set()  # services whose endpoints must be rebuilt
        ports_changed = False
        for (kind, ns, name), obj in pending.items():
            if kind == SERVICE:
                changed = self._update_service((ns, name), obj, result)
                if changed:
                    ports_changed = True
                    touched.add((ns, name))
                    result.services.add((ns, name))
            else:
                touched |= self._update_slice((ns, name), obj, result)
        for key in touched:
            if self._rebuild_endpoints(key):
                result.services.add(key)
        if ports_changed:
            self._services = None
        if result.services:
            self.generation += 1
        self.parsed += result.parsed
        return result

    def _update_service(self, key: ServiceKey, obj: Mapping[str, Any] | None, result: UpdateResult) -> bool:
        if obj is not None and key in self._svc_rv and self._svc_rv[key] == _rv(obj) and _rv(obj) is not None:
            return False  # already merged (a relist overlapping the watch)
        typed = None
        if obj is not None:
            result.parsed += 1
            typed = self._parse(obj)
        if typed is None:  # deleted, or does not parse: left out, as before
            self._svc_rv.pop(key, None)
            old = self._ports.pop(key, None)
            return old is not None
        self._svc_rv[key] = _rv(obj)
        # status.loadBalancer.ingress (what the daemon's LoadBalancer allocator wrote), from the typed status
        new = tuple(service_ports(typed, typed.status.ingress_ips))
        old = self._ports.get(key)
        if old is not None and old == new:
            return False  # e.g. a status condition: nothing kube-proxy renders
        self._ports[key] = new
        return True

    def _update_slice(self, key: tuple[str, str], obj: Mapping[str, Any] | None,
                      result: UpdateResult) -> set[ServiceKey]:
        old = self._slices.get(key)
        if obj is not None and old is not None and old.rv == _rv(obj) and old.rv is not None:
            return set()
        typed = None
        if obj is not None:
            result.parsed += 1
            typed = self._parse(obj)
        if typed is None:
            gone = self._slices.pop(key, None)
            if gone is None or gone.service is None:
                return set()
            self._slices_of.get(gone.service, set()).discard(key[1])
            return {gone.service}
        new = _Slice(_rv(obj), (key[0], typed.service_name) if typed.service_name else None)
        if typed.address_type == "IPv4":
            for ep_port in typed.ports:
                if ep_port.port is None:
                    continue
                new.by_port[(ep_port.name or "", ep_port.protocol)] = tuple(
                    Endpoint(ip=addr, port=ep_port.port, node_name=ep.node_name or "", ready=ep.is_ready,
                             serving=ep.is_serving, terminating=ep.is_terminating, zone_hints=ep.zone_hints)
                    for ep in typed.endpoints for addr in ep.addresses[:1])  # kube-proxy: the first address
        self._slices[key] = new
        touched = set()
        if old is not None and old.service is not None and old.service != new.service:
            self._slices_of.get(old.service, set()).discard(key[1])
            touched.add(old.service)
        if new.service is not None:
            self._slices_of.setdefault(new.service, set()).add(key[1])
            if old is None or old.service != new.service or old.by_port != new.by_port:
                touched.add(new.service)
        return touched

    def _rebuild_endpoints(self, key: ServiceKey) -> bool:
        """The endpoint lists of one Service's ports from its cached slices (slices in name order, as the
        store lists them); True when any list differs from the one held."""
        self.joined += 1
        names = sorted(self._slices_of.get(key, ()))
        if not names:
            self._slices_of.pop(key, None)
        slices = [self._slices[(key[0], n)] for n in names]
        ports = self._ports.get(key, ())
        changed = False
        keep = {sp.key for sp in ports}
        for k in self._keys_of.pop(key, set()) - keep:
            del self._endpoints[k]  # a port the Service no longer has (or the Service is gone)
            changed = True
        if keep:
            self._keys_of[key] = keep
        for sp in ports:
            eps = [e for sl in slices for e in sl.by_port.get((sp.port_name, sp.protocol), ())]
            cur = self._endpoints.get(sp.key)
            if cur is None or cur != eps:
                self._endpoints[sp.key] = eps
                changed = True
        return changed

    # -- the maps ------------------------------------------------------------------------------------
    def services(self) -> tuple[ServicePort, ...]:
        """Every ServicePort, Services in (namespace, name) order, ports in spec order; the same tuple
        (and objects) until a Service's ports change."""
        if self._services is None:
            self._services = tuple(sp for k in sorted(self._ports) for sp in self._ports[k])
        return self._services

    def endpoints(self) -> dict[tuple[str, str], list[Endpoint]]:
        """ServicePort.key -> endpoints. Callers must not mutate it; unchanged lists stay the same objects."""
        return self._endpoints

    def ports_of(self, key: ServiceKey) -> tuple[ServicePort, ...]:
        """One Service's ports (empty when it is gone or does not parse)."""
        return self._ports.get(key, ())
