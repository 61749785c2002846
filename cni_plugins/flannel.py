"""flannel: subnet leases and subnet.env, the flanneld node daemon, and the flannel CNI plugin.

Upstream (see docs/reference/flannel.md for the full fact sheet):
* flannel-io/flannel `pkg/subnet/subnet.go` (WriteSubnetFile), `pkg/subnet/kube/kube.go` (a node's lease is
  its podCIDR, which must sit inside Network), `pkg/backend/vxlan/{vxlan.go,device.go,vxlan_network.go}`
  (flannel.<VNI>, neighbour+FDB+onlink route per remote lease), `pkg/backend/hostgw/hostgw.go` and
  `pkg/backend/route_network.go` (one route per remote lease via its public IP), and
  `pkg/trafficmngr/iptables/iptables.go` (masqRules / forwardRules: the FLANNEL-POSTRTG and FLANNEL-FWD
  chains, rule order and the "flanneld masq"/"flanneld forward" comments);
* flannel-io/cni-plugin `flannel.go` (loadFlannelSubnetEnv refuses ADD when a key is missing; the bridge
  delegate gets mtu=FLANNEL_MTU, isGateway, ranges=[[{subnet}]] and a route to FLANNEL_NETWORK);
* containernetworking/plugins `plugins/main/bridge/bridge.go` for what the delegate then builds: cni0 with
  the gateway .1, a veth per pod, hairpin on the port, arp_notify in the pod, default route via .1.

netsim runs the bridge + host-local delegate in process rather than exec'ing them, with the same result.

Driving it:
    lease = lease_for(cluster, node, node_ip, pod_cidr, net)       # the lead assigns podCIDRs
    Flanneld(kernel, NodeContext(cluster, node, state_dir), net).sync(all_leases)   # on every node change
    invoke(PLUGIN, "ADD", CniArgs(...), conf, kernel)              # kubelet, in process
"""

from __future__ import annotations

import errno
import ipaddress
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cni_plugins.common import NodeContext, hexdigest, kernel_factory, local_mac, node_context, write_atomic
from cni_plugins.ipam import host_local
from cni_plugins.overlay import (
    VXLAN_OVERHEAD,
    VxlanDevice,
    VxlanPeer,
    ensure_vxlan_device,
    reconcile_routes,
    reconcile_vxlan_peers,
)
from cni_plugins.skel import Invocation, plugin_main
from cni_plugins.types import (
    ERR_CHECK_FAILED,
    ERR_EXHAUSTED,
    ERR_EXISTS,
    ERR_INVALID_CONFIG,
    ERR_NOT_AVAILABLE,
    ERR_TRY_AGAIN,
    ERR_UNSUPPORTED_FIELD,
    CniError,
    Interface,
    IPConfig,
    Result,
    RouteConfig,
)
from netsim.kernel.api import Kernel, KernelError, Route
from netsim.model.errors import SpecError

BACKENDS = ("vxlan", "host-gw")
DEFAULT_BRIDGE = "cni0"
BRIDGE_MAX_PORTS = 1023  # BR_MAX_PORTS is 1024 and port number 0 is reserved (net/bridge/br_private.h)
SUBNET_ENV_KEYS = ("FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ")
KUBE_PROXY_MASQ_MARK = "0x4000/0x4000"  # trafficmngr.KubeProxyMark


# --- configuration and leases ---------------------------------------------------------------------

@dataclass(frozen=True)
class FlannelNetConf:
    """flanneld's net-conf.json, plus where the node's uplink is.

    `mtu` None means "the uplink's MTU" (flannel's Backend.MTU default); `port` 8472 is the Linux kernel
    default flannel documents for VXLAN (Documentation/backends.md).
    """

    network: str = "10.244.0.0/16"
    backend: str = "vxlan"
    vni: int = 1
    port: int = 8472
    mtu: int | None = None
    ip_masq: bool = True
    random_fully: bool = True
    uplink: str = "eth0"

    @property
    def device(self) -> str:
        return f"flannel.{self.vni}"

    def pod_mtu(self, uplink_mtu: int) -> int:
        base = self.mtu or uplink_mtu
        return base - VXLAN_OVERHEAD if self.backend == "vxlan" else base

    @classmethod
    def from_net_conf(cls, data: dict[str, Any], **extra: Any) -> FlannelNetConf:
        """From the net-conf.json shape: {"Network": ..., "Backend": {"Type", "VNI", "Port", "MTU"}}."""
        backend = data.get("Backend") or {}
        btype = str(backend.get("Type", "vxlan"))
        if btype not in BACKENDS:
            raise SpecError(f"backend {btype!r} is not supported (use one of {', '.join(BACKENDS)})",
                            obj="flannel net-conf", field="Backend.Type")
        return cls(network=str(data.get("Network", "10.244.0.0/16")), backend=btype,
                   vni=int(backend.get("VNI", 1)), port=int(backend.get("Port", 0) or 8472),
                   mtu=backend.get("MTU"), **extra)


@dataclass(frozen=True)
class Lease:
    """A node's subnet lease: what flannel publishes in the node annotations (public-ip, backend-data)."""

    node: str
    public_ip: str
    subnet: str  # the node's podCIDR, "10.244.1.0/24"
    vtep_mac: str

    @property
    def network_ip(self) -> str:
        return str(ipaddress.ip_network(self.subnet).network_address)

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.subnet).network_address + 1)


def vtep_mac(cluster: str, node: str, device: str = "flannel.1") -> str:
    """Stable VTEP MAC for a node (flannel keeps it in an annotation across restarts; we derive it)."""
    return local_mac(f"{cluster}/{node}/{device}")


def lease_for(cluster: str, node: str, public_ip: str, pod_cidr: str, net: FlannelNetConf) -> Lease:
    """Take the node's podCIDR as its lease; like kube.go AcquireLease, refuse one outside Network."""
    try:
        subnet = ipaddress.ip_network(pod_cidr)
        network = ipaddress.ip_network(net.network)
        ipaddress.ip_address(public_ip)
    except ValueError as exc:
        raise SpecError(str(exc), obj=f"Node {node}", field="spec.podCIDR") from exc
    if not subnet.subnet_of(network):  # type: ignore[arg-type]
        raise SpecError(f"podCIDR {pod_cidr} is not inside the flannel network {net.network}",
                        obj=f"Node {node}", field="spec.podCIDR")
    return Lease(node, public_ip, str(subnet), vtep_mac(cluster, node, net.device))


# --- subnet.env -----------------------------------------------------------------------------------

def subnet_env_path(ctx: NodeContext) -> Path:
    return ctx.node_dir / "flannel" / "subnet.env"


def render_subnet_env(net: FlannelNetConf, lease: Lease, mtu: int) -> str:
    """Exactly the four keys flanneld writes, in its order (subnet.go WriteSubnetFile)."""
    subnet = ipaddress.ip_network(lease.subnet)
    return (f"FLANNEL_NETWORK={net.network}\n"
            f"FLANNEL_SUBNET={subnet.network_address + 1}/{subnet.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\n"
            f"FLANNEL_IPMASQ={'true' if net.ip_masq else 'false'}\n")


@dataclass(frozen=True)
class SubnetEnv:
    network: str
    subnet: str  # the node subnet as a network, "10.244.1.0/24"
    gateway: str  # FLANNEL_SUBNET's address, "10.244.1.1"
    prefixlen: int
    mtu: int
    ipmasq: bool


def read_subnet_env(path: Path) -> SubnetEnv:
    """Load subnet.env; missing file or key is the error the real plugin gives (flannel.go
    loadFlannelSubnetEnv), with code 11: it clears once flanneld has run on this node."""
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise CniError(ERR_TRY_AGAIN, f"failed to load flannel 'subnet.env' file: open {path}: no such file "
                       "or directory. Check the flannel pod log for this node.") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key] = value
    missing = [k for k in SUBNET_ENV_KEYS if not values.get(k)]
    if missing:
        raise CniError(ERR_TRY_AGAIN, f"{path} is missing {', '.join(missing)}",
                       "flanneld has not finished writing this node's subnet.env")
    try:
        iface = ipaddress.ip_interface(values["FLANNEL_SUBNET"])
        ipaddress.ip_network(values["FLANNEL_NETWORK"])
        mtu = int(values["FLANNEL_MTU"])
    except ValueError as exc:
        raise CniError(ERR_INVALID_CONFIG, f"{path}: malformed value", str(exc)) from exc
    return SubnetEnv(values["FLANNEL_NETWORK"], str(iface.network), str(iface.ip), iface.network.prefixlen,
                     mtu, values["FLANNEL_IPMASQ"].lower() == "true")


# --- iptables (pure renderer) ---------------------------------------------------------------------

def render_iptables(net: FlannelNetConf, lease: Lease, *, have_jumps: Iterable[str] = ()) -> str:
    """The iptables-restore --noflush payload for FLANNEL-POSTRTG (nat) and FLANNEL-FWD (filter).

    Declaring `:FLANNEL-*` flushes and refills only our own chains, so rule order is exact on every apply.
    Built-in chains are never flushed (kube-proxy and calico hook them too): the jump from POSTROUTING /
    FORWARD is appended only when `have_jumps` (built-in chain names that already jump to us, read from
    iptables-save by the applier) does not contain it, so re-applying never duplicates it.
    """
    have = set(have_jumps)
    network, pod = net.network, lease.subnet
    masq_tail = "-j MASQUERADE --random-fully" if net.random_fully else "-j MASQUERADE"
    mc = '-m comment --comment "flanneld masq"'
    fc = '-m comment --comment "flanneld forward"'
    lines: list[str] = []
    if net.ip_masq:
        lines += ["*nat", ":FLANNEL-POSTRTG - [0:0]"]
        if "POSTROUTING" not in have:
            lines.append(f"-A POSTROUTING {mc} -j FLANNEL-POSTRTG")
        lines += [
            f"-A FLANNEL-POSTRTG -m mark --mark {KUBE_PROXY_MASQ_MARK} {mc} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {pod} -d {network} {mc} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {network} -d {pod} {mc} -j RETURN",
            f"-A FLANNEL-POSTRTG ! -s {network} -d {pod} {mc} -j RETURN",
            f"-A FLANNEL-POSTRTG -s {network} ! -d 224.0.0.0/4 {mc} {masq_tail}",
            f"-A FLANNEL-POSTRTG ! -s {network} -d {network} {mc} {masq_tail}",
            "COMMIT",
        ]
    lines += ["*filter", ":FLANNEL-FWD - [0:0]"]
    if "FORWARD" not in have:
        lines.append(f"-A FORWARD {fc} -j FLANNEL-FWD")
    lines += [
        f"-A FLANNEL-FWD -s {network} {fc} -j ACCEPT",
        f"-A FLANNEL-FWD -d {network} {fc} -j ACCEPT",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def jumps_present(iptables_save: str) -> set[str]:
    """Built-in chains that already jump to a FLANNEL chain, from `iptables-save` output."""
    found = set()
    for line in iptables_save.splitlines():
        if line.startswith("-A POSTROUTING ") and line.rstrip().endswith("-j FLANNEL-POSTRTG"):
            found.add("POSTROUTING")
        elif line.startswith("-A FORWARD ") and line.rstrip().endswith("-j FLANNEL-FWD"):
            found.add("FORWARD")
    return found


# --- the node daemon (flanneld) -------------------------------------------------------------------

@dataclass(frozen=True)
class FlannelNodeState:
    """What flanneld wants on one node: a pure function of the config and all leases."""

    device: VxlanDevice | None
    peers: tuple[VxlanPeer, ...]
    routes: tuple[Route, ...]  # host-gw routes
    subnet_env: str


def desired_state(net: FlannelNetConf, me: Lease, leases: Iterable[Lease], uplink_mtu: int = 1500) -> FlannelNodeState:
    others = sorted((le for le in leases if le.node != me.node), key=lambda le: le.node)
    mtu = net.pod_mtu(uplink_mtu)
    env = render_subnet_env(net, me, mtu)
    if net.backend == "host-gw":
        routes = tuple(Route(dst=le.subnet, via=le.public_ip, dev=net.uplink) for le in others)
        return FlannelNodeState(None, (), routes, env)
    dev = VxlanDevice(name=net.device, vni=net.vni, port=net.port, local=me.public_ip, parent=net.uplink,
                      mtu=mtu, mac=me.vtep_mac, address=f"{me.network_ip}/32")
    peers = tuple(VxlanPeer(le.node, le.public_ip, le.network_ip, le.vtep_mac, (le.subnet,)) for le in others)
    return FlannelNodeState(dev, peers, (), env)


class Flanneld:
    """flanneld for one node: `sync(leases)` converges the kernel on every node add/remove/resync.

    Input: all nodes' leases (this node's included; each from `lease_for`). It programs flannel.1 and the
    peer triples (vxlan) or the per-node routes (host-gw), the iptables chains, then writes subnet.env
    last, as flanneld does, so a CNI ADD never sees subnet.env before the node's network is ready.
    """

    def __init__(self, kernel: Kernel, ctx: NodeContext, net: FlannelNetConf):
        if net.backend not in BACKENDS:
            raise SpecError(f"flannel backend {net.backend!r} is not supported", field="spec.network.backend")
        self.kernel, self.ctx, self.net = kernel, ctx, net

    def uplink_mtu(self) -> int:
        link = self.kernel.link_get(self.ctx.node_ns, self.net.uplink)
        return link.mtu if link is not None else 1500

    def sync(self, leases: Iterable[Lease]) -> FlannelNodeState:
        leases = list(leases)
        me = next((le for le in leases if le.node == self.ctx.node), None)
        if me is None:
            raise SpecError(f"no lease for node {self.ctx.node}", obj=f"Node {self.ctx.node}", field="spec.podCIDR")
        state = desired_state(self.net, me, leases, self.uplink_mtu())
        ns, k = self.ctx.node_ns, self.kernel
        network = ipaddress.ip_network(self.net.network)
        if state.device is not None:
            ensure_vxlan_device(k, ns, state.device)
            reconcile_vxlan_peers(k, ns, state.device.name, state.peers)
        else:
            if k.link_get(ns, self.net.device) is not None:
                k.link_del(ns, self.net.device)  # switched away from vxlan
            reconcile_routes(k, ns, state.routes, lambda r: self._ours_host_gw(r, network))
        self.apply_iptables(me)
        path = subnet_env_path(self.ctx)
        if not path.exists() or path.read_text() != state.subnet_env:
            write_atomic(path, state.subnet_env)
        return state

    def _ours_host_gw(self, r: Route, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        if r.dev != self.net.uplink or r.via is None or r.dst == "default":
            return False
        try:
            return ipaddress.ip_network(r.dst).subnet_of(network)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return False

    def apply_iptables(self, me: Lease) -> None:
        saved = self.kernel.run(self.ctx.node_ns, ["iptables-save"], check=False)
        have = jumps_present(saved.stdout if isinstance(saved.stdout, str) else (saved.stdout or b"").decode())
        self.kernel.iptables_restore(self.ctx.node_ns, render_iptables(self.net, me, have_jumps=have))

    def stop(self) -> None:
        """Forget the lease on this node: subnet.env goes, so new ADDs fail until the next sync."""
        subnet_env_path(self.ctx).unlink(missing_ok=True)


# --- the CNI plugin (flannel + bridge + host-local delegate, in process) -----------------------------

def host_veth_name(container_id: str, ifname: str, prefix: str = "veth") -> str:
    """`veth` + 8 hex, like the bridge plugin's RandomVethName but derived from the attachment, so a
    retried ADD or a DEL after a crash finds the same name."""
    return prefix + hexdigest("sha1", f"{container_id}/{ifname}")[:8]


def veth_macs(container_id: str, ifname: str) -> tuple[str, str]:
    """(host end, pod end) MACs of an attachment's veth: stable, locally administered, unicast."""
    return local_mac(f"{container_id}/{ifname}/host"), local_mac(f"{container_id}/{ifname}/pod")


def _ipam_config(inv: Invocation, ctx: NodeContext, env: SubnetEnv | None) -> host_local.HostLocalConfig:
    """The host-local config flannel's delegate would get: ranges forced to the node subnet, a route to
    FLANNEL_NETWORK, dataDir under the node's state dir (or the config's ipam.dataDir)."""
    ipam = dict(inv.conf.get("ipam") or {})
    data_dir = ipam.get("dataDir") or str(ctx.node_dir / "cni" / "networks")
    routes = [RouteConfig(str(r["dst"]), r.get("gw")) for r in ipam.get("routes") or [] if "dst" in r]
    ranges: list[list[host_local.Range]] = []
    if env is not None:
        ranges = [[host_local.Range.parse({"subnet": env.subnet}, "FLANNEL_SUBNET")]]
        routes.append(RouteConfig(env.network))
    return host_local.HostLocalConfig(network=inv.conf["name"], range_sets=ranges, routes=routes,
                                      data_dir=str(data_dir))


class Flannel:
    """The `netsim-flannel` CNI plugin.

    Per kernel object, the bridges this process has checked (address, ip_forward) and found right:
    (node netns, bridge) -> (ifindex, gateway CIDR), so later ADDs on that node check only that it is still
    the same link (`ensure_bridge`)."""

    name = "netsim-flannel"

    def __init__(self) -> None:
        self._verified: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], tuple[int, str]]] = \
            weakref.WeakKeyDictionary()

    def verified_bridges(self, kernel: Kernel) -> dict[tuple[str, str], tuple[int, str]] | None:
        try:
            return self._verified.setdefault(kernel, {})
        except TypeError:  # a kernel object that cannot be weakly referenced: check every time
            return None

    def validate(self, conf: dict[str, Any]) -> None:
        delegate = conf.get("delegate") or {}
        if not isinstance(delegate, dict):
            raise CniError(ERR_INVALID_CONFIG, "'delegate' must be an object")
        for key in ("name", "ipam"):
            if key in delegate:  # flannel.go: the delegate must not set these
                raise CniError(ERR_UNSUPPORTED_FIELD, f"delegate must not set {key!r}", f"{key}={delegate[key]!r}")
        dtype = delegate.get("type", "bridge")
        if dtype != "bridge":
            raise CniError(ERR_UNSUPPORTED_FIELD, "only the bridge delegate is supported", f"type={dtype!r}")
        if delegate.get("hairpinMode") and delegate.get("promiscMode"):
            raise CniError(ERR_INVALID_CONFIG, "cannot set hairpin mode and promiscuous mode at the same time")

    @staticmethod
    def _delegate(conf: dict[str, Any]) -> dict[str, Any]:
        # Manifest default delegate: {hairpinMode: true, isDefaultGateway: true} (kube-flannel.yml).
        return {"hairpinMode": True, "isDefaultGateway": True, "bridge": DEFAULT_BRIDGE,
                **(conf.get("delegate") or {})}

    def subnet_file(self, inv: Invocation, ctx: NodeContext) -> Path:
        return Path(inv.conf["subnetFile"]) if inv.conf.get("subnetFile") else subnet_env_path(ctx)

    def add(self, inv: Invocation) -> Result:
        ctx = node_context(inv.conf)
        env = read_subnet_env(self.subnet_file(inv, ctx))
        delegate = self._delegate(inv.conf)
        mtu = int(delegate.get("mtu") or env.mtu)
        bridge = str(delegate["bridge"])
        cfg = _ipam_config(inv, ctx, env)
        k, node_ns, pod_ns, ifname = inv.k, ctx.node_ns, inv.args.netns_name, inv.args.ifname
        if not k.netns_exists(pod_ns):
            raise CniError(ERR_INVALID_CONFIG, f"failed to open netns {inv.args.netns!r}: no such namespace")
        if k.link_get(pod_ns, ifname) is not None:
            raise CniError(ERR_EXISTS, f"container veth name {ifname!r} already exists in {pod_ns}")
        if host_local.count(cfg) >= BRIDGE_MAX_PORTS:
            raise CniError(ERR_EXHAUSTED, f"bridge {bridge} on node {ctx.node} is full",
                           f"a Linux bridge holds at most {BRIDGE_MAX_PORTS} ports")
        ipam = host_local.allocate(cfg, inv.args.container_id, ifname,
                                   host_local.requested_ips(inv.conf, inv.args.args))
        host_if = host_veth_name(inv.args.container_id, ifname)
        # MACs are pinned at creation (locally administered, derived from the attachment, as random ones
        # from the kernel would be), so the result needs no read-back; the host end is created enslaved
        # and up. Both save netlink round trips, the main per-pod cost (benchmarks/README.md).
        host_mac, pod_mac = veth_macs(inv.args.container_id, ifname)
        try:
            bridge_mac = local_mac(f"{ctx.cluster}/{ctx.node}/{bridge}")
            br = ensure_bridge(k, node_ns, bridge, f"{env.gateway}/{env.prefixlen}", mtu, bridge_mac,
                               verified=self.verified_bridges(k))
            # arp_notify (bridge.go sets it in the pod, through /proc/sys) travels with the request that
            # brings the pod end up: the same kernel state without a /proc/sys lookup, which costs time in
            # proportion to the namespaces on the machine (benchmarks/README.md, "flannel against canal").
            k.veth_add(node_ns, host_if, pod_ns, ifname, mtu=mtu, mac=host_mac, peer_mac=pod_mac, master=bridge,
                       peer_ipv4_conf={"arp_notify": 1})
            if delegate.get("hairpinMode"):
                k.brport_set(node_ns, host_if, hairpin=True)
            for ip in ipam.ips:
                k.addr_add(pod_ns, ifname, ip.address)
            routes = list(ipam.routes)
            if delegate.get("isDefaultGateway"):
                routes.append(RouteConfig("0.0.0.0/0", env.gateway))
            for r in routes:
                dst = "default" if r.dst == "0.0.0.0/0" else r.dst
                k.route_replace(pod_ns, Route(dst=dst, via=r.gw or env.gateway, dev=ifname))
            # Scale wall: the kernel's neighbour table is one table for every namespace of the machine
            # (gc_thresh3 = 1024 dynamic entries). Both MACs are known, so the pod<->gateway entries are
            # programmed PERMANENT, which do not count against it; a real node would learn them by ARP.
            k.neigh_replace(pod_ns, ifname, env.gateway, bridge_mac, permanent=True)
            for ip in ipam.ips:
                k.neigh_replace(node_ns, bridge, ip.address.split("/")[0], pod_mac, permanent=True)
        except Exception:
            host_local.release(cfg, inv.args.container_id, ifname)
            if k.netns_exists(node_ns):
                k.link_del(node_ns, host_if)
            raise
        return Result(
            interfaces=[Interface(bridge, br.mac if br else ""), Interface(host_if, host_mac),
                        Interface(ifname, pod_mac, sandbox=inv.args.netns)],
            ips=[IPConfig(ip.address, ip.gateway, 2) for ip in ipam.ips],
            routes=routes, dns=ipam.dns)

    def delete(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        cfg = _ipam_config(inv, ctx, None)
        released = host_local.release(cfg, inv.args.container_id, inv.args.ifname)
        if inv.k.netns_exists(ctx.node_ns):
            inv.k.link_del(ctx.node_ns, host_veth_name(inv.args.container_id, inv.args.ifname))
            bridge = self._delegate(inv.conf).get("bridge", DEFAULT_BRIDGE)
            if inv.k.link_get(ctx.node_ns, bridge) is not None:
                for ip in released:  # the permanent entry ADD made outlives the veth on cni0
                    inv.k.neigh_del(ctx.node_ns, bridge, str(ip))

    def check(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        env = read_subnet_env(self.subnet_file(inv, ctx))
        cfg = _ipam_config(inv, ctx, env)
        held = host_local.check(cfg, inv.args.container_id, inv.args.ifname)
        k, pod_ns, ifname = inv.k, inv.args.netns_name, inv.args.ifname
        bridge = str(self._delegate(inv.conf)["bridge"])
        host_if = host_veth_name(inv.args.container_id, ifname)
        link = k.link_get(ctx.node_ns, host_if)
        if link is None or link.master != bridge:
            raise CniError(ERR_CHECK_FAILED, f"host veth {host_if} missing or not attached to {bridge}")
        if not k.netns_exists(pod_ns) or k.link_get(pod_ns, ifname) is None:
            raise CniError(ERR_CHECK_FAILED, f"{ifname} missing in {pod_ns}")
        have = {c for _, c in k.addrs(pod_ns, ifname)}
        for ip in held:
            if f"{ip}/{env.prefixlen}" not in have:
                raise CniError(ERR_CHECK_FAILED, f"{ip}/{env.prefixlen} not on {ifname} in {pod_ns}")
        dsts = {r.dst for r in k.routes(pod_ns) if r.dev == ifname}
        if env.network not in dsts:
            raise CniError(ERR_CHECK_FAILED, f"route to {env.network} missing in {pod_ns}")

    def gc(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        valid = inv.conf.get("cni.dev/valid-attachments") or []
        host_local.gc(_ipam_config(inv, ctx, None), valid)
        keep = {host_veth_name(a.get("containerID", ""), a.get("ifname", "")) for a in valid if isinstance(a, dict)}
        bridge = str(self._delegate(inv.conf)["bridge"])
        if inv.k.netns_exists(ctx.node_ns):
            for link in inv.k.links(ctx.node_ns):
                if link.master == bridge and link.kind == "veth" and link.name.startswith("veth") \
                        and link.name not in keep:
                    inv.k.link_del(ctx.node_ns, link.name)

    def status(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        try:
            read_subnet_env(self.subnet_file(inv, ctx))
        except CniError as exc:
            raise CniError(ERR_NOT_AVAILABLE, "flannel is not ready on this node", exc.msg) from exc


def ensure_bridge(kernel: Kernel, ns: str, name: str, gateway_cidr: str, mtu: int, mac: str,
                  verified: dict[tuple[str, str], tuple[int, str]] | None = None):
    """cni0 with the gateway address and a pinned MAC; ip_forward on (bridge.go setupBridge / isGateway).

    Like the bridge plugin with forceAddress=false, a bridge already holding a different address in the
    same family is an error rather than silently re-addressed.

    `verified` (the caller's, kept across ADDs): the bridge plugin re-checks the address and ip_forward on
    every ADD (ensureAddr, enableIPForward); netsim's node daemon is the only writer of a node's cni0 and
    ip_forward, so once this process has checked a bridge, later ADDs only look the link up (which they need
    anyway for its index and MAC) and skip the rest while it is the same link. ip_forward is a /proc/sys read
    whose cost grows with the namespaces on the machine (~0.8 ms a pod at 2,000 pods, benchmarks/README.md).
    A bridge this call creates is always checked in full (a re-made node netns can reuse an ifindex).
    """
    link = kernel.link_get(ns, name)
    created = False
    if link is None:
        try:
            kernel.bridge_add(ns, name, mtu=mtu, mac=mac, up=True)
            created = True
        except KernelError as exc:
            # Concurrent first ADDs on a node race to create the bridge; losing is fine (bridge.go
            # ensureBridge ignores EEXIST too), anything else is an error.
            if exc.errno != errno.EEXIST:
                raise
        link = kernel.link_get(ns, name)
        if link is None:
            raise CniError(ERR_EXISTS, f"bridge {name} vanished while being created")
    if link.kind != "bridge":
        raise CniError(ERR_EXISTS, f"{name!r} already exists but is not a bridge")
    if not link.up:
        kernel.link_set(ns, name, up=True)
    key = (ns, name)
    if verified is not None and not created and verified.get(key) == (link.index, gateway_cidr):
        return link
    have = [c for ifn, c in kernel.addrs(ns, name) if ifn == name]
    others = [c for c in have if c != gateway_cidr]
    if others:
        raise CniError(ERR_INVALID_CONFIG, f"{name} already has an IP address different from {gateway_cidr}",
                       ", ".join(others))
    if gateway_cidr not in have:
        kernel.addr_add(ns, name, gateway_cidr)
    if kernel.sysctl_get(ns, "net.ipv4.ip_forward") != "1":
        kernel.sysctl_set(ns, "net.ipv4.ip_forward", 1)
    if verified is not None:
        verified[key] = (link.index, gateway_cidr)
    return link


PLUGIN = Flannel()


def main() -> None:
    """Console script `netsim-flannel`."""
    plugin_main(PLUGIN, kernel_factory)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
