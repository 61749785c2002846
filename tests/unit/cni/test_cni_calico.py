"""calico: node daemon (vxlan and direct) and the routed-veth CNI plugin against FakeKernel."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from conftest import NODES

from cni_plugins import calico, routed_veth
from cni_plugins.calico import CalicoNetConf, CalicoNode, CalicoNodeDaemon
from cni_plugins.ipam.calico_ipam import block_order
from cni_plugins.routed_veth import calico_veth_name
from cni_plugins.skel import invoke
from cni_plugins.types import CniArgs, CniError
from netsim.kernel.api import Route

NODE_LIST = [CalicoNode(n, ip) for n, ip in NODES.items()]


def ns(node: str) -> str:
    return f"netsim-c.node.{node}"


def daemons(kernel, ctx, backend="vxlan"):
    net = CalicoNetConf(backend=backend)
    ds = {n.name: CalicoNodeDaemon(kernel, ctx(n.name), net, n.ip) for n in NODE_LIST}
    for d in ds.values():
        d.start()
    for d in ds.values():
        d.sync(NODE_LIST)
    return ds


def test_vxlan_device_tunnel_ip_blackhole_and_peer_triples(kernel, ctx):
    ds = daemons(kernel, ctx)
    blocks = ds["a"].ipam.blocks()
    block_a = next(c for c, n in blocks.items() if n == "a")
    assert block_a == str(block_order("10.244.0.0/16", 26, "a")[0])
    dev = kernel.link_get(ns("a"), "vxlan.calico")
    assert dev.vxlan["vni"] == 4096 and dev.vxlan["port"] == 4789 and dev.mtu == 1450
    assert dev.vxlan["learning"] is False and dev.mac == calico.vtep_mac("c", "a")
    (ifname, tunnel), = kernel.addrs(ns("a"), "vxlan.calico")
    assert tunnel.endswith("/32") and ipaddress.ip_interface(tunnel).ip in ipaddress.ip_network(block_a)
    bh = [r for r in kernel.routes(ns("a")) if r.kind == "blackhole"]
    assert [(r.dst, r.proto) for r in bh] == [(block_a, 80)]
    tunnel_b = kernel.addrs(ns("b"), "vxlan.calico")[0][1].split("/")[0]
    block_b = next(c for c, n in blocks.items() if n == "b")
    neighs = {n.ip: n.mac for n in kernel.neighs(ns("a"), "vxlan.calico")}
    assert neighs[tunnel_b] == calico.vtep_mac("c", "b") and len(neighs) == 2
    fdbs = {(f.mac, f.dst) for f in kernel.fdbs(ns("a"), "vxlan.calico")}
    assert (calico.vtep_mac("c", "b"), "172.18.0.3") in fdbs and len(fdbs) == 2
    routes = {(r.dst, r.via, r.onlink) for r in kernel.routes(ns("a")) if r.dev == "vxlan.calico"}
    assert (block_b, tunnel_b, True) in routes and len(routes) == 2


def test_second_block_is_routed_and_node_removal_cleans_up(kernel, ctx):
    ds = daemons(kernel, ctx)
    for i in range(70):  # fill b's first block (tunnel IP takes one) -> second block
        ds["b"].ipam.auto_assign("b", f"k8s.x{i}", {"node": "b"})
    ds["a"].sync(NODE_LIST)
    b_blocks = ds["a"].ipam.blocks_of("b")
    assert len(b_blocks) == 2
    routed = {r.dst for r in kernel.routes(ns("a")) if r.dev == "vxlan.calico"}
    assert set(b_blocks) <= routed
    ds["a"].sync([n for n in NODE_LIST if n.name != "b"])
    assert not set(b_blocks) & {r.dst for r in kernel.routes(ns("a"))}
    assert len(kernel.neighs(ns("a"), "vxlan.calico")) == 1
    assert len(kernel.fdbs(ns("a"), "vxlan.calico")) == 1


def test_direct_backend_routes_like_bgp(kernel, ctx):
    ds = daemons(kernel, ctx, "direct")
    assert kernel.link_get(ns("a"), "vxlan.calico") is None
    blocks = ds["a"].ipam.blocks()
    got = sorted((r.dst, r.via, r.dev, r.proto) for r in kernel.routes(ns("a")) if r.kind == "unicast")
    want = sorted((c, NODES[n], "eth0", 12) for c, n in blocks.items() if n != "a")
    assert got == want
    kernel.route_replace(ns("a"), Route(dst="192.168.9.0/24", via="172.18.0.9", dev="eth0"))
    ds["a"].sync([n for n in NODE_LIST if n.name != "c"])
    assert sorted(r.dst for r in kernel.routes(ns("a")) if r.kind == "unicast") == sorted(
        [c for c, n in blocks.items() if n == "b"] + ["192.168.9.0/24"])


def conf(netsim_key, node="a", **extra):
    return {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "netsim-calico",
            "ipam": {"type": "calico-ipam"}, "netsim": netsim_key(node), **extra}


def test_veth_name_rule():
    assert calico_veth_name("default", "web", "x") == "cali" + hashlib.sha1(b"default.web").hexdigest()[:11]
    assert len(calico_veth_name("default", "web", "x")) == 15
    assert calico_veth_name(None, None, "0123456789abcdef") == "cali0123456789a"


def test_add_sets_the_host_end_with_its_link_requests_not_proc_sys(kernel, ctx, netsim_key, make_pod):
    """route_localnet, proxy_arp and forwarding go with the host end's own link request and proxy_delay as
    one neighbour-table request: no /proc/sys access per pod, whose path lookup costs time in proportion
    to the namespaces on the machine (issue #18); the settings are calico's configureSysctls ones."""
    daemons(kernel, ctx)
    args = make_pod("web")
    kernel.calls.clear()
    invoke(calico.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    node, host_if = ns("a"), calico_veth_name("default", "web", args.container_id)
    assert [c for c in kernel.calls if c[0].startswith("sysctl")] == []
    assert ("neigh_parms_set", (node, host_if, 0)) in kernel.calls
    assert {key: kernel.sysctl_get(node, key) for key in routed_veth.host_sysctls(host_if)} == {
        f"net.ipv4.conf.{host_if}.route_localnet": "1", f"net.ipv4.conf.{host_if}.proxy_arp": "1",
        f"net.ipv4.conf.{host_if}.forwarding": "1", f"net.ipv4.neigh.{host_if}.proxy_delay": "0"}


def test_add_routed_veth(kernel, ctx, netsim_key, make_pod):
    ds = daemons(kernel, ctx)
    args = make_pod("web")
    res = invoke(calico.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    host_if = calico_veth_name("default", "web", args.container_id)
    node, pod = ns("a"), args.netns_name
    hv = kernel.link_get(node, host_if)
    assert hv.mac == "ee:ee:ee:ee:ee:ee" and hv.mtu == 1450 and kernel.addrs(node, host_if) == []
    for key, val in {"proxy_arp": "1", "forwarding": "1", "route_localnet": "1"}.items():
        assert kernel.sysctl_get(node, f"net.ipv4.conf.{host_if}.{key}") == val
    assert kernel.sysctl_get(node, f"net.ipv4.neigh.{host_if}.proxy_delay") == "0"
    (_, cidr), = kernel.addrs(pod, "eth0")
    ip = cidr.split("/")[0]
    assert cidr.endswith("/32")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(ds["a"].ipam.blocks_of("a")[0])
    assert sorted((r.dst, r.via, r.scope) for r in kernel.routes(pod)) == [
        ("169.254.1.1/32", None, "link"), ("default", "169.254.1.1", None)]
    assert Route(dst=f"{ip}/32", dev=host_if, scope="link") in kernel.routes(node)
    assert res["ips"] == [{"address": f"{ip}/32", "interface": 1}]
    assert res["interfaces"][1]["sandbox"] == args.netns
    eps = ds["a"].workload_endpoints()
    assert [(e.namespace, e.pod, e.ip, e.host_ifname) for e in eps] == [("default", "web", ip, host_if)]


def test_direct_backend_pod_mtu_1500(kernel, ctx, netsim_key, make_pod):
    daemons(kernel, ctx, "direct")
    args = make_pod("web")
    invoke(calico.PLUGIN, "ADD", args, conf(netsim_key, backend="direct"), kernel)
    assert kernel.link_get(args.netns_name, "eth0").mtu == 1500


def test_del_check_and_idempotence(kernel, ctx, netsim_key, make_pod):
    ds = daemons(kernel, ctx)
    args = make_pod("web")
    res = invoke(calico.PLUGIN, "ADD", args, {**conf(netsim_key)}, kernel)
    assert invoke(calico.PLUGIN, "CHECK", args, {**conf(netsim_key), "prevResult": res}, kernel) == {}
    host_if = calico_veth_name("default", "web", args.container_id)
    kernel.route_del(ns("a"), Route(dst=res["ips"][0]["address"]))
    with pytest.raises(CniError) as exc:
        invoke(calico.PLUGIN, "CHECK", args, {**conf(netsim_key), "prevResult": res}, kernel)
    assert exc.value.code == 102
    invoke(calico.PLUGIN, "DEL", args, conf(netsim_key), kernel)
    assert kernel.link_get(ns("a"), host_if) is None
    assert [a.handle for a in ds["a"].ipam.allocations() if a.handle.startswith("k8s")] == []
    assert ds["a"].workload_endpoints() == []
    invoke(calico.PLUGIN, "DEL", args, conf(netsim_key), kernel)


def test_conflicting_host_route_is_an_error(kernel, ctx, netsim_key, make_pod):
    ds = daemons(kernel, ctx)
    next_ip = ds["a"].ipam.blocks_of("a")[0]
    base = ipaddress.ip_network(next_ip).network_address
    kernel.route_replace(ns("a"), Route(dst=f"{base + 1}/32", dev="eth0", scope="link"))  # tunnel took +0
    with pytest.raises(CniError, match="already exists"):
        invoke(calico.PLUGIN, "ADD", make_pod("web"), conf(netsim_key), kernel)
    assert [a for a in ds["a"].ipam.allocations() if a.handle.startswith("k8s")] == []


def test_fallback_name_without_pod_identity_and_gc(kernel, ctx, netsim_key, make_pod):
    daemons(kernel, ctx)
    make_pod("anon")
    args = CniArgs("feedfacecafe0001", "/run/netns/netsim-c-pod-default-anon", "eth0")
    invoke(calico.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    assert kernel.link_get(ns("a"), "califeedfacecaf") is not None
    gc = conf(netsim_key, cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    invoke(calico.PLUGIN, "GC", args, gc, kernel)
    assert kernel.link_get(ns("a"), "califeedfacecaf") is None


def test_status(kernel, ctx, netsim_key, make_pod):
    args = make_pod("x")
    with pytest.raises(CniError) as exc:
        invoke(calico.PLUGIN, "STATUS", args, conf(netsim_key, cniVersion="1.1.0"), kernel)
    assert exc.value.code == 50
    daemons(kernel, ctx)
    assert invoke(calico.PLUGIN, "STATUS", args, conf(netsim_key, cniVersion="1.1.0"), kernel) == {}


def test_invalid_config(kernel, netsim_key, make_pod):
    with pytest.raises(CniError) as exc:
        invoke(calico.PLUGIN, "ADD", make_pod("x"), conf(netsim_key, ipam={"type": "host-local"}), kernel)
    assert exc.value.code == 7
    with pytest.raises(CniError) as exc:
        invoke(calico.PLUGIN, "ADD", make_pod("x"), conf(netsim_key, mtu=12), kernel)
    assert exc.value.code == 7
