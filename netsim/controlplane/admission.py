"""What the API server does to objects before it stores them (pure over a store snapshot).

- Service ClusterIPs, NodePorts (and health check node ports) are allocated at creation, as the API
  server's registry does (pkg/registry/core/service/storage), keeping what an existing object already has:
  a user-chosen value is honoured or refused when taken or out of range.
- LoadBalancer services get an ingress IP from the cluster's pool, as MetalLB's controller would: the one
  its `metallb.io/loadBalancerIPs` annotation or spec.loadBalancerIP requests, else the lowest free one.
- externalIPs that would break the node network are refused (`external_ip_problem`): netsim announces an
  external IP by routing it to loopback on one node and answering ARP for it, so a node IP, the fabric
  gateway or an external host's address there would take that address away from its owner.
- Namespaces that manifests use but do not declare are created (kubectl would refuse; a demo tool should
  not), with the `kubernetes.io/metadata.name` label the API server adds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from netsim.model.errors import SpecError
from netsim.proxy.alloc import ClusterIPAllocator, LoadBalancerIPAllocator, NodePortAllocator
from netsim.store import copy_manifest

if TYPE_CHECKING:  # the cluster model is imported by whoever passes a spec (not by `netsim apply` of a slice)
    from netsim.model.cluster import ClusterSpec

DNS_SERVICE = ("kube-system", "kube-dns")
# MetalLB's requested-IP annotations, the current one first (metallb controller/service.go).
LB_IPS_ANNOTATIONS = ("metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs")


def _key(o: Mapping[str, Any]) -> str:
    md = o.get("metadata") or {}
    return f"{md.get('namespace') or 'default'}/{md['name']}"


def _host_range(cidr: str) -> str:
    """A pool's usable addresses: not its network or broadcast address (hosts on the same L2 segment
    would treat those specially)."""
    net = ipaddress.ip_network(cidr)
    if net.num_addresses <= 2:
        return cidr
    return f"{net.network_address + 1}-{net.broadcast_address - 1}"


class Allocators:
    """The cluster's address pools, primed with what stored services already hold."""

    def __init__(self, spec: ClusterSpec, existing_services: Iterable[Mapping[str, Any]]):
        self.cluster_ips = ClusterIPAllocator(spec.network.service_cidr)
        self.node_ports = NodePortAllocator()
        self.lb_ips = LoadBalancerIPAllocator([_host_range(spec.lb_pool)]) if spec.lb_pool else None
        for svc in existing_services:
            self._prime(svc)

    def _prime(self, svc: Mapping[str, Any]) -> None:
        key = _key(svc)
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            self.cluster_ips.allocate(ip, owner=key)
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                self.node_ports.allocate(p["nodePort"], owner=key)
        if spec.get("healthCheckNodePort"):
            self.node_ports.allocate(spec["healthCheckNodePort"], owner=f"{key} healthCheck")
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ip") and self.lb_ips is not None:
                self.lb_ips.allocate(ing["ip"], owner=key)


def external_ip_problem(ip: str, spec: ClusterSpec) -> str | None:
    """Why `ip` cannot be a Service's external IP in this cluster, or None.

    netsim's own refusals, beyond the API server's (ValidateNonSpecialIP, in the model): the speaker
    (daemon._sync_announcements) gives the address a /32 route to `lo` on the announcing node and answers
    ARP for it on the underlay, or has the fabric route it to that node. An address something on the
    underlay already owns would be stolen from it: node-to-node traffic to a node IP would end on another
    node's loopback. Addresses that are not unicast host addresses cannot be announced at all.
    """
    addr = ipaddress.ip_address(ip)
    if addr.version != 4:
        return f"{ip}: the cluster network is IPv4 only"
    if addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255") or addr.is_reserved:
        return f"{ip} is not a unicast address; an external IP must be one a node can answer ARP for"
    node_net = spec.node_net
    if ip == spec.gateway_ip:
        return f"{ip} is the fabric gateway of the node network {node_net}; it cannot be an external IP"
    for i, node in enumerate(spec.nodes):
        if ip == spec.node_ip(i):
            return (f"{ip} is the IP of node {node.name}; as an external IP another node would route it to "
                    "its loopback and cut that node off")
    for host in spec.external_hosts:
        if ip == host.ip:
            return f"{ip} is the address of external host {host.name}; it cannot be an external IP"
    if addr in node_net and addr in (node_net.network_address, node_net.broadcast_address):
        return f"{ip} is the {'network' if addr == node_net.network_address else 'broadcast'} address of " \
               f"the node network {node_net}"
    for what, cidr in (("pod network", spec.network.pod_cidr), ("service network", spec.network.service_cidr)):
        if addr in ipaddress.ip_network(cidr):
            return f"{ip} is inside the {what} {cidr}; an external IP must be outside the cluster's networks"
    return None


def check_external_ips(svc: Mapping[str, Any], spec: ClusterSpec) -> None:
    """Raise SpecError (naming the Service and field) for the first external IP `external_ip_problem` refuses."""
    for i, ip in enumerate((svc.get("spec") or {}).get("externalIPs") or []):
        problem = external_ip_problem(ip, spec)
        if problem:
            raise SpecError(problem, obj=f"Service {_key(svc)}", field=f"spec.externalIPs[{i}]")


def admit_service(svc: dict[str, Any], stored: Mapping[str, Any] | None, alloc: Allocators) -> dict[str, Any]:
    """Fill in allocated fields of a Service manifest; `stored` is the current object, if any."""
    svc = copy_manifest(svc)  # several times faster than deepcopy: 10k Services are admitted at once
    key = _key(svc)
    spec = svc.setdefault("spec", {})
    old_spec = (stored or {}).get("spec") or {}
    if spec.get("type") == "ExternalName":
        return svc
    if spec.get("clusterIP") != "None":
        requested = spec.get("clusterIP") or old_spec.get("clusterIP")
        if not requested and key == "/".join(DNS_SERVICE):
            requested = alloc.cluster_ips.dns_ip
        spec["clusterIP"] = alloc.cluster_ips.allocate(requested, owner=key, obj=f"Service {key}")
        spec["clusterIPs"] = [spec["clusterIP"]]
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        needs_hc = spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
        hc_owner = f"{key} healthCheck"
        if needs_hc and spec.get("healthCheckNodePort"):
            # A requested health check port is reserved before the nodePorts are picked, so an allocated
            # nodePort never lands on it (upstream allocates it in the same operation and refuses a clash).
            spec["healthCheckNodePort"] = alloc.node_ports.allocate(
                spec["healthCheckNodePort"], owner=hc_owner, obj=f"Service {key}", field="spec.healthCheckNodePort")
        # allocateLoadBalancerNodePorts: false -> no new nodePorts, but requested ones are honoured
        # (pkg/registry/core/service/storage/alloc.go initNodePorts / shouldAllocateNodePorts).
        allocate_new = spec.get("type") == "NodePort" or spec.get("allocateLoadBalancerNodePorts") is not False
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []}
        for i, p in enumerate(spec.get("ports") or []):
            old = old_ports.get((p.get("port"), p.get("protocol", "TCP")), {})
            want = p.get("nodePort") or (old.get("nodePort") if allocate_new else None)
            if want is None and not allocate_new:
                p.pop("nodePort", None)
                continue
            p["nodePort"] = alloc.node_ports.allocate(want, owner=key, obj=f"Service {key}",
                                                      field=f"spec.ports[{i}].nodePort")
        if needs_hc and not spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = alloc.node_ports.allocate(
                old_spec.get("healthCheckNodePort"), owner=hc_owner, obj=f"Service {key}",
                field="spec.healthCheckNodePort")
    if spec.get("type") == "LoadBalancer" and alloc.lb_ips is not None:
        old_ing = ((stored or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        field, requested = desired_lb_ip(svc)
        want = requested or (old_ing[0].get("ip") if old_ing else None)
        ip = alloc.lb_ips.allocate(want, owner=key, obj=f"Service {key}", field=field)
        svc.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
    return svc


def desired_lb_ip(svc: Mapping[str, Any]) -> tuple[str, str | None]:
    """(field, IP) a LoadBalancer Service asks MetalLB for, as its controller's getDesiredLbIPs
    (metallb controller/service.go): the `metallb.io/loadBalancerIPs` annotation (or the deprecated
    `metallb.universe.tf/loadBalancerIPs`), comma-separated, else the deprecated spec.loadBalancerIP.

    MetalLB refuses both at once ("service can not have both ..."), an unparsable IP, and two IPs of one
    family (internal/ipfamily ForAddresses: "same address family") or one of a family the Service does not
    have ("does not match the ipFamily of the service"). On this single-stack IPv4 cluster that leaves one
    IPv4 address per Service. MetalLB reports these as events and leaves the Service pending; netsim refuses
    the apply instead, naming the field, as it does for an IP outside the pool or already taken.
    """
    md = svc.get("metadata") or {}
    ann = md.get("annotations") or {}
    key = next((k for k in LB_IPS_ANNOTATIONS if k in ann), None)
    spec_ip = (svc.get("spec") or {}).get("loadBalancerIP") or None
    obj = f"Service {_key(svc)}"
    if key is None or not str(ann[key]):
        return "spec.loadBalancerIP", spec_ip
    field = f"metadata.annotations[{key}]"
    if spec_ip:
        raise SpecError(f"service can not have both {LB_IPS_ANNOTATIONS[0]} and svc.Spec.LoadBalancerIP",
                        obj=obj, field=field)
    ips = []
    for item in str(ann[key]).split(","):
        try:
            ips.append(ipaddress.ip_address(item.strip()))
        except ValueError:
            raise SpecError(f"invalid {key}: {ann[key]!r}", obj=obj, field=field) from None
    if len(ips) == 2 and ips[0].version == ips[1].version or len(ips) > 2:
        raise SpecError(f"{[str(i) for i in ips]}: a Service gets at most one IP per family "
                        f"(IPFamilyForAddresses: {'same address family' if len(ips) == 2 else 'invalid ips length'})",
                        obj=obj, field=field)
    if any(i.version != 4 for i in ips):
        raise SpecError(f"requested loadBalancer IP(s) {[str(i) for i in ips]} does not match the ipFamily of the "
                        "service (IPv4: the cluster is single-stack)", obj=obj, field=field)
    return field, str(ips[0])


def namespace_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}, "spec": {}}


def admit(objects: list[dict[str, Any]], spec: ClusterSpec | None, stored_services: list[dict[str, Any]],
          stored_namespaces: Iterable[str]) -> list[dict[str, Any]]:
    """Objects ready to store: allocations filled in, missing namespaces added first. `spec` (the cluster's
    networks and pools) may be None when no Service is among `objects`: nothing is allocated then."""
    alloc: Allocators | None = None
    by_key = {_key(s): s for s in stored_services}
    have_ns = set(stored_namespaces) | {o["metadata"]["name"] for o in objects if o.get("kind") == "Namespace"}
    out: list[dict[str, Any]] = []
    for o in objects:
        ns = (o.get("metadata") or {}).get("namespace")
        if o.get("kind") != "Namespace" and ns and ns not in have_ns:
            out.append(namespace_object(ns))
            have_ns.add(ns)
    for o in objects:
        if o.get("kind") == "Service":
            if spec is None:
                raise ValueError("admit: a Service needs the cluster's spec (its address pools)")
            alloc = alloc if alloc is not None else Allocators(spec, stored_services)
            check_external_ips(o, spec)
            o = admit_service(o, by_key.get(_key(o)), alloc)
        out.append(o)
    return out
