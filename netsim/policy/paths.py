"""Which source address a packet from a node or an external host carries where NetworkPolicy judges it.

Pod-to-pod traffic keeps the source pod's IP all the way. Traffic that starts outside the pod network does
not: the kernel picks a source address by route, kube-proxy and flanneld masquerade, and the overlay
decides which device a packet leaves by. ipBlock peers match whatever address the packet has when the
destination node's policy chain sees it, so the verifier needs that address per path. This module is the
model of it (pure); `netsim verify` checks it against the kernel: the workload server reports the client
address it saw, and conntrack on the ingress node the masquerade it did.

Paths and what the kernel does on each (Linux 6.x, iptables via nf_tables):

1. A node's own packet to a pod on the same node: the socket's source is picked by the route to the pod
   (net/ipv4/route.c, `ip_route_output_key` -> `inet_select_addr` in net/ipv4/devinet.c). flannel routes
   its lease `dev cni0` and cni0 holds the lease's .1 (flannel's bridge, flannel.md), so the address is
   cni0's. calico and canal route each pod `dev caliXXX scope link`; a cali veth has no IPv4 address, so
   `inet_select_addr` falls back to the first global address of the namespace: the node IP on eth0.
   The packet goes OUTPUT -> POSTROUTING, never FORWARD, and calico's cali-OUTPUT returns for `-o cali+`
   (felix rule_defs: host -> local workload is not policed), so no policy judges it.
2. A node's own packet to a pod on another node: the route to the remote block/lease goes over the
   overlay device with the VXLAN backends (calico: `via <tunnel> dev vxlan.calico onlink`, felix
   vxlan_mgr.go; flannel/canal: `via <lease>.0 dev flannel.1 onlink`, flannel backend/vxlan), so the
   source is that device's address: calico's vxlan tunnel address (IPv4VXLANTunnelAddr), flannel's
   `<lease>.0`. With host-gw/direct routing the route is `via <node IP> dev eth0`: the node IP. The
   destination node forwards it (FORWARD) into cali-to-wl-dispatch: it is policed with that address.
3. A node to a ClusterIP: kube-proxy DNATs in OUTPUT and masquerades sources outside the cluster CIDR
   (`! -s <clusterCIDR> -j KUBE-MARK-MASQ` in KUBE-SVC-*, kubernetes pkg/proxy/iptables/proxier.go);
   MASQUERADE picks the out device's address the same way (nf_nat_masquerade_ipv4 -> inet_select_addr),
   so the packet looks exactly as in 1 and 2.
4. An external host to a NodePort (or LoadBalancer IP) on node N, endpoint E:
   - externalTrafficPolicy Cluster: KUBE-EXT-* marks every packet for masquerade (proxier.go "masquerade
     traffic for ... external destinations"); DNAT happens in PREROUTING, MASQUERADE in POSTROUTING.
     If E is on N, the policy chain (filter FORWARD) runs *between* them: calico judges the host's own
     address, and the pod then sees the masqueraded one (1's address on N). If E is elsewhere, N
     masquerades before the packet leaves, so E's node judges N's address of path 2, and the pod sees it.
   - externalTrafficPolicy Local: N only sends to its own endpoints and does not masquerade external
     clients (the KUBE-EXT chain jumps to KUBE-SVL-* without KUBE-MARK-MASQ): judged and seen with the
     host's address.
   Pod IPs themselves are not routed outside the cluster (the fabric routes the node network and the
   hosts' subnets only, as a data centre network in front of an overlay does), so hosts reach pods only
   through Services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Devices whose address a node uses towards pods, per plugin (what `ip -o -4 addr` shows in a node netns).
TUNNEL_DEVICES = ("vxlan.calico", "flannel.1")
BRIDGE_DEVICE = "cni0"
UNDERLAY_DEVICE = "eth0"


@dataclass(frozen=True)
class NodeAddresses:
    """A node's addresses that matter for paths into the pod network."""

    name: str
    ip: str                    # eth0, the node IP
    tunnel: str | None = None  # vxlan.calico / flannel.1
    bridge: str | None = None  # cni0 (flannel)

    @classmethod
    def from_devices(cls, name: str, devices: Mapping[str, str]) -> NodeAddresses:
        """From device -> IPv4 address (the first of each device, without prefix length)."""
        tunnel = next((devices[d] for d in TUNNEL_DEVICES if d in devices), None)
        return cls(name, devices.get(UNDERLAY_DEVICE, ""), tunnel, devices.get(BRIDGE_DEVICE))


@dataclass(frozen=True)
class Arrival:
    """How a packet reaches a destination pod. `policed` False: no policy chain judges it (host -> local
    pod); `judged` is the source address the destination node's policy sees, `seen` what the pod sees."""

    policed: bool
    judged: str
    seen: str
    masqueraded: bool = False


def node_address_towards(plugin: str, backend: str, node: NodeAddresses, *, local: bool) -> str:
    """The source address node `node` gives a packet to a pod on itself (`local`) or on another node
    (paths 1 and 2 above); also the address MASQUERADE picks there."""
    if local:
        if plugin == "flannel" and node.bridge:
            return node.bridge
        return node.ip
    if backend == "vxlan" and node.tunnel:
        return node.tunnel
    return node.ip


def from_node(plugin: str, backend: str, node: NodeAddresses, dst_node: str) -> Arrival:
    """A node's own packet to a pod on `dst_node`, directly or via a ClusterIP (paths 1-3)."""
    local = dst_node == node.name
    addr = node_address_towards(plugin, backend, node, local=local)
    return Arrival(not local, addr, addr)


def from_host_via_node(plugin: str, backend: str, host_ip: str, ingress: NodeAddresses, dst_node: str, *,
                       external_policy_local: bool) -> Arrival:
    """An external host's packet to a NodePort/LoadBalancer IP entering at `ingress`, DNATed to a pod on
    `dst_node` (path 4)."""
    if external_policy_local:
        return Arrival(True, host_ip, host_ip)
    local = dst_node == ingress.name
    masq = node_address_towards(plugin, backend, ingress, local=local)
    return Arrival(True, host_ip if local else masq, masq, masqueraded=True)
