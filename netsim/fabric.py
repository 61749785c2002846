"""The node network: an underlay switch in the fabric namespace, nodes and external hosts on it.

The fabric namespace holds the `underlay` bridge (the L2 segment nodes share, like kind's docker network)
and acts as the underlay's router: it owns the gateway address, and external hosts on their own subnets
hang off it on routed ports. Nodes get `eth0` on the bridge with their node IP and a default route via
the gateway, so NodePorts, external IPs and LoadBalancer IPs can be reached from "outside" while no packet
ever leaves the cluster's namespaces.
"""

from __future__ import annotations

import ipaddress

from netsim import hostnet, naming
from netsim.kernel.api import Kernel, KernelError, Route
from netsim.model.cluster import ClusterSpec, HostSpec, NodeSpec
from netsim.model.errors import MissingDependency
from netsim.proxy.config import proxy_config

# What a Kubernetes node needs (kubeadm's preflight requires the first two; kube-proxy sets
# route_localnet for localhost NodePorts, and only for them: node_sysctls). rp_filter: kubeadm leaves it to the distribution, whose default
# (systemd's 50-default.conf) is loose mode 2 - which Calico also requires (it refuses strict mode 1).
NODE_SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.ipv4.conf.all.route_localnet", "1"),
    ("net.ipv4.conf.all.rp_filter", "2"),
    ("net.ipv4.conf.default.rp_filter", "2"),
)
FABRIC_SYSCTLS = (
    ("net.ipv4.ip_forward", "1"),
    # The underlay is a plain switch: bridged frames are not for iptables there.
    ("net.bridge.bridge-nf-call-iptables", "0"),
)


def node_sysctls(spec: ClusterSpec) -> tuple[tuple[str, str], ...]:
    """NODE_SYSCTLS, without route_localnet when kube-proxy's localhost NodePorts are off: kube-proxy sets
    it only when they are on (pkg/proxy/iptables/proxier.go NewProxier, "Setting route_localnet=1 to allow
    node-ports on localhost"), so with localhostNodePorts false (or nodePortAddresses without a loopback
    CIDR) the node keeps the kernel's 0."""
    if proxy_config(spec).effective_localhost_nodeports():
        return NODE_SYSCTLS
    return tuple(kv for kv in NODE_SYSCTLS if kv[0] != "net.ipv4.conf.all.route_localnet")


def build_fabric(k: Kernel, spec: ClusterSpec) -> str:
    ns = naming.fabric_ns(spec.name)
    k.netns_create(ns)
    for key, value in FABRIC_SYSCTLS:
        k.sysctl_set(ns, key, value)
    k.bridge_add(ns, naming.UNDERLAY_BRIDGE, mtu=spec.underlay_mtu)
    k.addr_add(ns, naming.UNDERLAY_BRIDGE, f"{spec.gateway_ip}/{spec.node_net.prefixlen}")
    return ns


def check_vxlan(k: Kernel, spec: ClusterSpec) -> None:
    """Fail early and clearly if the kernel cannot make VXLAN devices (the overlay backends need them)."""
    ns = naming.fabric_ns(spec.name)
    try:
        k.vxlan_add(ns, "netsim-vxchk", vni=1, dev=naming.UNDERLAY_BRIDGE, local=spec.gateway_ip, port=4789,
                    up=False)
    except KernelError as exc:
        raise MissingDependency(f"this kernel cannot create VXLAN devices ({exc}); the {spec.network.plugin} "
                                "vxlan backend needs CONFIG_VXLAN (modprobe vxlan), or choose backend "
                                f"{'host-gw' if spec.network.plugin != 'calico' else 'direct'}") from None
    k.link_del(ns, "netsim-vxchk")


def add_node(k: Kernel, spec: ClusterSpec, index: int, node: NodeSpec) -> dict:
    """Create one node namespace on the underlay (its host's underlay bridge with spec.hosts, else the
    fabric's); returns its record for the state file."""
    switch = hostnet.node_switch(spec, node.host)
    ns = naming.node_ns(spec.name, node.name)
    ip = spec.node_ip(index)
    k.netns_create(ns)
    for key, value in node_sysctls(spec):
        k.sysctl_set(ns, key, value)
    port = naming.fabric_port_for_node(index)
    k.veth_add(switch, port, ns, naming.UPLINK, mtu=spec.underlay_mtu, up=False)
    k.link_set(switch, port, master=naming.UNDERLAY_BRIDGE, up=True)
    k.addr_add(ns, naming.UPLINK, f"{ip}/{spec.node_net.prefixlen}")
    k.link_set(ns, naming.UPLINK, up=True)
    k.route_replace(ns, Route(dst="default", via=spec.gateway_ip))
    return {"name": node.name, "index": index, "ip": ip, "podCIDR": spec.node_pod_cidr(index), "netns": ns,
            "labels": dict(node.labels), "taints": [{"key": t.key, "effect": t.effect, "value": t.value} for t in node.taints],
            **({"host": node.host} if node.host else {})}


def node_port(spec: ClusterSpec, index: int) -> tuple[str, str]:
    """(namespace, interface) of the switch port of node `index`'s uplink: setting it down cuts the node
    off the underlay (`netsim node fail`)."""
    return hostnet.node_switch(spec, spec.nodes[index].host), naming.fabric_port_for_node(index)


def underlay_neighbours(k: Kernel, spec: ClusterSpec, nodes: list[dict], hosts: list[dict]) -> int:
    """PERMANENT neighbour entries on every node's eth0 for every other member of the node network (the
    other nodes, the gateway, external hosts on that segment), and on the fabric's bridge for the nodes.

    Why: the kernel's neighbour table is one for all namespaces of the machine, and dynamic entries count
    against `gc_thresh3` (1024 by default, set only in the root namespace, which netsim never changes).
    Nodes that all talk to each other (VXLAN, host-gw, NodePorts) learn N x (N - 1) underlay entries: at
    100 nodes about 9,900, and inserts fail with "neighbor table overflow", silently dropping traffic.
    PERMANENT entries are exempt from that count (net/core/neighbour.c, neigh_alloc's exempt_from_gc),
    as the pod-side entries the CNI plugins write already are. A real node would learn these by ARP; the
    answers are the same, so nothing a user sees changes. Returns the number of entries written."""
    fabric = naming.fabric_ns(spec.name)
    members: list[tuple[str, str, str]] = []  # (ip, mac, netns) of every device on the underlay segment
    for rec in nodes:
        link = k.link_get(rec["netns"], naming.UPLINK)
        if link is not None:
            members.append((rec["ip"], link.mac, rec["netns"]))
    for rec in hosts:
        if rec.get("gateway") == spec.gateway_ip:  # on the node network itself
            link = k.link_get(rec["netns"], naming.UPLINK)
            if link is not None:
                members.append((rec["ip"], link.mac, rec["netns"]))
    bridge = k.link_get(fabric, naming.UNDERLAY_BRIDGE)

    def program() -> int:
        count = 0
        node_ns = {rec["netns"] for rec in nodes}
        for ns in node_ns:
            if bridge is not None:
                k.neigh_replace(ns, naming.UPLINK, spec.gateway_ip, bridge.mac, permanent=True)
                count += 1
            for ip, mac, other in members:
                if other != ns:
                    k.neigh_replace(ns, naming.UPLINK, ip, mac, permanent=True)
                    count += 1
        for ip, mac, other in members:
            if other in node_ns:
                k.neigh_replace(fabric, naming.UNDERLAY_BRIDGE, ip, mac, permanent=True)
                count += 1
        return count

    return k.batch(program)


def external_segment(spec: ClusterSpec, net: ipaddress.IPv4Network) -> str:
    """The fabric bridge of an external subnet: `x0`, `x1`, ... in the order the spec first names them."""
    subnets: list[ipaddress.IPv4Network] = []
    for h in spec.external_hosts:
        if not h.on_node_network:
            n = ipaddress.IPv4Network(f"{h.ip}/{h.prefixlen}", strict=False)
            if n not in subnets:
                subnets.append(n)
    return f"x{subnets.index(net)}"


def add_host(k: Kernel, spec: ClusterSpec, index: int, host: HostSpec) -> dict:
    fabric = naming.fabric_ns(spec.name)
    ns = naming.host_ns(spec.name, host.name)
    port = naming.fabric_port_for_host(index)
    k.netns_create(ns)
    k.veth_add(fabric, port, ns, naming.UPLINK, mtu=spec.underlay_mtu, up=False)
    if host.on_node_network:
        k.link_set(fabric, port, master=naming.UNDERLAY_BRIDGE, up=True)
        gateway = spec.gateway_ip
    else:
        # Its own subnet, routed by the fabric (.1). Hosts sharing a subnet share one segment: a bridge per
        # subnet holds the router's address, so two hosts on 203.0.113.0/24 reach each other and the cluster.
        net = ipaddress.IPv4Network(f"{host.ip}/{host.prefixlen}", strict=False)
        gateway = str(net.network_address + 1)
        segment = external_segment(spec, net)
        if k.link_get(fabric, segment) is None:
            k.bridge_add(fabric, segment, mtu=spec.underlay_mtu)
            k.addr_add(fabric, segment, f"{gateway}/{host.prefixlen}")
        k.link_set(fabric, port, master=segment, up=True)
    k.addr_add(ns, naming.UPLINK, f"{host.ip}/{host.prefixlen}")
    k.link_set(ns, naming.UPLINK, up=True)
    k.route_replace(ns, Route(dst="default", via=gateway))
    return {"name": host.name, "ip": host.ip, "netns": ns, "gateway": gateway}
