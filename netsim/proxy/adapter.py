"""From Kubernetes objects (Service, EndpointSlice) to the renderer's ServicePort / Endpoint (pure).

This is kube-proxy's ServiceChangeTracker and EndpointSliceCache in miniature
(kubernetes pkg/proxy/servicechangetracker.go, endpointslicecache.go): one ServicePort per
(service, port), keyed by the port-name string and protocol; endpoints gathered from every slice labelled
for the service, matched to the service port by port name and protocol, IPv4 slices only, with the
EndpointSlice API's condition defaults (an unset `ready` counts as ready, an unset `serving` follows
`ready`, an unset `terminating` is false).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from netsim.model.endpointslice import EndpointSlice
from netsim.model.service import Service
from netsim.proxy.model import Endpoint, ServicePort


def service_ports(svc: Service, lb_ips: Sequence[str] = ()) -> list[ServicePort]:
    """The proxy's view of each port of `svc`. Headless and ExternalName services yield nothing."""
    if svc.type == "ExternalName" or svc.headless or not svc.cluster_ip:
        return []
    ns, name = svc.meta.namespace or "default", svc.meta.name
    externally_visible = svc.type in ("NodePort", "LoadBalancer")
    out = []
    for p in svc.ports:
        out.append(ServicePort(
            namespace=ns, name=name, port_name=p.name or "", protocol=p.protocol, cluster_ip=svc.cluster_ip,
            port=p.port, node_port=(p.node_port or 0) if externally_visible else 0,
            external_ips=tuple(svc.external_ips),
            load_balancer_ips=tuple(lb_ips) if svc.type == "LoadBalancer" else (),
            load_balancer_source_ranges=tuple(r.strip() for r in svc.load_balancer_source_ranges),
            session_affinity_timeout=(svc.session_affinity_timeout or 10800)
            if svc.session_affinity == "ClientIP" else None,
            external_traffic_policy=svc.external_traffic_policy or "Cluster",
            internal_traffic_policy=svc.internal_traffic_policy or "Cluster",
            # Only LoadBalancer services with eTP=Local keep a health check node port (upstream).
            health_check_node_port=(svc.health_check_node_port or 0)
            if svc.type == "LoadBalancer" and svc.external_traffic_policy == "Local" else 0,
        ))
    return out


def endpoints_for(svc: Service, slices: Iterable[EndpointSlice]) -> dict[tuple[str, str], list[Endpoint]]:
    """Endpoints per ServicePort key from the slices of `svc` (matched by the service-name label)."""
    ports = service_ports(svc)
    result: dict[tuple[str, str], list[Endpoint]] = {sp.key: [] for sp in ports}
    wanted = {(sp.port_name, sp.protocol): sp.key for sp in ports}
    for sl in slices:
        if sl.address_type != "IPv4" or sl.service_name != svc.meta.name:
            continue
        if (sl.meta.namespace or "default") != (svc.meta.namespace or "default"):
            continue
        for ep_port in sl.ports:
            key = wanted.get((ep_port.name or "", ep_port.protocol))
            if key is None or ep_port.port is None:
                continue
            for ep in sl.endpoints:
                for addr in ep.addresses[:1]:  # kube-proxy uses the first address of each endpoint
                    result[key].append(Endpoint(
                        ip=addr, port=ep_port.port, node_name=ep.node_name or "",
                        ready=ep.is_ready, serving=ep.is_serving, terminating=ep.is_terminating,
                        zone_hints=ep.zone_hints))
    return result


def collect(services: Iterable[Service], slices: Sequence[EndpointSlice],
            lb_ips: dict[str, Sequence[str]] | None = None) -> tuple[list[ServicePort], dict]:
    """All service ports and endpoints of a cluster, ready for `render`."""
    sps: list[ServicePort] = []
    eps: dict[tuple[str, str], list[Endpoint]] = {}
    for svc in services:
        sps.extend(service_ports(svc, (lb_ips or {}).get(svc.meta.key, ())))
        eps.update(endpoints_for(svc, slices))
    return sps, eps
