"""The netsim Cluster spec (`apiVersion: netsim/v1alpha1`, `kind: Cluster`) and the addresses derived from it.

Validation happens here, before anything is built: every error names the file, the field and what is
wrong. Derived addresses are computed once (node IPs, per-node pod CIDRs, the underlay gateway, the
LoadBalancer pool) so every later layer reads the same numbers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from netsim import naming
from netsim.model.autoscaling import AutoscalingSpec, parse_autoscaling
from netsim.model.errors import Source, SpecError
from netsim.model.hosts import MachineSpec, parse_hosts, place_nodes
from netsim.model.kubeproxy import KubeProxySpec, parse_kube_proxy
from netsim.model.meta import DNS1123_LABEL, Fields
from netsim.model.security import MAX_ID
from netsim.model.selectors import validate_labels
from netsim.model.storespec import StoreSpec, parse_store
from netsim.model.timing import TimingSpec, parse_timing

API_VERSION = "netsim/v1alpha1"
PLUGINS = ("flannel", "calico", "canal")
BACKENDS = {"flannel": ("vxlan", "host-gw"), "canal": ("vxlan", "host-gw"), "calico": ("vxlan", "direct")}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
CNI_MODES = ("inprocess", "exec")
# Cluster names end up in namespace names and file paths (netsim.naming owns the rule).
MAX_CLUSTER_NAME = naming.MAX_CLUSTER_NAME
MAX_NODES = 1000
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""
    # When a NoExecute taint was added (core/v1 Taint.timeAdded, RFC 3339 as stored): the taint manager counts
    # tolerationSeconds from it. Not part of a taint's identity (a Cluster spec's taints have none).
    time_added: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    host: str | None = None  # the spec.hosts entry it runs on; None when the cluster has no hosts


@dataclass(frozen=True)
class HostSpec:
    """An external host: a namespace on the underlay, outside the cluster."""

    name: str
    ip: str
    prefixlen: int  # of its own network (== the node network's when it sits on it)
    on_node_network: bool


@dataclass(frozen=True)
class NetworkSpec:
    plugin: str = "flannel"
    backend: str = "vxlan"
    pod_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    service_cidr: str = "10.96.0.0/12"
    node_network: str = "172.18.0.0/16"
    mtu: int = 1500
    load_balancer_pool: str | None = None
    cni_mode: str = "inprocess"
    # calico's IP pool `natOutgoing` (calico-node's CALICO_IPV4POOL_NAT_OUTGOING, on in calico's manifests):
    # felix masquerades pod traffic leaving the pool. Only calico has it; flannel/canal masquerade with
    # flanneld's --ip-masq instead.
    nat_outgoing: bool = True


NOBODY = 65534


@dataclass(frozen=True)
class ContainerDefaults:
    """Who a container `command` runs as when its securityContext names no user: in Kubernetes that is the
    image's USER; netsim has no images, so it is this (by default nobody, never root unless asked)."""

    run_as_user: int = NOBODY
    run_as_group: int = NOBODY


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: tuple[NodeSpec, ...]
    network: NetworkSpec = NetworkSpec()
    dns_domain: str = "cluster.local"
    external_hosts: tuple[HostSpec, ...] = ()
    source: str = "<default>"
    kube_proxy: KubeProxySpec = KubeProxySpec()
    containers: ContainerDefaults = ContainerDefaults()
    autoscaling: AutoscalingSpec = AutoscalingSpec()
    timing: TimingSpec = TimingSpec()
    store: StoreSpec = StoreSpec()
    hosts: tuple[MachineSpec, ...] = ()  # spec.hosts: the machines the nodes run on (none: this one)

    # -- hosts -------------------------------------------------------------------------------------
    def host_of(self, node: str) -> str | None:
        """The host node `node` runs on (None without spec.hosts)."""
        return self.nodes[self.node_index(node)].host

    def nodes_on(self, host: str) -> tuple[NodeSpec, ...]:
        """The nodes of host `host`, in spec order (what `netsim agent --host` drives)."""
        return tuple(n for n in self.nodes if n.host == host)

    @property
    def underlay_mtu(self) -> int:
        """The MTU of the node network. network.mtu is that of the physical network; with several hosts
        the node network rides VXLAN over it, whose 50 bytes (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN
        8) come off the underlay, as flannel takes them off its pod MTU (pkg/backend/vxlan: MTU = the
        uplink's MTU - 50). The CNI plugins derive the pod MTU from the node's eth0, so pods lose the
        overhead of both tunnels consistently."""
        return self.network.mtu - 50 if len(self.hosts) > 1 else self.network.mtu

    # -- derived addresses -------------------------------------------------------------------------
    @property
    def node_net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.network.node_network)

    @property
    def gateway_ip(self) -> str:
        """The underlay's router (in the fabric namespace): first address of the node network."""
        return str(self.node_net.network_address + 1)

    def node_ip(self, index: int) -> str:
        """Nodes take addresses after the gateway: .2, .3, ..."""
        return str(self.node_net.network_address + 2 + index)

    def node_pod_cidr(self, index: int) -> str:
        """The index-th subnet of the pod CIDR, as kube-controller-manager's range allocator assigns."""
        net = ipaddress.IPv4Network(self.network.pod_cidr)
        size = 2 ** (32 - self.network.node_cidr_mask_size)
        return f"{net.network_address + index * size}/{self.network.node_cidr_mask_size}"

    @property
    def lb_pool(self) -> str | None:
        if self.network.load_balancer_pool:
            return self.network.load_balancer_pool
        net = self.node_net
        if net.prefixlen > 22:
            return None
        # The top /24 of the node network, announced on the underlay as MetalLB's L2 mode would (computed,
        # not listed: admission asks for it on every apply, and a /16 has 256 of them).
        return f"{net.network_address + net.num_addresses - 256}/24"

    def node_index(self, name: str) -> int:
        for i, n in enumerate(self.nodes):
            if n.name == name:
                return i
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        nodes = [{"name": n.name, **({"labels": n.labels} if n.labels else {}),
                  **({"taints": [{"key": t.key, "effect": t.effect, "value": t.value} for t in n.taints]}
                     if n.taints else {}),
                  **({"host": n.host} if n.host else {})} for n in self.nodes]
        net = self.network
        return {
            "apiVersion": API_VERSION, "kind": "Cluster", "metadata": {"name": self.name},
            "spec": {
                "nodes": nodes,
                "network": {"plugin": net.plugin, "backend": net.backend, "podCIDR": net.pod_cidr,
                            "nodeCIDRMaskSize": net.node_cidr_mask_size, "serviceCIDR": net.service_cidr,
                            "nodeNetwork": net.node_network, "mtu": net.mtu, "cniMode": net.cni_mode,
                            **({"natOutgoing": net.nat_outgoing} if net.plugin == "calico" else {}),
                            **({"loadBalancerPool": net.load_balancer_pool} if net.load_balancer_pool else {})},
                "dns": {"domain": self.dns_domain},
                "containerDefaults": {"runAsUser": self.containers.run_as_user,
                                      "runAsGroup": self.containers.run_as_group},
                "externalHosts": [{"name": h.name, "ip": h.ip if h.on_node_network else f"{h.ip}/{h.prefixlen}"}
                                  for h in self.external_hosts],
                **({"kubeProxy": kp} if (kp := self.kube_proxy.to_dict()) else {}),
                **({"autoscaling": a} if (a := self.autoscaling.to_dict()) else {}),
                **({"timing": t} if (t := self.timing.to_dict()) != "instant" else {}),
                **({"store": st} if (st := self.store.to_dict()) else {}),
                **({"hosts": [h.to_dict() for h in self.hosts]} if self.hosts else {}),
            },
        }


def default_cluster(name: str = "demo") -> ClusterSpec:
    """What `netsim up` builds with no file: 3 nodes, flannel over VXLAN, one external client."""
    return parse_cluster({
        "apiVersion": API_VERSION, "kind": "Cluster", "metadata": {"name": name},
        "spec": {"nodes": 3, "externalHosts": [{"name": "client", "ip": "203.0.113.10"}]},
    }, Source("<default>"))


def load_cluster_file(path: str, name_override: str | None = None) -> ClusterSpec:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", source=Source(path)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", source=Source(path)) from None
    return parse_cluster(doc, Source(path), name_override=name_override)


def _network(value: str, f: Fields, key: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise f.error(key, f"{value!r} is not a valid IPv4 CIDR ({exc})") from None
    return net


cluster_name_problem = naming.cluster_name_problem  # defined beside the names it checks (netsim.state uses it)


def parse_cluster(doc: Any, source: Source, *, name_override: str | None = None) -> ClusterSpec:
    """Validate a Cluster document; raises SpecError naming the field at the first problem."""
    if not isinstance(doc, Mapping):
        raise SpecError("a Cluster spec must be a YAML mapping", source=source)
    top = Fields(doc, source=source, obj="Cluster")
    api = top.str("apiVersion", required=True)
    if api != API_VERSION:
        raise top.error("apiVersion", f"must be {API_VERSION}, got {api!r}")
    kind = top.str("kind", required=True)
    if kind != "Cluster":
        raise top.error("kind", f"must be Cluster, got {kind!r}")
    md = top.map("metadata") or Fields({}, source=source, obj="Cluster", path="metadata")
    name = name_override or md.str("name", "netsim")
    problem = cluster_name_problem(name)
    if problem:
        raise md.error("name", problem)
    obj = f"Cluster {name}"
    spec = top.map("spec") or Fields({}, source=source, obj=obj, path="spec")
    spec.obj = obj
    spec.reject_unknown({"nodes", "network", "dns", "externalHosts", "kubeProxy", "containerDefaults", "autoscaling",
                        "timing", "store", "hosts"})

    nodes = _parse_nodes(spec, source, obj)
    network = _parse_network(spec, source, obj)
    machines = parse_hosts(spec, reserved=[(network.pod_cidr, "pod CIDR"), (network.service_cidr, "service CIDR"),
                                           (network.node_network, "node network")])
    placed = place_nodes(spec, [n.host for n in nodes], machines)
    nodes = tuple(NodeSpec(n.name, n.labels, n.taints, h) for n, h in zip(nodes, placed, strict=True))
    dns = spec.map("dns")
    domain = "cluster.local"
    if dns:
        dns.reject_unknown({"domain"})
        domain = dns.str("domain", "cluster.local")
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", domain):
            raise dns.error("domain", f"{domain!r} is not a valid DNS domain")
    kp = spec.map("kubeProxy")
    kube_proxy = parse_kube_proxy(kp) if kp is not None else KubeProxySpec()
    cluster = ClusterSpec(name=name, nodes=nodes, network=network, dns_domain=domain, source=source.file)
    hosts = _parse_hosts(spec, cluster)
    cluster = ClusterSpec(name=name, nodes=nodes, network=network, dns_domain=domain, external_hosts=hosts,
                          source=source.file, kube_proxy=kube_proxy, containers=_parse_container_defaults(spec),
                          autoscaling=parse_autoscaling(a) if (a := spec.map("autoscaling")) is not None
                          else AutoscalingSpec(), timing=parse_timing(spec),
                          store=parse_store(st) if (st := spec.map("store")) is not None else StoreSpec(),
                          hosts=machines)
    _check_address_plan(cluster, spec)
    return cluster


def _parse_container_defaults(spec: Fields) -> ContainerDefaults:
    f = spec.map("containerDefaults")
    if f is None:
        return ContainerDefaults()
    f.reject_unknown({"runAsUser", "runAsGroup"})
    uid = f.int("runAsUser", NOBODY, minimum=0, maximum=MAX_ID)
    gid = f.int("runAsGroup", NOBODY, minimum=0, maximum=MAX_ID)
    assert uid is not None and gid is not None
    return ContainerDefaults(uid, gid)


def _parse_nodes(spec: Fields, source: Source, obj: str) -> tuple[NodeSpec, ...]:
    raw = spec.get("nodes", 3)
    if isinstance(raw, bool) or not isinstance(raw, (int, list)):
        raise spec.error("nodes", "must be a node count or a list of nodes")
    if isinstance(raw, int):
        if not 1 <= raw <= MAX_NODES:
            raise spec.error("nodes", f"must be between 1 and {MAX_NODES}, got {raw}")
        return tuple(NodeSpec(f"node-{i + 1}") for i in range(raw))
    if not 1 <= len(raw) <= MAX_NODES:
        raise spec.error("nodes", f"must list between 1 and {MAX_NODES} nodes")
    nodes, seen = [], set()
    for i, item in enumerate(raw):
        nf = spec.sub(item, f".nodes[{i}]")
        nf.reject_unknown({"name", "labels", "taints", "zone", "region", "host"})
        nname = nf.str("name", required=True)
        if len(nname) > 63 or not DNS1123_LABEL.match(nname):
            raise nf.error("name", f"{nname!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-')")
        if nname in seen:
            raise nf.error("name", f"duplicate node name {nname!r}")
        seen.add(nname)
        labels = validate_labels(nf.get("labels"), source=source, obj=obj, path=f"spec.nodes[{i}].labels")
        # zone/region: what a cloud provider reports for the machine; they become the well-known topology
        # labels (a label given as well must agree), which EndpointSlice hints and affinities read.
        for key, label in (("zone", ZONE_LABEL), ("region", REGION_LABEL)):
            value = nf.str(key)
            if value is None:
                continue
            if labels.get(label, value) != value:
                raise nf.error(key, f"{value!r} disagrees with the label {label}={labels[label]!r}")
            validate_labels({label: value}, source=source, obj=obj, path=f"spec.nodes[{i}].{key}")
            labels = {**labels, label: value}
        taints = []
        for j, t in enumerate(nf.list("taints")):
            tf = nf.sub(t, f".taints[{j}]")
            tf.reject_unknown({"key", "value", "effect"})
            key = tf.str("key", required=True)
            effect = tf.str("effect", required=True, choices=TAINT_EFFECTS)
            taints.append(Taint(key=key, effect=effect, value=tf.str("value", "")))
        nodes.append(NodeSpec(nname, labels, tuple(taints), nf.str("host")))
    return tuple(nodes)


def _parse_network(spec: Fields, source: Source, obj: str) -> NetworkSpec:
    nf = spec.map("network") or Fields({}, source=source, obj=obj, path="spec.network")
    nf.reject_unknown({"plugin", "backend", "podCIDR", "nodeCIDRMaskSize", "serviceCIDR", "nodeNetwork",
                       "mtu", "loadBalancerPool", "cniMode", "natOutgoing"})
    plugin = nf.str("plugin", "flannel", choices=PLUGINS)
    backend = nf.str("backend", "vxlan")
    if backend not in BACKENDS[plugin]:
        raise nf.error("backend", f"{backend!r} is not a {plugin} backend; choose one of "
                                  f"{', '.join(BACKENDS[plugin])}")
    if nf.has("natOutgoing") and plugin != "calico":
        raise nf.error("natOutgoing", f"is a calico IP pool setting; {plugin} masquerades pod traffic with "
                                      "flanneld's --ip-masq")
    d = NetworkSpec()
    net = NetworkSpec(
        plugin=plugin, backend=backend,
        pod_cidr=nf.str("podCIDR", d.pod_cidr),
        node_cidr_mask_size=nf.int("nodeCIDRMaskSize", d.node_cidr_mask_size, minimum=8, maximum=28),
        service_cidr=nf.str("serviceCIDR", d.service_cidr),
        node_network=nf.str("nodeNetwork", d.node_network),
        mtu=nf.int("mtu", d.mtu, minimum=1280, maximum=9000),
        load_balancer_pool=nf.str("loadBalancerPool"),
        cni_mode=nf.str("cniMode", "inprocess", choices=CNI_MODES),
        nat_outgoing=bool(nf.bool("natOutgoing", True)),
    )
    pod = _network(net.pod_cidr, nf, "podCIDR")
    if net.node_cidr_mask_size < pod.prefixlen:
        raise nf.error("nodeCIDRMaskSize", f"/{net.node_cidr_mask_size} is larger than the pod CIDR "
                                           f"{net.pod_cidr}")
    svc = _network(net.service_cidr, nf, "serviceCIDR")
    if svc.prefixlen > 28:
        raise nf.error("serviceCIDR", f"{net.service_cidr} is too small: the cluster DNS service takes the "
                                      "10th address")
    node = _network(net.node_network, nf, "nodeNetwork")
    if node.prefixlen > 29:
        raise nf.error("nodeNetwork", f"{net.node_network} is too small")
    for key, a, b in (("serviceCIDR", svc, pod), ("nodeNetwork", node, pod), ("nodeNetwork", node, svc)):
        if a.overlaps(b):
            raise nf.error(key, f"{a} overlaps {b}")
    if net.load_balancer_pool:
        pool = _network(net.load_balancer_pool, nf, "loadBalancerPool")
        if not pool.subnet_of(node):
            raise nf.error("loadBalancerPool", f"{pool} must lie inside the node network {node} "
                                               "(its IPs are announced on the underlay)")
    return net


def _parse_hosts(spec: Fields, cluster: ClusterSpec) -> tuple[HostSpec, ...]:
    hosts, seen = [], {n.name for n in cluster.nodes}
    node_net = cluster.node_net
    for i, item in enumerate(spec.list("externalHosts")):
        hf = spec.sub(item, f".externalHosts[{i}]")
        hf.reject_unknown({"name", "ip"})
        hname = hf.str("name", required=True)
        if len(hname) > 63 or not DNS1123_LABEL.match(hname):
            raise hf.error("name", f"{hname!r} must be a lowercase RFC 1123 label")
        if hname in seen:
            raise hf.error("name", f"{hname!r} is already the name of a node or another host")
        seen.add(hname)
        raw_ip = hf.str("ip", required=True)
        try:
            iface = ipaddress.IPv4Interface(raw_ip)
        except ValueError:
            raise hf.error("ip", f"{raw_ip!r} is not an IPv4 address") from None
        ip = iface.ip
        if ip in node_net:
            hosts.append(HostSpec(hname, str(ip), node_net.prefixlen, True))
            continue
        # Its own network: /24 unless given; the fabric routes between it and the underlay.
        prefix = iface.network.prefixlen if "/" in raw_ip else 24
        own = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
        if ip in (own.network_address, own.broadcast_address, own.network_address + 1):
            raise hf.error("ip", f"{ip} is reserved in {own} (network, broadcast or the router's .1)")
        for other in ((cluster.network.pod_cidr, "pod CIDR"), (cluster.network.service_cidr, "service CIDR")):
            if own.overlaps(ipaddress.IPv4Network(other[0])):
                raise hf.error("ip", f"{own} overlaps the {other[1]} {other[0]}")
        if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
            raise hf.error("ip", f"{ip} cannot be a host address")
        hosts.append(HostSpec(hname, str(ip), prefix, False))
    return tuple(hosts)


def _check_address_plan(cluster: ClusterSpec, spec: Fields) -> None:
    """Enough room for every node, host and pool; no two hosts on one address."""
    n = len(cluster.nodes)
    pod = ipaddress.IPv4Network(cluster.network.pod_cidr)
    subnets = 2 ** (cluster.network.node_cidr_mask_size - pod.prefixlen)
    if subnets < n:
        raise spec.error("network.podCIDR", f"{pod} holds only {subnets} /{cluster.network.node_cidr_mask_size} "
                                            f"node subnets, fewer than the {n} nodes")
    node_net = cluster.node_net
    last_node = ipaddress.IPv4Address(cluster.node_ip(n - 1))
    if last_node >= node_net.broadcast_address:
        raise spec.error("network.nodeNetwork", f"{node_net} has no room for {n} nodes")
    pool = ipaddress.IPv4Network(cluster.lb_pool) if cluster.lb_pool else None
    if pool is not None and last_node in pool:
        raise spec.error("network.loadBalancerPool", f"{pool} overlaps the node addresses "
                                                     f"{cluster.node_ip(0)}-{last_node}")
    taken: dict[str, str] = {cluster.gateway_ip: "the underlay gateway"}
    taken.update({cluster.node_ip(i): f"node {nd.name}" for i, nd in enumerate(cluster.nodes)})
    for i, h in enumerate(cluster.external_hosts):
        if h.ip in taken:
            raise spec.error(f"externalHosts[{i}].ip", f"{h.ip} is already used by {taken[h.ip]}")
        if pool is not None and ipaddress.IPv4Address(h.ip) in pool:
            raise spec.error(f"externalHosts[{i}].ip", f"{h.ip} lies in the LoadBalancer pool {pool}")
        taken[h.ip] = f"host {h.name}"
        own = ipaddress.IPv4Network(f"{h.ip}/{h.prefixlen}", strict=False)
        if cluster.hosts and own.overlaps(cluster.hosts[0].network):
            raise spec.error(f"externalHosts[{i}].ip", f"{own} overlaps the hosts' network "
                                                       f"{cluster.hosts[0].network} (spec.hosts)")
