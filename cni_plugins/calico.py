"""calico: the CNI plugin (routed veths, block IPAM) and the node daemon's routing side.

Upstream (see docs/reference/calico.md):
* CNI: `cni-plugin/pkg/plugin/plugin.go`, `cni-plugin/pkg/dataplane/linux/dataplane_linux.go` (via
  `routed_veth.py`), `cni-plugin/pkg/ipamplugin` with `libcalico-go/lib/ipam` (via `ipam/calico_ipam.py`);
* outgoing NAT: felix's masquerade manager for the pool's `natOutgoing` (see `calico_nat.py`);
* routing: felix `dataplane/linux/route_mgr.go` (blackhole route, proto 80, per local affine block),
  `dataplane/linux/vxlan_mgr.go` + `vxlanfdb/vxlan_fdb.go` (`vxlan.calico`, VNI 4096, port 4789, MTU
  uplink-50, tunnel IP from the node's block on the device, neighbour+FDB+onlink route per remote node);
  with BGP instead of VXLAN ("direct"), BIRD installs `<remote block> via <remote node IP> dev eth0`
  (proto bird, 12) on an L2-adjacent underlay.

Policy (`cali-*` chains) is rendered by netsim/policy/felix.py; this module only feeds it the node's
workload endpoints (`CalicoNodeDaemon.workload_endpoints()`).

Driving it:
    net = CalicoNetConf(pool="10.244.0.0/16", backend="vxlan")
    d = CalicoNodeDaemon(kernel, NodeContext(c, node, state_dir), net, node_ip)
    d.start()                          # claims the node's first block (+ tunnel IP for vxlan)
    d.sync(nodes)                      # nodes: every CalicoNode(name, ip); call on every change
    invoke(PLUGIN, "ADD", CniArgs(...K8S_POD_NAMESPACE/K8S_POD_NAME...), conf, kernel)
"""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cni_plugins import calico_nat
from cni_plugins.calico_delta import ROUTE_REFRESH_INTERVAL, apply_peers_delta, apply_routes_delta
from cni_plugins.common import NodeContext, kernel_factory, local_mac, node_context
from cni_plugins.ipam.calico_ipam import DEFAULT_BLOCK_SIZE, CalicoIpam
from cni_plugins.overlay import (
    VXLAN_OVERHEAD,
    VxlanDevice,
    VxlanPeer,
    ensure_vxlan_device,
    reconcile_routes,
    reconcile_vxlan_peers,
)
from cni_plugins.routed_veth import RoutedVethPlugin, WorkloadEndpoint, list_endpoints, pod_identity
from cni_plugins.skel import Invocation, plugin_main
from cni_plugins.types import ERR_INVALID_CONFIG, ERR_NOT_AVAILABLE, CniError
from netsim.kernel.api import Kernel, Route
from netsim.model.errors import SpecError

BACKENDS = ("vxlan", "direct")
VXLAN_DEVICE = "vxlan.calico"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
BLACKHOLE_PROTO = 80  # felix DefaultRouteProto
BIRD_PROTO = 12  # RTPROT_BIRD
TUNNEL_HANDLE = "vxlan-tunnel-addr-"


def ipam_dir(state_dir: str | Path) -> Path:
    """The cluster-wide IPAM store (blocks are shared by all nodes, like calico's datastore)."""
    return Path(state_dir) / "calico-ipam"


def tunnel_handle(node: str) -> str:
    return TUNNEL_HANDLE + node


def pod_handle(network: str, container_id: str, ifname: str) -> str:
    """`<network>.<containerID>`, the calico CNI handle; a second interface gets its own suffix."""
    return f"{network}.{container_id}" if ifname == "eth0" else f"{network}.{container_id}.{ifname}"


# --- the node daemon -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CalicoNetConf:
    pool: str = "10.244.0.0/16"
    block_size: int = DEFAULT_BLOCK_SIZE
    backend: str = "vxlan"
    vni: int = VXLAN_VNI
    port: int = VXLAN_PORT
    mtu: int | None = None  # None: uplink MTU (minus the VXLAN overhead for the vxlan backend)
    uplink: str = "eth0"
    nat_outgoing: bool = True  # the pool's natOutgoing (calico_nat.py)

    def pod_mtu(self, uplink_mtu: int) -> int:
        base = self.mtu or uplink_mtu
        return base - VXLAN_OVERHEAD if self.backend == "vxlan" else base


@dataclass(frozen=True)
class CalicoNode:
    name: str
    ip: str


@dataclass(frozen=True)
class CalicoNodeState:
    device: VxlanDevice | None
    peers: tuple[VxlanPeer, ...]
    blackholes: tuple[Route, ...]
    routes: tuple[Route, ...]  # direct backend


def vtep_mac(cluster: str, node: str) -> str:
    return local_mac(f"{cluster}/{node}/{VXLAN_DEVICE}")


def desired_state(net: CalicoNetConf, cluster: str, me: CalicoNode, nodes: Iterable[CalicoNode],
                  blocks: dict[str, str], tunnel_ips: dict[str, str], borrowed: dict[str, str],
                  uplink_mtu: int = 1500) -> CalicoNodeState:
    """Pure: what felix/BIRD program on `me` given the nodes, block affinities (cidr -> node), tunnel IPs
    (node -> ip) and borrowed addresses (ip -> node using it outside its own blocks)."""
    others = sorted((n for n in nodes if n.name != me.name), key=lambda n: n.name)
    key = lambda c: ipaddress.ip_network(c)  # noqa: E731
    mine = sorted((c for c, n in blocks.items() if n == me.name), key=key)
    blackholes = tuple(Route(dst=c, kind="blackhole", proto=BLACKHOLE_PROTO) for c in mine)

    def prefixes(node: str) -> tuple[str, ...]:
        own = sorted((c for c, n in blocks.items() if n == node), key=key)
        return tuple(own + sorted(f"{ip}/32" for ip, n in borrowed.items() if n == node))

    if net.backend == "direct":
        routes = tuple(Route(dst=p, via=n.ip, dev=net.uplink, proto=BIRD_PROTO)
                       for n in others for p in prefixes(n.name))
        return CalicoNodeState(None, (), blackholes, routes)
    device = None
    if me.name in tunnel_ips:
        device = VxlanDevice(VXLAN_DEVICE, net.vni, net.port, me.ip, net.uplink, net.pod_mtu(uplink_mtu),
                             vtep_mac(cluster, me.name), f"{tunnel_ips[me.name]}/32")
    peers = tuple(VxlanPeer(n.name, n.ip, tunnel_ips[n.name], vtep_mac(cluster, n.name), prefixes(n.name))
                  for n in others if n.name in tunnel_ips)
    return CalicoNodeState(device, peers, blackholes, ())


def routing_inputs(ipam: CalicoIpam) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Everything of the IPAM that a node's routes depend on (desired_state): block affinities (cidr ->
    node), VXLAN tunnel addresses (node -> ip) and borrowed addresses (ip -> node). A node's block and its
    tunnel address are claimed in two writes, so whoever caches routes on these must key on all three.
    One read of the IPAM's index (CalicoIpam.routing), whatever the number of pods: a tunnel address is a
    noted allocation (typed), a borrowed one too."""
    blocks, allocs = ipam.routing()
    tunnel_ips = {a.handle[len(TUNNEL_HANDLE):]: a.ip for a in allocs if a.handle.startswith(TUNNEL_HANDLE)}
    borrowed = {a.ip: a.attrs["node"] for a in allocs
                if a.attrs.get("node") and blocks.get(a.block) != a.attrs["node"]}
    return blocks, tunnel_ips, borrowed


class CalicoNodeDaemon:
    """calico-node for one node (felix routes + BIRD routes), reconciled against the Kernel."""

    def __init__(self, kernel: Kernel, ctx: NodeContext, net: CalicoNetConf, node_ip: str,
                 refresh_interval: float = ROUTE_REFRESH_INTERVAL):
        if net.backend not in BACKENDS:
            raise SpecError(f"calico backend {net.backend!r} is not supported (use vxlan or direct)",
                            field="spec.network.backend")
        self.kernel, self.ctx, self.net, self.node_ip = kernel, ctx, net, node_ip
        self.ipam = CalicoIpam(ipam_dir(ctx.state_dir), net.pool, net.block_size)
        self.refresh_interval = refresh_interval
        self._programmed: CalicoNodeState | None = None  # what the kernel holds since the last sync
        self._refreshed = 0.0  # monotonic time of the last full reconcile
        self._uplink_mtu: int | None = None

    def start(self) -> None:
        """Claim this node's first block and, for VXLAN, its tunnel address (calico-node startup)."""
        self.ipam.claim_block(self.ctx.node)
        if self.net.backend == "vxlan":
            self.ipam.auto_assign(self.ctx.node, tunnel_handle(self.ctx.node), {"node": self.ctx.node,
                                                                                 "type": "vxlanTunnelAddress"})

    def uplink_mtu(self) -> int:
        link = self.kernel.link_get(self.ctx.node_ns, self.net.uplink)
        return link.mtu if link is not None else 1500

    def state(self, nodes: Iterable[CalicoNode], uplink_mtu: int | None = None) -> CalicoNodeState:
        me = CalicoNode(self.ctx.node, self.node_ip)
        return desired_state(self.net, self.ctx.cluster, me, list(nodes), *routing_inputs(self.ipam),
                             uplink_mtu if uplink_mtu is not None else self.uplink_mtu())

    def sync(self, nodes: Iterable[CalicoNode], *, full: bool = False) -> CalicoNodeState:
        """Program the node for `nodes` and the IPAM's blocks. The first sync, a `full` one and one every
        `refresh_interval` reconcile against what the kernel holds (reads every route, FDB entry and
        neighbour of the node, the nat table); the others write only what changed since the last (felix's
        OnUpdate/CompleteDeferredWork, see calico_delta.py): nothing when nothing did."""
        now = time.monotonic()
        last, self._programmed = self._programmed, None  # unknown until this sync has succeeded
        if full or last is None or now - self._refreshed >= self.refresh_interval:
            self._uplink_mtu = self.uplink_mtu()
            state = self._reconcile(self.state(nodes, self._uplink_mtu))
            self._refreshed = now
        else:
            state = self.state(nodes, self._uplink_mtu)
            if state.device != last.device:
                state = self._reconcile(state)
                self._refreshed = now
            elif state != last:
                self._apply_delta(last, state)
        self._programmed = state
        return state

    def _apply_delta(self, last: CalicoNodeState, state: CalicoNodeState) -> int:
        k, ns = self.kernel, self.ctx.node_ns
        writes = apply_routes_delta(k, ns, last.blackholes, state.blackholes)
        if state.device is not None:
            writes += apply_peers_delta(k, ns, state.device.name, last.peers, state.peers)
        elif self.net.backend == "direct":
            writes += apply_routes_delta(k, ns, last.routes, state.routes)
        return writes

    def _reconcile(self, state: CalicoNodeState) -> CalicoNodeState:
        """The full reconcile: everything the node should hold, against what the kernel has."""
        k, ns = self.kernel, self.ctx.node_ns
        pool = ipaddress.ip_network(self.net.pool)
        reconcile_routes(k, ns, state.blackholes, lambda r: r.kind == "blackhole" and _in(r.dst, pool))
        if state.device is not None:
            ensure_vxlan_device(k, ns, state.device)
            reconcile_vxlan_peers(k, ns, state.device.name, state.peers)
        elif self.net.backend == "direct":
            if k.link_get(ns, VXLAN_DEVICE) is not None:
                k.link_del(ns, VXLAN_DEVICE)
            reconcile_routes(k, ns, state.routes, lambda r: r.dev == self.net.uplink and r.via is not None
                             and _in(r.dst, pool))
        calico_nat.apply(k, ns, self.net.pool, self.net.nat_outgoing)
        return state

    def workload_endpoints(self) -> list[WorkloadEndpoint]:
        """This node's pods as felix sees them: namespace, pod, IP, host veth."""
        return list_endpoints(self.ctx)


def _in(dst: str, pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return dst != "default" and ipaddress.ip_network(dst).subnet_of(pool)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False


# --- the CNI plugin --------------------------------------------------------------------------------

class Calico(RoutedVethPlugin):
    """The `netsim-calico` CNI plugin: config keys `mtu`, `ipam: {type: calico-ipam, pool, blockSize,
    dataDir}`, `backend` (vxlan|direct: only used to pick the default MTU), and the `netsim` key."""

    name = "netsim-calico"

    def validate(self, conf: dict[str, Any]) -> None:
        super().validate(conf)
        ipam = conf.get("ipam") or {}
        if not isinstance(ipam, dict):
            raise CniError(ERR_INVALID_CONFIG, "'ipam' must be an object")
        if ipam.get("type", "calico-ipam") != "calico-ipam":
            raise CniError(ERR_INVALID_CONFIG, f"calico supports ipam type calico-ipam, not {ipam.get('type')!r}")
        if conf.get("backend", "vxlan") not in BACKENDS:
            raise CniError(ERR_INVALID_CONFIG, f"backend must be one of {BACKENDS}", str(conf.get("backend")))
        CalicoIpam(".", str(ipam.get("pool", "10.244.0.0/16")), int(ipam.get("blockSize", DEFAULT_BLOCK_SIZE)))

    def _ipam(self, inv: Invocation, ctx: NodeContext) -> CalicoIpam:
        ipam = inv.conf.get("ipam") or {}
        return CalicoIpam(ipam.get("dataDir") or ipam_dir(ctx.state_dir), str(ipam.get("pool", "10.244.0.0/16")),
                          int(ipam.get("blockSize", DEFAULT_BLOCK_SIZE)))

    def assign(self, inv: Invocation, ctx: NodeContext) -> list[str]:
        ns, pod = pod_identity(inv.args)
        attrs = {"node": ctx.node, "namespace": ns or "", "pod": pod or "", "ifname": inv.args.ifname,
                 "containerID": inv.args.container_id}
        ip, _ = self._ipam(inv, ctx).auto_assign(
            ctx.node, pod_handle(inv.conf["name"], inv.args.container_id, inv.args.ifname), attrs)
        return [ip]

    def release(self, inv: Invocation, ctx: NodeContext) -> None:
        self._ipam(inv, ctx).release_by_handle(pod_handle(inv.conf["name"], inv.args.container_id,
                                                          inv.args.ifname))

    def ipam_gc(self, inv: Invocation, ctx: NodeContext, valid: list[dict[str, str]]) -> None:
        """Free this node's pod addresses whose attachment is not valid (other nodes' are theirs to GC)."""
        name = inv.conf["name"]
        ipam = self._ipam(inv, ctx)
        keep = {pod_handle(name, a.get("containerID", ""), a.get("ifname", "")) for a in valid}
        for alloc in ipam.allocations():
            if alloc.handle.startswith(f"{name}.") and alloc.attrs.get("node") == ctx.node \
                    and alloc.handle not in keep:
                ipam.release_by_handle(alloc.handle)

    def mtu(self, inv: Invocation, ctx: NodeContext) -> int:
        if inv.conf.get("mtu"):
            return int(inv.conf["mtu"])
        link = inv.k.link_get(ctx.node_ns, "eth0")
        base = link.mtu if link is not None else 1500
        return base - VXLAN_OVERHEAD if inv.conf.get("backend", "vxlan") == "vxlan" else base

    def ready(self, inv: Invocation, ctx: NodeContext) -> None:
        if not self._ipam(inv, ctx).blocks_of(ctx.node):
            raise CniError(ERR_NOT_AVAILABLE, f"calico-node has not started on {ctx.node}",
                           "no IPAM block is affine to this node yet")


PLUGIN = Calico()


def main() -> None:
    """Console script `netsim-calico`."""
    plugin_main(PLUGIN, kernel_factory)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)


__all__ = ["PLUGIN", "Calico", "CalicoNetConf", "CalicoNode", "CalicoNodeDaemon", "desired_state",
           "node_context"]
