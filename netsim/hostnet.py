"""Emulated hosts (spec.hosts): a namespace per machine on a shared physical segment, and one L2 underlay
across them, joined by VXLAN.

Each emulated host `netsim-<c>.machine.<h>` stands for a machine's root namespace: `eth0` is its physical
interface (the host's address, on the `lan` bridge of `netsim-<c>.lan`, the machine room's switch), and an
`underlay` bridge is that machine's fabric, on which its nodes' `eth0`s hang (as kind's nodes hang on the
docker bridge of the machine that runs them). The fabrics are joined into one L2 segment by a VXLAN device
per host (`vxunderlay`, on `eth0`, a port of the host's `underlay` bridge) with one all-zeros FDB entry per
other host: broadcast and unknown unicast go to every other host (head-end replication) and the device
learns where a MAC lives from what arrives, the flood-and-learn setup of the kernel's
Documentation/networking/vxlan.rst (`bridge fdb append to 00:00:00:00:00:00 dst <peer>`), as an EVPN-less
VXLAN fabric stretches one L2 segment over routed hosts.

Why L2 and not routed: node IPs stay in one subnet, so everything that needs L2 adjacency between nodes
keeps working unchanged: flannel's host-gw backend ("host-gw requires direct layer2 connectivity between
hosts", flannel Documentation/backends.md) and calico's direct routes (without BGP or IPIP/VXLAN
CrossSubnet, calico routes node to node only on one subnet, calico docs "Configure overlay networking"),
MetalLB's layer-2 announcements (ARP for a LoadBalancer IP must reach every node), and the gateway
address. A routed underlay (a subnet per host, routes between hosts) is what multi-rack clusters run, but it
would need calico's BGP or CrossSubnet encapsulation, which netsim does not emulate.

The cluster's fabric namespace (gateway, external hosts, LoadBalancer routes) stays as it is and plugs into
the first host's underlay bridge through a trunk veth, as a machine room's router sits on one switch port.
The node network then rides VXLAN over the hosts' network, so its MTU is 50 bytes less
(ClusterSpec.underlay_mtu).
"""

from __future__ import annotations

from netsim import naming
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec

LAN_BRIDGE = "lan"
PHYS = "eth0"  # a host's physical interface
UNDERLAY_VXLAN = "vxunderlay"
# The hosts' VXLAN: IANA's port (RFC 7348) and a VNI of its own; it lives in the machine namespaces, so it
# never meets flannel's (VNI 1, port 8472) or calico's (VNI 4096, port 4789) devices in the node namespaces.
UNDERLAY_VNI = 4242
UNDERLAY_PORT = 4789
FLOOD_MAC = "00:00:00:00:00:00"
TRUNK_FABRIC = "t0"  # the fabric's end of the trunk to the first host's underlay bridge
TRUNK_MACHINE = "fabric"  # the first host's end
SWITCH_SYSCTLS = (
    # A machine here only switches its node network and sends its VXLAN: no routing, and bridged frames
    # are not for iptables (as in the fabric namespace).
    ("net.ipv4.ip_forward", "0"),
    ("net.bridge.bridge-nf-call-iptables", "0"),
)


def build_lan(k: Kernel, spec: ClusterSpec) -> str:
    """The hosts' physical segment: one bridge, no address (the switch of the machine room)."""
    ns = naming.lan_ns(spec.name)
    k.netns_create(ns)
    k.sysctl_set(ns, "net.bridge.bridge-nf-call-iptables", "0")
    k.bridge_add(ns, LAN_BRIDGE, mtu=spec.network.mtu)
    return ns


def add_machine(k: Kernel, spec: ClusterSpec, index: int) -> dict:
    """Emulated host `spec.hosts[index]`: its namespace, physical interface and underlay bridge (and, when
    there are other hosts, its VXLAN port into the shared underlay). Returns its record for the state file."""
    host = spec.hosts[index]
    ns = naming.machine_ns(spec.name, host.name)
    lan = naming.lan_ns(spec.name)
    k.netns_create(ns)
    for key, value in SWITCH_SYSCTLS:
        k.sysctl_set(ns, key, value)
    port = naming.lan_port_for_machine(index)
    k.veth_add(lan, port, ns, PHYS, mtu=spec.network.mtu, up=False)
    k.link_set(lan, port, master=LAN_BRIDGE, up=True)
    k.addr_add(ns, PHYS, f"{host.address}/{host.prefixlen}")
    k.link_set(ns, PHYS, up=True)
    k.bridge_add(ns, naming.UNDERLAY_BRIDGE, mtu=spec.underlay_mtu)
    if len(spec.hosts) > 1:
        k.vxlan_add(ns, UNDERLAY_VXLAN, vni=UNDERLAY_VNI, dev=PHYS, local=host.address, port=UNDERLAY_PORT,
                    learning=True, mtu=spec.underlay_mtu, up=False)
        k.link_set(ns, UNDERLAY_VXLAN, master=naming.UNDERLAY_BRIDGE, up=True)
    if index == 0:
        fabric = naming.fabric_ns(spec.name)
        k.veth_add(fabric, TRUNK_FABRIC, ns, TRUNK_MACHINE, mtu=spec.underlay_mtu, up=False)
        k.link_set(fabric, TRUNK_FABRIC, master=naming.UNDERLAY_BRIDGE, up=True)
        k.link_set(ns, TRUNK_MACHINE, master=naming.UNDERLAY_BRIDGE, up=True)
    return {"name": host.name, "address": host.address, "netns": ns}


def join_underlay(k: Kernel, spec: ClusterSpec) -> int:
    """Every host floods to every other (one all-zeros FDB entry per peer): one L2 underlay. Returns the
    number of entries written."""
    if len(spec.hosts) < 2:
        return 0

    def program() -> int:
        count = 0
        for me in spec.hosts:
            ns = naming.machine_ns(spec.name, me.name)
            for peer in spec.hosts:
                if peer.name != me.name:
                    k.fdb_append(ns, UNDERLAY_VXLAN, FLOOD_MAC, peer.address)
                    count += 1
        return count

    return k.batch(program)


def node_switch(spec: ClusterSpec, host: str | None) -> str:
    """The namespace whose underlay bridge a node's uplink plugs into: its host's, or the cluster fabric's."""
    return naming.machine_ns(spec.name, host) if host else naming.fabric_ns(spec.name)
