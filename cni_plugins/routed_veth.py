"""Calico's routed-veth pod wiring, shared by the calico and canal plugins.

After projectcalico/calico `cni-plugin/pkg/dataplane/linux/dataplane_linux.go` (DoNetworking, SetupRoutes)
and `libcalico-go/lib/backend/k8s/conversion/workload_endpoint_default.go` (VethNameForWorkload):
* host veth `cali` + first 11 hex of sha1("<namespace>.<pod>"), MAC ee:ee:ee:ee:ee:ee, no address, sysctls
  proxy_arp=1, forwarding=1, route_localnet=1 and neigh proxy_delay=0 (set by netlink, see HOST_IPV4_CONF);
* in the pod: every address as /32, `169.254.1.1 dev eth0 scope link`, then default via 169.254.1.1 (the
  host answers ARP for it by proxy ARP);
* on the host: `<podIP>/32 dev caliX scope link`; an existing /32 on another interface is an ADD error.

Subclasses supply the IPAM (calico block IPAM, or host-local on the node podCIDR for canal). Each ADD also
records the workload endpoint (pod ns/name, IP, veth) under the node's state dir so the felix renderer,
which runs in another process, can be fed from it.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cni_plugins.common import NodeContext, hexdigest, local_mac, node_context, write_atomic
from cni_plugins.skel import Invocation
from cni_plugins.types import (
    ERR_CHECK_FAILED,
    ERR_EXISTS,
    ERR_INVALID_CONFIG,
    CniArgs,
    CniError,
    Interface,
    IPConfig,
    Result,
    RouteConfig,
)
from netsim.kernel.api import Kernel, KernelError, Route

CALICO_GATEWAY = "169.254.1.1"
HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
DEFAULT_PREFIX = "cali"


def calico_veth_name(namespace: str | None, pod: str | None, container_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """`cali` + sha1("<ns>.<pod>")[:11]; without pod identity, `cali` + the container ID's first 11 chars."""
    if namespace and pod:
        return prefix + hexdigest("sha1", f"{namespace}.{pod}")[:11]
    return prefix + container_id[:11]


def pod_identity(args: CniArgs) -> tuple[str | None, str | None]:
    """Pod namespace and name from CNI_ARGS, as kubelet passes them."""
    return args.args.get("K8S_POD_NAMESPACE") or None, args.args.get("K8S_POD_NAME") or None


# The host end's IPv4 settings, as calico's CNI plugin writes them through /proc/sys after moving the host
# end out of the sandbox (projectcalico/calico cni-plugin/pkg/dataplane/linux/dataplane_linux.go,
# configureSysctls: route_localnet=1, neigh proxy_delay=0, proxy_arp=1, forwarding=1). Here they travel by
# netlink: the three net.ipv4.conf ones with the host end's up (IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF), the
# delay as one RTM_SETNEIGHTBL; the same kernel state, without the /proc/sys path lookup whose cost grows
# with the namespaces on the machine (issue #18).
HOST_IPV4_CONF = {"route_localnet": 1, "proxy_arp": 1, "forwarding": 1}
HOST_PROXY_DELAY_MS = 0


def host_sysctls(ifname: str) -> dict[str, int]:
    """The host end's settings by their sysctl names (what a reader of /proc/sys finds after an ADD)."""
    return {**{f"net.ipv4.conf.{ifname}.{k}": v for k, v in HOST_IPV4_CONF.items()},
            f"net.ipv4.neigh.{ifname}.proxy_delay": HOST_PROXY_DELAY_MS // 10}


@dataclass(frozen=True)
class WorkloadEndpoint:
    """What felix needs to know about one pod interface on this node."""

    namespace: str
    pod: str
    container_id: str
    ifname: str
    ip: str
    host_ifname: str
    node: str


def endpoints_dir(ctx: NodeContext) -> Path:
    return ctx.node_dir / "calico" / "endpoints"


def _endpoint_file(ctx: NodeContext, cid: str, ifname: str) -> Path:
    return endpoints_dir(ctx) / f"{cid}.{ifname}.json"


def list_endpoints(ctx: NodeContext, cache: dict[str, WorkloadEndpoint] | None = None) -> list[WorkloadEndpoint]:
    """The node's workload endpoints, sorted by pod (input for netsim/policy/felix.py). `cache` (file name ->
    endpoint, kept by the caller between calls): an endpoint file is written once, atomically, under its
    container ID and removed at DEL, so only names not seen before are read; a listing of the directory is
    all a call costs when nothing changed."""
    d = endpoints_dir(ctx)
    try:
        names = [n for n in os.listdir(d) if n.endswith(".json")]
    except FileNotFoundError:
        names = []
    if cache is None:
        cache = {}
    else:
        for gone in set(cache) - set(names):
            del cache[gone]
    for n in names:
        if n in cache:
            continue
        try:
            cache[n] = WorkloadEndpoint(**json.loads((d / n).read_text()))
        except (ValueError, TypeError, FileNotFoundError):
            continue
    return sorted(cache.values(), key=lambda e: (e.namespace, e.pod, e.ifname))


class RoutedVethPlugin:
    """ADD/DEL/CHECK/GC/STATUS of the routed-veth model; IPAM hooks are left to subclasses."""

    name = "routed-veth"

    # -- IPAM hooks --------------------------------------------------------------------------------
    def assign(self, inv: Invocation, ctx: NodeContext) -> list[str]:
        """Reserve the pod's IPs; returns bare addresses."""
        raise NotImplementedError

    def release(self, inv: Invocation, ctx: NodeContext) -> None:
        raise NotImplementedError

    def ipam_gc(self, inv: Invocation, ctx: NodeContext, valid: list[dict[str, str]]) -> None:
        raise NotImplementedError

    def mtu(self, inv: Invocation, ctx: NodeContext) -> int:
        raise NotImplementedError

    def ready(self, inv: Invocation, ctx: NodeContext) -> None:
        """Raise CniError(50) when the node side is not ready."""

    # -- the plugin --------------------------------------------------------------------------------
    def validate(self, conf: dict[str, Any]) -> None:
        mtu = conf.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            raise CniError(ERR_INVALID_CONFIG, f"invalid mtu {mtu!r}")

    def host_ifname(self, inv: Invocation) -> str:
        ns, pod = pod_identity(inv.args)
        prefix = str(inv.conf.get("interfacePrefix") or DEFAULT_PREFIX).split(",")[0]
        return calico_veth_name(ns, pod, inv.args.container_id, prefix)

    def add(self, inv: Invocation) -> Result:
        ctx = node_context(inv.conf)
        k, node_ns, pod_ns, ifname = inv.k, ctx.node_ns, inv.args.netns_name, inv.args.ifname
        if not k.netns_exists(pod_ns):
            raise CniError(ERR_INVALID_CONFIG, f"failed to open netns {inv.args.netns!r}: no such namespace")
        if k.link_get(pod_ns, ifname) is not None:
            raise CniError(ERR_EXISTS, f"interface {ifname!r} already exists in {pod_ns}")
        host_if = self.host_ifname(inv)
        mtu = self.mtu(inv, ctx)
        ips = self.assign(inv, ctx)
        # The pod end's MAC is pinned (locally administered, from the attachment) so the result needs no
        # read-back: netlink round trips are the main per-pod cost (benchmarks/README.md).
        pod_mac = local_mac(f"{inv.args.container_id}/{ifname}/pod")
        try:
            try:
                k.veth_add(node_ns, host_if, pod_ns, ifname, mtu=mtu, mac=HOST_VETH_MAC, peer_mac=pod_mac,
                           up=True, ipv4_conf=HOST_IPV4_CONF)
            except KernelError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                # a host veth left over from a crashed attempt for the same pod (the pod end was checked
                # above): remove it and try once more, instead of probing for it on every ADD
                k.link_del(node_ns, host_if)
                k.veth_add(node_ns, host_if, pod_ns, ifname, mtu=mtu, mac=HOST_VETH_MAC, peer_mac=pod_mac,
                           up=True, ipv4_conf=HOST_IPV4_CONF)
            k.neigh_parms_set(node_ns, host_if, proxy_delay_ms=HOST_PROXY_DELAY_MS)
            for ip in ips:
                k.addr_add(pod_ns, ifname, f"{ip}/32")
            k.route_replace(pod_ns, Route(dst=f"{CALICO_GATEWAY}/32", dev=ifname, scope="link"))
            k.route_replace(pod_ns, Route(dst="default", via=CALICO_GATEWAY, dev=ifname))
            for ip in ips:
                self._add_host_route(k, node_ns, ip, host_if)
            # Scale wall: one neighbour table serves every namespace of the machine (gc_thresh3 = 1024
            # dynamic entries). Both MACs are known, so these entries are PERMANENT and do not count;
            # calico would have them learned (proxy ARP answers for 169.254.1.1).
            k.neigh_replace(pod_ns, ifname, CALICO_GATEWAY, HOST_VETH_MAC, permanent=True)
            for ip in ips:
                k.neigh_replace(node_ns, host_if, ip, pod_mac, permanent=True)
        except Exception:
            self.release(inv, ctx)
            if k.netns_exists(node_ns):
                k.link_del(node_ns, host_if)
            raise
        ns, pod = pod_identity(inv.args)
        write_atomic(_endpoint_file(ctx, inv.args.container_id, ifname), json.dumps(asdict(WorkloadEndpoint(
            ns or "", pod or "", inv.args.container_id, ifname, ips[0], host_if, ctx.node))))
        return Result(
            interfaces=[Interface(host_if, HOST_VETH_MAC), Interface(ifname, pod_mac, sandbox=inv.args.netns)],
            ips=[IPConfig(f"{ip}/32", None, 1) for ip in ips],
            routes=[RouteConfig("0.0.0.0/0", CALICO_GATEWAY)])

    @staticmethod
    def _add_host_route(k: Kernel, node_ns: str, ip: str, host_if: str) -> None:
        """`<ip>/32 dev caliX`; an existing route for the address on another interface is an error
        (calico cni-plugin SetupRoutes adds the route and inspects only when the kernel says EEXIST, so no
        route dump happens per pod - a dump per ADD would make a node's pods quadratic)."""
        route = Route(dst=f"{ip}/32", dev=host_if, scope="link")
        try:
            k.route_add(node_ns, route)
            return
        except KernelError as exc:
            if exc.errno != errno.EEXIST:
                raise
        for r in k.routes(node_ns):  # the kernel layer skips interfaces deleted mid-dump
            if r.dst == route.dst and r.dev not in (None, host_if) and r.kind == "unicast":
                raise CniError(ERR_EXISTS, f"route {r.dst} already exists for an interface other than "
                               f"{host_if!r}", f"it points at {r.dev}")
        k.route_replace(node_ns, route)

    def delete(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        self.release(inv, ctx)
        if inv.k.netns_exists(ctx.node_ns):
            inv.k.link_del(ctx.node_ns, self.host_ifname(inv))  # routes on it go with it
        _endpoint_file(ctx, inv.args.container_id, inv.args.ifname).unlink(missing_ok=True)

    def check(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        k, pod_ns, ifname, host_if = inv.k, inv.args.netns_name, inv.args.ifname, self.host_ifname(inv)
        link = k.link_get(ctx.node_ns, host_if)
        if link is None or link.mac != HOST_VETH_MAC:
            raise CniError(ERR_CHECK_FAILED, f"host veth {host_if} missing or has the wrong MAC")
        if not k.netns_exists(pod_ns) or k.link_get(pod_ns, ifname) is None:
            raise CniError(ERR_CHECK_FAILED, f"{ifname} missing in {pod_ns}")
        prev = inv.prev_result
        want = [ip.address for ip in prev.ips] if prev else [c for _, c in k.addrs(pod_ns, ifname)]
        have = {c for _, c in k.addrs(pod_ns, ifname)}
        host_routes = {r.dst for r in k.routes(ctx.node_ns) if r.dev == host_if}
        for cidr in want:
            ip = str(ipaddress.ip_interface(cidr).ip)
            if f"{ip}/32" not in have:
                raise CniError(ERR_CHECK_FAILED, f"{ip}/32 not on {ifname} in {pod_ns}")
            if f"{ip}/32" not in host_routes:
                raise CniError(ERR_CHECK_FAILED, f"host route {ip}/32 dev {host_if} missing")
        pod_routes = {(r.dst, r.via) for r in k.routes(pod_ns) if r.dev == ifname}
        if ("default", CALICO_GATEWAY) not in pod_routes:
            raise CniError(ERR_CHECK_FAILED, f"default route via {CALICO_GATEWAY} missing in {pod_ns}")

    def gc(self, inv: Invocation) -> None:
        ctx = node_context(inv.conf)
        valid = [a for a in inv.conf.get("cni.dev/valid-attachments") or [] if isinstance(a, dict)]
        self.ipam_gc(inv, ctx, valid)
        keep = {(a.get("containerID", ""), a.get("ifname", "")) for a in valid}
        for ep in list_endpoints(ctx):
            if (ep.container_id, ep.ifname) not in keep:
                if inv.k.netns_exists(ctx.node_ns):
                    inv.k.link_del(ctx.node_ns, ep.host_ifname)
                _endpoint_file(ctx, ep.container_id, ep.ifname).unlink(missing_ok=True)

    def status(self, inv: Invocation) -> None:
        self.ready(inv, node_context(inv.conf))
