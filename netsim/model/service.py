"""Service (core/v1).

Defaulting as SetDefaults_Service (kubernetes pkg/apis/core/v1/defaults.go): type ClusterIP, sessionAffinity
None (and sessionAffinityConfig dropped), ClientIP timeout 10800, port protocol TCP, targetPort = port,
externalTrafficPolicy Cluster for externally accessible services (NodePort, LoadBalancer, or any service
with externalIPs; pkg/api/v1/service ExternallyAccessible), internalTrafficPolicy Cluster unless
ExternalName, allocateLoadBalancerNodePorts true for LoadBalancer.
Validation as pkg/apis/core/validation ValidateService: port names required with more than one port, unique
DNS labels; unique port/protocol pairs; nodePort not with ClusterIP; headless ("None") only for ClusterIP;
ExternalName needs externalName and no clusterIP; healthCheckNodePort only for LoadBalancer with Local;
loadBalancerSourceRanges (and the service.beta.kubernetes.io/load-balancer-source-ranges annotation) only
for LoadBalancer, each entry whitespace-trimmed before it is checked as a CIDR; ClientIP timeout 1..86400.
NodePorts must lie in the apiserver's default --service-node-port-range 30000-32767, which netsim uses; a
requested healthCheckNodePort already used as one of the Service's nodePorts is refused, as the registry's
allocator refuses it (pkg/registry/core/service/storage/alloc.go allocHealthCheckNodePort: "provided port is
already allocated").
IP families as the registry's initIPFamilyFields (pkg/registry/core/service/storage/alloc.go) on a
single-stack IPv4 cluster (netsim's service network is IPv4 only): ipFamilyPolicy defaults to SingleStack
(RequireDualStack for headless services without a selector, which alone may ask for two families);
RequireDualStack is refused ("this cluster is not configured for dual-stack services"), an IPv6 family is
refused ("not configured on this cluster"); PreferDualStack keeps its policy and gets the one family IPv4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.meta import DNS1123_LABEL, DNS1123_SUBDOMAIN, Fields, ObjectMeta
from netsim.model.pod import object_fields
from netsim.model.selectors import LabelSelector, validate_labels
from netsim.model.status import ServiceStatus, service_status

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_PORT_RANGE = (30000, 32767)
DEFAULT_CLIENT_IP_TIMEOUT = 10800
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
IP_FAMILIES = ("IPv4", "IPv6")
# The service IP families this cluster serves (kube-apiserver --service-cluster-ip-range): IPv4 only.
CLUSTER_IP_FAMILIES = ("IPv4",)
# pkg/apis/core/annotation_key_constants.go AnnotationLoadBalancerSourceRangesKey (a cloud-provider annotation:
# kube-proxy reads spec.loadBalancerSourceRanges only, so netsim validates it and does not filter on it).
LB_SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str  # number or a container port name
    protocol: str = "TCP"
    name: str | None = None
    node_port: int | None = None
    app_protocol: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return sf.drop_none({"name": self.name, "protocol": self.protocol, "port": self.port,
                             "targetPort": self.target_port, "nodePort": self.node_port,
                             "appProtocol": self.app_protocol})


@dataclass(frozen=True)
class Service:
    kind: ClassVar[str] = "Service"
    api_version: ClassVar[str] = "v1"
    meta: ObjectMeta
    type: str = "ClusterIP"
    ports: tuple[ServicePort, ...] = ()
    selector: dict[str, str] = field(default_factory=dict)  # empty: endpoints are managed by hand
    cluster_ip: str | None = None  # None: to be allocated; "None": headless
    cluster_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    external_name: str | None = None
    load_balancer_ip: str | None = None
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity: str = "None"  # None | ClientIP
    session_affinity_timeout: int | None = None  # seconds, set for ClientIP
    external_traffic_policy: str | None = None  # Cluster | Local, for externally accessible services
    internal_traffic_policy: str | None = "Cluster"  # Cluster | Local, None for ExternalName
    health_check_node_port: int | None = None
    publish_not_ready_addresses: bool = False
    allocate_load_balancer_node_ports: bool | None = None
    ip_family_policy: str | None = None  # None only for ExternalName
    ip_families: tuple[str, ...] = ()
    traffic_distribution: str | None = None  # PreferClose: zone hints on the Service's EndpointSlices
    extra: dict[str, Any] = field(default_factory=dict)
    status: ServiceStatus = ServiceStatus()  # the LoadBalancer ingress, when decoded from the store

    @property
    def metadata(self) -> ObjectMeta:
        return self.meta

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @property
    def label_selector(self) -> LabelSelector | None:
        """The selector as a LabelSelector, None when the Service selects no pods (manual endpoints)."""
        return LabelSelector.from_labels(self.selector) if self.selector else None

    def port_by_name(self, name: str) -> ServicePort | None:
        return next((p for p in self.ports if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type}
        if self.ports:
            spec["ports"] = [p.to_dict() for p in self.ports]
        if self.selector:
            spec["selector"] = dict(self.selector)
        spec.update(sf.drop_none({
            "clusterIP": self.cluster_ip, "clusterIPs": list(self.cluster_ips),
            "externalIPs": list(self.external_ips), "externalName": self.external_name,
            "loadBalancerIP": self.load_balancer_ip,
            "loadBalancerSourceRanges": list(self.load_balancer_source_ranges),
            "sessionAffinity": self.session_affinity,
            "externalTrafficPolicy": self.external_traffic_policy,
            "internalTrafficPolicy": self.internal_traffic_policy,
            "healthCheckNodePort": self.health_check_node_port,
            "publishNotReadyAddresses": self.publish_not_ready_addresses or None,
            "allocateLoadBalancerNodePorts": self.allocate_load_balancer_node_ports,
            "ipFamilyPolicy": self.ip_family_policy, "ipFamilies": list(self.ip_families),
            "trafficDistribution": self.traffic_distribution,
        }))
        if self.session_affinity_timeout is not None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": self.session_affinity_timeout}}
        spec.update(self.extra)
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(), "spec": spec}


def _parse_ports(spec: Fields, svc_type: str) -> tuple[ServicePort, ...]:
    raw = spec.list("ports")
    ports: list[ServicePort] = []
    names: set[str] = set()
    pairs: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, item in enumerate(raw):
        pf = spec.sub(item, f".ports[{i}]")
        sf.check_fields(pf, {"name", "protocol", "port", "targetPort", "nodePort", "appProtocol"})
        name = pf.str("name") or None
        if name is None and len(raw) > 1:
            raise pf.error("name", "is required when a Service has more than one port")
        if name is not None:
            if len(name) > 63 or not DNS1123_LABEL.match(name):
                raise pf.error("name", f"{name!r} must be a lowercase RFC 1123 label")
            if name in names:
                raise pf.error("name", f"duplicate port name {name!r}")
            names.add(name)
        number = sf.port(pf, "port", required=True)
        proto = sf.protocol(pf)
        if (number, proto) in pairs:
            raise pf.error("port", f"duplicate port {number}/{proto}")
        pairs.add((number, proto))
        target = pf.data.get("targetPort")
        target = number if target in (None, 0, "") else sf.port_or_name(pf, "targetPort")
        node_port = pf.int("nodePort")
        if node_port is not None:
            if svc_type not in ("NodePort", "LoadBalancer"):
                raise pf.error("nodePort", f"may not be used when type is {svc_type!r}")
            lo, hi = NODE_PORT_RANGE
            if not lo <= node_port <= hi:
                raise pf.error("nodePort", f"{node_port} is not in the node port range {lo}-{hi}")
            if (node_port, proto) in node_ports:
                raise pf.error("nodePort", f"duplicate nodePort {node_port}/{proto}")
            node_ports.add((node_port, proto))
        ports.append(ServicePort(port=number, target_port=target, protocol=proto, name=name,
                                 node_port=node_port, app_protocol=pf.str("appProtocol")))
    return tuple(ports)


def parse_service(doc: Any, source: Source) -> Service:
    meta, root = object_fields(doc, source, "Service")
    if len(meta.name) > 63 or not DNS1123_LABEL.match(meta.name):
        raise root.error("metadata.name", f"{meta.name!r} must be a lowercase RFC 1123 label (a DNS name)")
    spec = root.map("spec") or root.sub({}, "spec")
    extra = sf.check_fields(
        spec,
        {"type", "ports", "selector", "clusterIP", "clusterIPs", "externalIPs", "externalName", "loadBalancerIP",
         "loadBalancerSourceRanges", "sessionAffinity", "sessionAffinityConfig", "externalTrafficPolicy",
         "internalTrafficPolicy", "healthCheckNodePort", "publishNotReadyAddresses",
         "allocateLoadBalancerNodePorts", "ipFamilies", "ipFamilyPolicy", "trafficDistribution"},
        {"loadBalancerClass"})
    svc_type = spec.str("type", "ClusterIP", choices=SERVICE_TYPES)
    cluster_ip = spec.str("clusterIP") or None
    if cluster_ip is not None and cluster_ip != "None":
        cluster_ip = sf.ip_address(spec, "clusterIP", cluster_ip)
    cluster_ips = tuple(v if v == "None" else sf.ip_address(spec, f"clusterIPs[{i}]", v)
                        for i, v in enumerate(spec.list("clusterIPs")))
    if cluster_ips and cluster_ip is not None and cluster_ips[0] != cluster_ip:
        raise spec.error("clusterIPs", "clusterIPs[0] must equal clusterIP")
    if cluster_ips and cluster_ip is None:
        cluster_ip = cluster_ips[0]
    if cluster_ip == "None" and svc_type != "ClusterIP":
        raise spec.error("clusterIP", f"may not be 'None' (headless) when type is {svc_type!r}")
    external_name = None
    if svc_type == "ExternalName":
        if cluster_ip is not None:
            raise spec.error("clusterIP", "must be empty when type is 'ExternalName'")
        external_name = spec.str("externalName", required=True).rstrip(".")
        if len(external_name) > 253 or not DNS1123_SUBDOMAIN.match(external_name) or "." not in external_name:
            raise spec.error("externalName", f"{external_name!r} must be a fully qualified DNS name")
    elif spec.has("externalName"):
        raise spec.error("externalName", "may only be set when type is 'ExternalName'")
    ports = _parse_ports(spec, svc_type)
    if not ports and svc_type != "ExternalName" and cluster_ip != "None":
        raise spec.error("ports", "is required (at least one port) unless the Service is headless or ExternalName")
    selector = validate_labels(spec.get("selector"), source=spec.source, obj=spec.obj, path=spec._p("selector"))
    external_ips = tuple(sf.non_special_ip(spec, f"externalIPs[{i}]", v)
                         for i, v in enumerate(spec.list("externalIPs")))
    lb_ranges = _source_ranges(spec, meta, root, svc_type)
    lb_ip = spec.str("loadBalancerIP") or None
    if lb_ip is not None:
        lb_ip = sf.ip_address(spec, "loadBalancerIP", lb_ip)

    affinity = spec.str("sessionAffinity", "None", choices=("None", "ClientIP"))
    timeout = None
    if affinity == "ClientIP":
        timeout = DEFAULT_CLIENT_IP_TIMEOUT
        sac = spec.map("sessionAffinityConfig")
        if sac is not None:
            sf.check_fields(sac, {"clientIP"})
            cip = sac.map("clientIP")
            if cip is not None:
                sf.check_fields(cip, {"timeoutSeconds"})
                timeout = cip.int("timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT, minimum=1, maximum=86400)

    externally_accessible = svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and bool(external_ips))
    etp = spec.str("externalTrafficPolicy", choices=("Cluster", "Local"))
    if etp is not None and not externally_accessible:
        raise spec.error("externalTrafficPolicy", "may only be set for NodePort, LoadBalancer or "
                                                  "externalIPs services")
    if externally_accessible and etp is None:
        etp = "Cluster"
    itp = spec.str("internalTrafficPolicy", choices=("Cluster", "Local"))
    if svc_type != "ExternalName" and itp is None:
        itp = "Cluster"
    hc = spec.int("healthCheckNodePort")
    if hc is not None:
        if svc_type != "LoadBalancer" or etp != "Local":
            raise spec.error("healthCheckNodePort", "may only be set for LoadBalancer services with "
                                                    "externalTrafficPolicy Local")
        if not 1 <= hc <= 65535:
            raise spec.error("healthCheckNodePort", f"port {hc} is out of range 1-65535")
        for i, p in enumerate(ports):
            if p.node_port == hc:
                raise spec.error("healthCheckNodePort", f"failed to allocate requested HealthCheck NodePort "
                                                        f"{hc}: provided port is already allocated (it is "
                                                        f"spec.ports[{i}].nodePort)")
    alloc = spec.bool("allocateLoadBalancerNodePorts")
    if svc_type == "LoadBalancer" and alloc is None:
        alloc = True
    elif svc_type != "LoadBalancer" and alloc is not None:
        raise spec.error("allocateLoadBalancerNodePorts", "may only be used when type is 'LoadBalancer'")
    policy, families = _ip_families(spec, svc_type, cluster_ip, cluster_ips, bool(selector))
    return Service(meta=meta, type=svc_type, ports=ports, selector=selector, cluster_ip=cluster_ip,
                   cluster_ips=cluster_ips, external_ips=external_ips, external_name=external_name,
                   load_balancer_ip=lb_ip, load_balancer_source_ranges=lb_ranges, session_affinity=affinity,
                   session_affinity_timeout=timeout, external_traffic_policy=etp, internal_traffic_policy=itp,
                   health_check_node_port=hc,
                   publish_not_ready_addresses=bool(spec.bool("publishNotReadyAddresses", False)),
                   allocate_load_balancer_node_ports=alloc, ip_family_policy=policy, ip_families=families,
                   # ValidateService (v1.32): PreferClose is the one supported value.
                   traffic_distribution=spec.str("trafficDistribution", choices=("PreferClose",)),
                   extra=extra, status=service_status(doc.get("status")))


def _source_ranges(spec: Fields, meta: ObjectMeta, root: Fields, svc_type: str) -> tuple[str, ...]:
    """spec.loadBalancerSourceRanges, trimmed and normalised; the annotation is validated the same way.

    ValidateService (pkg/apis/core/validation/validation.go): "due to a historical accident around
    transition from the annotation value, these values are allowed to be space-padded", so each entry is
    strings.TrimSpace'd before IsValidCIDR; the annotation is a comma-separated list, each item trimmed;
    either is forbidden unless type is LoadBalancer. kube-proxy trims too (the stored value keeps its
    padding upstream; netsim stores the trimmed form, which every reader would compute anyway).
    """
    ranges = []
    for i, v in enumerate(spec.list("loadBalancerSourceRanges")):
        ranges.append(sf.cidr(spec, f"loadBalancerSourceRanges[{i}]", v.strip() if isinstance(v, str) else v))
    if ranges and svc_type != "LoadBalancer":
        raise spec.error("loadBalancerSourceRanges", "may only be used when type is 'LoadBalancer'")
    ann = meta.annotations.get(LB_SOURCE_RANGES_ANNOTATION)
    if ann is not None:
        key = f"metadata.annotations[{LB_SOURCE_RANGES_ANNOTATION}]"
        if svc_type != "LoadBalancer":
            raise root.error(key, "may only be used when type is 'LoadBalancer'")
        if ann.strip():
            for item in ann.strip().split(","):
                sf.cidr(root, key, item.strip())
    return tuple(ranges)


def _ip_families(spec: Fields, svc_type: str, cluster_ip: str | None, cluster_ips: tuple[str, ...],
                 has_selector: bool) -> tuple[str | None, tuple[str, ...]]:
    """(ipFamilyPolicy, ipFamilies) after validation and defaulting on this single-stack IPv4 cluster.

    ValidateService refuses unknown or duplicate families and either field on ExternalName services; the
    registry's initIPFamilyFields (pkg/registry/core/service/storage/alloc.go) defaults the policy, refuses
    SingleStack with two families, infers families from clusterIPs, lets a headless selectorless Service
    have both families, and refuses RequireDualStack and unconfigured families for every other Service.
    """
    raw_policy = spec.str("ipFamilyPolicy")
    raw = spec.list("ipFamilies")
    if svc_type == "ExternalName":
        if raw_policy is not None:
            raise spec.error("ipFamilyPolicy", "may not be set for ExternalName services")
        if raw:
            raise spec.error("ipFamilies", "may not be set for ExternalName services")
        return None, ()
    if raw_policy is not None and raw_policy not in IP_FAMILY_POLICIES:
        raise spec.error("ipFamilyPolicy", f"Unsupported value: {raw_policy!r}: supported values: "
                                           + ", ".join(repr(v) for v in IP_FAMILY_POLICIES))
    families: list[str] = []
    for i, fam in enumerate(raw):
        if fam not in IP_FAMILIES:
            raise spec.error(f"ipFamilies[{i}]", f"Unsupported value: {fam!r}: supported values: 'IPv4', 'IPv6'")
        if fam in families:
            raise spec.error(f"ipFamilies[{i}]", f"Duplicate value: {fam!r}")
        families.append(fam)
    if len(families) > 2:
        raise spec.error("ipFamilies", "may specify no more than two IP families")
    headless_selectorless = cluster_ip == "None" and not has_selector
    policy = raw_policy or ("RequireDualStack" if headless_selectorless else "SingleStack")
    if policy == "SingleStack" and len(families) == 2:
        raise spec.error("ipFamilyPolicy", "Invalid value: 'SingleStack': must be 'RequireDualStack' or "
                                           "'PreferDualStack' when multiple IP families are specified")
    ips = [ip for ip in (cluster_ips or ((cluster_ip,) if cluster_ip else ())) if ip != "None"]
    for i, ip in enumerate(ips):
        fam = "IPv6" if ":" in ip else "IPv4"
        if i < len(families):
            if families[i] != fam:
                raise spec.error(f"clusterIPs[{i}]", f"expected an {families[i]} value as indicated by "
                                                     f"`ipFamilies[{i}]`")
        elif fam not in CLUSTER_IP_FAMILIES:
            raise spec.error(f"clusterIPs[{i}]", f"{fam} is not configured on this cluster")
        else:
            families.append(fam)
    if headless_selectorless:
        families = families or [CLUSTER_IP_FAMILIES[0]]
        if len(families) < 2 and policy != "SingleStack":
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
        return policy, tuple(families)
    if policy == "RequireDualStack" and len(CLUSTER_IP_FAMILIES) < 2:
        raise spec.error("ipFamilyPolicy", "Invalid value: 'RequireDualStack': this cluster is not configured "
                                           "for dual-stack services")
    for i, fam in enumerate(families):
        if fam not in CLUSTER_IP_FAMILIES:
            raise spec.error(f"ipFamilies[{i}]", f"Invalid value: {fam!r}: not configured on this cluster")
    return policy, tuple(families or [CLUSTER_IP_FAMILIES[0]])
