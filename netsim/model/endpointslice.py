"""EndpointSlice (discovery.k8s.io/v1).

Defaults as kubernetes pkg/apis/discovery/v1/defaults.go: a port's name defaults to "" and protocol to TCP.
Conditions are kept as given (None = unset) because their absence means something: per the API docs a nil
`ready` is to be read as ready, a nil `serving` as the value of `ready`, a nil `terminating` as false; the
`is_ready`/`is_serving`/`is_terminating` properties apply that reading. Validation as
pkg/apis/discovery/validation: addressType IPv4|IPv6|FQDN, 1..100 addresses per endpoint of that type,
at most 1000 endpoints and 100 ports, unique port names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.meta import DNS1123_LABEL, DNS1123_SUBDOMAIN, Fields, ObjectMeta

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


@dataclass(frozen=True)
class EndpointConditions:
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    def to_dict(self) -> dict[str, bool]:
        return sf.drop_none({"ready": self.ready, "serving": self.serving, "terminating": self.terminating})


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: dict[str, Any] | None = None  # ObjectReference: kind, namespace, name, uid
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def zone_hints(self) -> tuple[str, ...]:
        """hints.forZones names (validated at parse): the zones whose kube-proxies may use this endpoint."""
        return tuple(z["name"] for z in (self.extra.get("hints") or {}).get("forZones") or [])

    @property
    def is_ready(self) -> bool:
        return self.conditions.ready is not False

    @property
    def is_serving(self) -> bool:
        return self.conditions.serving if self.conditions.serving is not None else self.is_ready

    @property
    def is_terminating(self) -> bool:
        return bool(self.conditions.terminating)

    def to_dict(self) -> dict[str, Any]:
        out = sf.drop_none({"addresses": list(self.addresses), "conditions": self.conditions.to_dict(),
                            "hostname": self.hostname, "nodeName": self.node_name, "zone": self.zone,
                            "targetRef": self.target_ref})
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class EndpointPort:
    port: int | None
    name: str = ""
    protocol: str = "TCP"
    app_protocol: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return sf.drop_none({"name": self.name, "protocol": self.protocol, "port": self.port,
                             "appProtocol": self.app_protocol})


@dataclass(frozen=True)
class EndpointSlice:
    kind: ClassVar[str] = "EndpointSlice"
    api_version: ClassVar[str] = "discovery.k8s.io/v1"
    meta: ObjectMeta
    address_type: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @property
    def service_name(self) -> str | None:
        return self.meta.labels.get(SERVICE_NAME_LABEL)

    def to_dict(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(),
                "addressType": self.address_type, "endpoints": [e.to_dict() for e in self.endpoints],
                "ports": [p.to_dict() for p in self.ports]}


def _address(ef: Fields, i: int, value: Any, address_type: str) -> str:
    key = f"addresses[{i}]"
    if address_type == "FQDN":
        if not isinstance(value, str) or len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
            raise ef.error(key, f"{value!r} must be a lowercase RFC 1123 subdomain for addressType FQDN")
        return value
    ip = sf.ip_address(ef, key, value)
    version = 4 if address_type == "IPv4" else 6
    if ipaddress.ip_address(ip).version != version:
        raise ef.error(key, f"{value!r} is not an {address_type} address")
    return sf.non_special_ip(ef, key, ip)  # discovery validation: ValidateNonSpecialIP, as externalIPs


def _parse_endpoint(ef: Fields, address_type: str) -> Endpoint:
    extra = sf.check_fields(ef, {"addresses", "conditions", "hostname", "nodeName", "zone", "targetRef"},
                            {"hints", "deprecatedTopology"})
    hf = ef.map("hints")
    if hf is not None:
        # discovery validation validateHints: forZones entries name a zone (a label value), at most 8.
        sf.check_fields(hf, {"forZones", "forNodes"})
        zones = hf.list("forZones")
        if len(zones) > 8:
            raise hf.error("forZones", f"must have at most 8 items, got {len(zones)}")
        for i, z in enumerate(zones):
            zf = hf.sub(z, f".forZones[{i}]") if isinstance(z, dict) else None
            if zf is None:
                raise hf.error(f"forZones[{i}]", "must be an object with a name")
            sf.check_fields(zf, {"name"})
            zf.str("name", required=True)
    raw = ef.list("addresses", required=True)
    if not 1 <= len(raw) <= 100:
        raise ef.error("addresses", "must have between 1 and 100 addresses")
    addresses = tuple(_address(ef, i, v, address_type) for i, v in enumerate(raw))
    conditions = EndpointConditions()
    cf = ef.map("conditions")
    if cf is not None:
        sf.check_fields(cf, {"ready", "serving", "terminating"})
        conditions = EndpointConditions(cf.bool("ready"), cf.bool("serving"), cf.bool("terminating"))
    target_ref = None
    tf = ef.map("targetRef")
    if tf is not None:
        sf.check_fields(tf, {"kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"})
        for k in tf.data:
            tf.str(k)
        target_ref = dict(tf.data)
    return Endpoint(addresses=addresses, conditions=conditions,
                    hostname=sf.dns_label(ef, "hostname", what="hostname"),
                    node_name=sf.dns_subdomain(ef, "nodeName", what="node name"), zone=ef.str("zone"),
                    target_ref=target_ref, extra=extra)


def parse_endpointslice(doc: Any, source: Source) -> EndpointSlice:
    meta, root = sf.object_fields(doc, source, "EndpointSlice",
                               top_level=frozenset({"apiVersion", "kind", "metadata", "addressType", "endpoints",
                                                    "ports"}))
    address_type = root.str("addressType", required=True, choices=ADDRESS_TYPES)
    raw_eps = root.list("endpoints")
    if len(raw_eps) > 1000:
        raise root.error("endpoints", "must have at most 1000 endpoints")
    endpoints = tuple(_parse_endpoint(root.sub(e, f"endpoints[{i}]"), address_type)
                      for i, e in enumerate(raw_eps))
    raw_ports = root.list("ports")
    if len(raw_ports) > 100:
        raise root.error("ports", "must have at most 100 ports")
    ports = []
    names: set[str] = set()
    for i, item in enumerate(raw_ports):
        pf = root.sub(item, f"ports[{i}]")
        sf.check_fields(pf, {"name", "protocol", "port", "appProtocol"})
        name = pf.str("name", "")
        if name and (len(name) > 63 or not DNS1123_LABEL.match(name)):
            raise pf.error("name", f"{name!r} must be empty or a lowercase RFC 1123 label")
        if name in names:
            raise pf.error("name", f"duplicate port name {name!r}")
        names.add(name)
        ports.append(EndpointPort(port=sf.port(pf, "port"), name=name, protocol=sf.protocol(pf),
                                  app_protocol=pf.str("appProtocol")))
    return EndpointSlice(meta=meta, address_type=address_type, endpoints=endpoints, ports=tuple(ports))
