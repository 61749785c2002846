"""flannel: leases, subnet.env, flanneld (vxlan and host-gw) against FakeKernel, iptables, the CNI plugin."""

from __future__ import annotations

import subprocess

import pytest
from conftest import CLUSTER, NODES

from cni_plugins import flannel
from cni_plugins.flannel import Flanneld, FlannelNetConf, lease_for, read_subnet_env, render_iptables
from cni_plugins.skel import invoke
from cni_plugins.types import CniError
from netsim.kernel.api import Route
from netsim.model.errors import SpecError

NET = FlannelNetConf()


def leases(net=NET, nodes=NODES):
    return [lease_for(CLUSTER, n, ip, f"10.244.{i}.0/24", net) for i, (n, ip) in enumerate(nodes.items())]


def ns(node: str) -> str:
    return f"netsim-c.node.{node}"


# --- leases and subnet.env ------------------------------------------------------------------------

def test_lease_must_sit_inside_network():
    with pytest.raises(SpecError, match="not inside"):
        lease_for(CLUSTER, "a", "172.18.0.2", "10.99.0.0/24", NET)
    le = lease_for(CLUSTER, "a", "172.18.0.2", "10.244.3.0/24", NET)
    assert (le.network_ip, le.gateway) == ("10.244.3.0", "10.244.3.1")
    first = int(le.vtep_mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered unicast
    assert le.vtep_mac == lease_for(CLUSTER, "a", "172.18.0.2", "10.244.3.0/24", NET).vtep_mac
    assert le.vtep_mac != lease_for(CLUSTER, "b", "172.18.0.3", "10.244.4.0/24", NET).vtep_mac


def test_subnet_env_has_exactly_the_four_keys(kernel, ctx):
    Flanneld(kernel, ctx("b"), NET).sync(leases())
    text = flannel.subnet_env_path(ctx("b")).read_text()
    assert text == ("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n"
                    "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    assert str(flannel.subnet_env_path(ctx("b"))).endswith("/nodes/b/flannel/subnet.env")
    env = read_subnet_env(flannel.subnet_env_path(ctx("b")))
    assert (env.subnet, env.gateway, env.mtu, env.ipmasq) == ("10.244.1.0/24", "10.244.1.1", 1450, True)


def test_subnet_env_absent_or_incomplete_fails_clearly(tmp_path):
    with pytest.raises(CniError) as exc:
        read_subnet_env(tmp_path / "subnet.env")
    assert exc.value.code == 11 and "subnet.env" in exc.value.msg
    (tmp_path / "subnet.env").write_text("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n")
    with pytest.raises(CniError, match="FLANNEL_MTU, FLANNEL_IPMASQ"):
        read_subnet_env(tmp_path / "subnet.env")


# --- flanneld, vxlan ------------------------------------------------------------------------------

def test_vxlan_device_and_one_triple_per_remote_node(kernel, ctx):
    all_leases = leases()
    Flanneld(kernel, ctx("a"), NET).sync(all_leases)
    dev = kernel.link_get(ns("a"), "flannel.1")
    assert dev.kind == "vxlan" and dev.mtu == 1450 and dev.up
    assert dev.vxlan["vni"] == 1 and dev.vxlan["port"] == 8472 and dev.vxlan["learning"] is False
    assert dev.vxlan["local"] == "172.18.0.2"
    assert dev.mac == all_leases[0].vtep_mac
    assert kernel.addrs(ns("a"), "flannel.1") == [("flannel.1", "10.244.0.0/32")]
    neighs = sorted((n.ip, n.mac, n.permanent) for n in kernel.neighs(ns("a"), "flannel.1"))
    assert neighs == [("10.244.1.0", all_leases[1].vtep_mac, True), ("10.244.2.0", all_leases[2].vtep_mac, True)]
    fdbs = sorted((f.mac, f.dst, f.permanent) for f in kernel.fdbs(ns("a"), "flannel.1"))
    assert fdbs == sorted([(all_leases[1].vtep_mac, "172.18.0.3", True), (all_leases[2].vtep_mac, "172.18.0.4", True)])
    routes = sorted((r.dst, r.via, r.dev, r.onlink) for r in kernel.routes(ns("a")) if r.dev == "flannel.1")
    assert routes == [("10.244.1.0/24", "10.244.1.0", "flannel.1", True),
                      ("10.244.2.0/24", "10.244.2.0", "flannel.1", True)]


def test_peer_order_neigh_then_fdb_then_route(kernel, ctx):
    Flanneld(kernel, ctx("a"), NET).sync(leases())
    ops = [name for name, args in kernel.calls if name in ("neigh_replace", "fdb_replace", "route_replace")]
    assert ops[:3] == ["neigh_replace", "fdb_replace", "route_replace"]


def test_node_removed_and_added_updates_others(kernel, ctx):
    d = Flanneld(kernel, ctx("a"), NET)
    all_leases = leases()
    d.sync(all_leases)
    d.sync(all_leases[:2])  # node c goes away
    assert [n.ip for n in kernel.neighs(ns("a"), "flannel.1")] == ["10.244.1.0"]
    assert [f.dst for f in kernel.fdbs(ns("a"), "flannel.1")] == ["172.18.0.3"]
    assert [r.dst for r in kernel.routes(ns("a")) if r.dev == "flannel.1"] == ["10.244.1.0/24"]
    d.sync(all_leases)  # and comes back
    assert len(kernel.neighs(ns("a"), "flannel.1")) == 2


def test_resync_is_quiet_and_device_is_stable(kernel, ctx):
    d = Flanneld(kernel, ctx("a"), NET)
    d.sync(leases())
    mac = kernel.link_get(ns("a"), "flannel.1").mac
    kernel.calls.clear()
    d.sync(leases())
    writes = [c for c, _ in kernel.calls if c in ("vxlan_add", "link_del", "neigh_replace", "fdb_replace",
                                                  "route_replace", "neigh_del", "fdb_del", "route_del")]
    assert writes == []
    # a restarted daemon (new object) derives the same VTEP MAC
    Flanneld(kernel, ctx("a"), NET).sync(leases())
    assert kernel.link_get(ns("a"), "flannel.1").mac == mac


def test_incompatible_device_is_recreated(kernel, ctx):
    kernel.vxlan_add(ns("a"), "flannel.1", vni=7, dev="eth0", local="172.18.0.2", port=8472)
    Flanneld(kernel, ctx("a"), NET).sync(leases())
    assert kernel.link_get(ns("a"), "flannel.1").vxlan["vni"] == 1


# --- flanneld, host-gw ----------------------------------------------------------------------------

def test_host_gw_routes_and_no_device(kernel, ctx):
    net = FlannelNetConf(backend="host-gw")
    d = Flanneld(kernel, ctx("a"), net)
    d.sync(leases(net))
    assert kernel.link_get(ns("a"), "flannel.1") is None
    routes = sorted((r.dst, r.via, r.dev) for r in kernel.routes(ns("a")))
    assert routes == [("10.244.1.0/24", "172.18.0.3", "eth0"), ("10.244.2.0/24", "172.18.0.4", "eth0")]
    assert "FLANNEL_MTU=1500" in flannel.subnet_env_path(ctx("a")).read_text()
    kernel.route_replace(ns("a"), Route(dst="192.168.5.0/24", via="172.18.0.9", dev="eth0"))  # not ours
    d.sync(leases(net)[:2])
    routes = sorted(r.dst for r in kernel.routes(ns("a")))
    assert routes == ["10.244.1.0/24", "192.168.5.0/24"]


# --- iptables -------------------------------------------------------------------------------------

def test_iptables_payload_exact_order():
    le = leases()[1]
    payload = render_iptables(NET, le)
    mc, fc = '-m comment --comment "flanneld masq"', '-m comment --comment "flanneld forward"'
    assert payload.splitlines() == [
        "*nat", ":FLANNEL-POSTRTG - [0:0]",
        f"-A POSTROUTING {mc} -j FLANNEL-POSTRTG",
        f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {mc} -j RETURN",
        f"-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 {mc} -j RETURN",
        f"-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 {mc} -j RETURN",
        f"-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 {mc} -j RETURN",
        f"-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 {mc} -j MASQUERADE --random-fully",
        f"-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 {mc} -j MASQUERADE --random-fully",
        "COMMIT", "*filter", ":FLANNEL-FWD - [0:0]",
        f"-A FORWARD {fc} -j FLANNEL-FWD",
        f"-A FLANNEL-FWD -s 10.244.0.0/16 {fc} -j ACCEPT",
        f"-A FLANNEL-FWD -d 10.244.0.0/16 {fc} -j ACCEPT",
        "COMMIT"]
    assert ":POSTROUTING" not in payload and ":FORWARD" not in payload  # built-ins never flushed


def test_iptables_reapply_does_not_duplicate_jumps(kernel, ctx):
    d = Flanneld(kernel, ctx("a"), NET)
    d.sync(leases())
    first = kernel.ns[ns("a")].payloads[-1][1]
    assert "-A POSTROUTING" in first and "-A FORWARD" in first
    saved = ("*nat\n-A POSTROUTING -j KUBE-POSTROUTING\n"
             '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG\nCOMMIT\n'
             '*filter\n-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD\nCOMMIT\n')
    kernel.run_results["iptables-save"] = subprocess.CompletedProcess(["iptables-save"], 0, saved, "")
    d.sync(leases())
    second = kernel.ns[ns("a")].payloads[-1][1]
    assert "-A POSTROUTING" not in second and "-A FORWARD " not in second
    assert second.count("-A FLANNEL-POSTRTG") == 6
    assert [name for name, args in kernel.calls if name == "iptables_restore"] == ["iptables_restore"] * 2


def test_no_masq_chain_without_ipmasq():
    payload = render_iptables(FlannelNetConf(ip_masq=False, random_fully=False), leases()[0])
    assert "*nat" not in payload and "FLANNEL-FWD" in payload


# --- the CNI plugin -------------------------------------------------------------------------------

def conf(netsim_key, node="a", **extra):
    return {"cniVersion": "1.0.0", "name": "cbr0", "type": "netsim-flannel", "netsim": netsim_key(node), **extra}


@pytest.fixture
def ready(kernel, ctx):
    """flanneld has run on every node (vxlan)."""
    for node in NODES:
        Flanneld(kernel, ctx(node), NET).sync(leases())


def test_add_builds_bridge_veth_and_pod(kernel, ctx, netsim_key, make_pod, ready):
    args = make_pod("web")
    res = invoke(flannel.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    host_if = flannel.host_veth_name(args.container_id, "eth0")
    assert host_if.startswith("veth") and len(host_if) == 12
    node, pod = ns("a"), args.netns_name
    br = kernel.link_get(node, "cni0")
    assert br.kind == "bridge" and br.mtu == 1450
    assert br.mac == flannel.local_mac("c/a/cni0")
    assert kernel.addrs(node, "cni0") == [("cni0", "10.244.0.1/24")]
    hv = kernel.link_get(node, host_if)
    assert hv.master == "cni0" and hv.mtu == 1450 and kernel.ns[node].hairpin[host_if] is True
    assert kernel.link_get(pod, "eth0").mtu == 1450
    assert ("veth_add", (node, host_if, pod, "eth0", 1450)) in kernel.calls  # pod end made in place
    assert kernel.addrs(pod, "eth0") == [("eth0", "10.244.0.2/24")]
    assert sorted((r.dst, r.via, r.dev) for r in kernel.routes(pod)) == [
        ("10.244.0.0/16", "10.244.0.1", "eth0"), ("default", "10.244.0.1", "eth0")]
    assert kernel.sysctl_get(pod, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert res["interfaces"] == [
        {"name": "cni0", "mac": br.mac}, {"name": host_if, "mac": hv.mac},
        {"name": "eth0", "mac": kernel.link_get(pod, "eth0").mac, "sandbox": args.netns}]
    assert res["ips"] == [{"address": "10.244.0.2/24", "gateway": "10.244.0.1", "interface": 2}]
    assert res["routes"] == [{"dst": "10.244.0.0/16"}, {"dst": "0.0.0.0/0", "gw": "10.244.0.1"}]
    ipfile = ctx("a").node_dir / "cni" / "networks" / "cbr0" / "10.244.0.2"
    assert ipfile.read_bytes() == f"{args.container_id}\r\neth0".encode()


def test_add_sets_arp_notify_with_the_veth_and_checks_the_bridge_once_per_node(kernel, netsim_key, make_pod,
                                                                              ready):
    """Per pod, no /proc/sys access (its lookup costs time in proportion to the namespaces on the machine)
    and, once this process has checked a node's cni0, no address list or ip_forward read: only the bridge
    lookup. The pod still ends with arp_notify=1 and the bridge with its address (issue #18)."""
    first, second = make_pod("p1"), make_pod("p2")
    invoke(flannel.PLUGIN, "ADD", first, conf(netsim_key), kernel)
    kernel.calls.clear()
    invoke(flannel.PLUGIN, "ADD", second, conf(netsim_key), kernel)
    node, pod = ns("a"), second.netns_name
    assert [c for c in kernel.calls if c[0].startswith("sysctl")] == []
    assert [c for c in kernel.calls if c[0] == "addrs"] == []
    assert kernel.sysctl_get(pod, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert kernel.addrs(node, "cni0") == [("cni0", "10.244.0.1/24")]
    assert kernel.link_get(node, flannel.host_veth_name(second.container_id, "eth0")).master == "cni0"


def test_a_replaced_bridge_is_checked_again(kernel, netsim_key, make_pod, ready):
    """A node's cni0 deleted between ADDs is made again with its address by the next ADD; a cni0 made
    by someone else in its place (a new link) is checked in full: a wrong address is refused."""
    invoke(flannel.PLUGIN, "ADD", make_pod("p1"), conf(netsim_key), kernel)
    node = ns("a")
    kernel.link_del(node, "cni0")
    invoke(flannel.PLUGIN, "ADD", make_pod("p2"), conf(netsim_key), kernel)
    assert kernel.addrs(node, "cni0") == [("cni0", "10.244.0.1/24")]
    kernel.link_del(node, "cni0")
    kernel.bridge_add(node, "cni0")
    kernel.addr_add(node, "cni0", "10.9.9.1/24")
    with pytest.raises(CniError) as exc:
        invoke(flannel.PLUGIN, "ADD", make_pod("p3"), conf(netsim_key), kernel)
    assert "different" in exc.value.msg


def test_host_gw_pods_get_mtu_1500(kernel, ctx, netsim_key, make_pod):
    net = FlannelNetConf(backend="host-gw")
    Flanneld(kernel, ctx("a"), net).sync(leases(net))
    args = make_pod("web")
    invoke(flannel.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    assert kernel.link_get(args.netns_name, "eth0").mtu == 1500


def test_second_pod_and_second_add_fails(kernel, netsim_key, make_pod, ready):
    a, b = make_pod("a1"), make_pod("b1")
    invoke(flannel.PLUGIN, "ADD", a, conf(netsim_key), kernel)
    res = invoke(flannel.PLUGIN, "ADD", b, conf(netsim_key), kernel)
    assert res["ips"][0]["address"] == "10.244.0.3/24"
    with pytest.raises(CniError) as exc:
        invoke(flannel.PLUGIN, "ADD", a, conf(netsim_key), kernel)
    assert exc.value.code == 101


def test_add_before_flanneld_fails_and_status_says_not_ready(kernel, netsim_key, make_pod):
    with pytest.raises(CniError) as exc:
        invoke(flannel.PLUGIN, "ADD", make_pod("x"), conf(netsim_key), kernel)
    assert exc.value.code == 11 and "subnet.env" in exc.value.msg
    with pytest.raises(CniError) as exc:
        invoke(flannel.PLUGIN, "STATUS", make_pod("x"), conf(netsim_key, cniVersion="1.1.0"), kernel)
    assert exc.value.code == 50


def test_status_ok_when_ready(kernel, netsim_key, make_pod, ready):
    assert invoke(flannel.PLUGIN, "STATUS", make_pod("x"), conf(netsim_key, cniVersion="1.1.0"), kernel) == {}


def test_del_releases_and_is_idempotent(kernel, ctx, netsim_key, make_pod, ready):
    args = make_pod("web")
    invoke(flannel.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    host_if = flannel.host_veth_name(args.container_id, "eth0")
    invoke(flannel.PLUGIN, "DEL", args, conf(netsim_key), kernel)
    assert kernel.link_get(ns("a"), host_if) is None
    assert kernel.link_get(args.netns_name, "eth0") is None
    assert not (ctx("a").node_dir / "cni" / "networks" / "cbr0" / "10.244.0.2").exists()
    invoke(flannel.PLUGIN, "DEL", args, conf(netsim_key), kernel)  # again
    kernel.netns_delete(args.netns_name)
    invoke(flannel.PLUGIN, "DEL", args, conf(netsim_key), kernel)  # netns gone


def test_check(kernel, netsim_key, make_pod, ready):
    args = make_pod("web")
    invoke(flannel.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    assert invoke(flannel.PLUGIN, "CHECK", args, conf(netsim_key), kernel) == {}
    kernel.addr_del(args.netns_name, "eth0", "10.244.0.2/24")
    with pytest.raises(CniError) as exc:
        invoke(flannel.PLUGIN, "CHECK", args, conf(netsim_key), kernel)
    assert exc.value.code == 102
    kernel.link_del(ns("a"), flannel.host_veth_name(args.container_id, "eth0"))
    with pytest.raises(CniError, match="host veth"):
        invoke(flannel.PLUGIN, "CHECK", args, conf(netsim_key), kernel)


def test_gc_removes_stale_ips_and_veths(kernel, ctx, netsim_key, make_pod, ready):
    keep, drop = make_pod("keep"), make_pod("drop")
    for a in (keep, drop):
        invoke(flannel.PLUGIN, "ADD", a, conf(netsim_key), kernel)
    gc_conf = conf(netsim_key, cniVersion="1.1.0",
                   **{"cni.dev/valid-attachments": [{"containerID": keep.container_id, "ifname": "eth0"}]})
    invoke(flannel.PLUGIN, "GC", keep, gc_conf, kernel)
    assert kernel.link_get(ns("a"), flannel.host_veth_name(drop.container_id, "eth0")) is None
    assert kernel.link_get(ns("a"), flannel.host_veth_name(keep.container_id, "eth0")) is not None
    files = sorted(p.name for p in (ctx("a").node_dir / "cni" / "networks" / "cbr0").iterdir() if p.name[0] == "1")
    assert files == ["10.244.0.2"]


def test_bridge_port_limit(kernel, netsim_key, make_pod, ready, monkeypatch):
    monkeypatch.setattr(flannel, "BRIDGE_MAX_PORTS", 2)
    invoke(flannel.PLUGIN, "ADD", make_pod("p1"), conf(netsim_key), kernel)
    invoke(flannel.PLUGIN, "ADD", make_pod("p2"), conf(netsim_key), kernel)
    with pytest.raises(CniError) as exc:
        invoke(flannel.PLUGIN, "ADD", make_pod("p3"), conf(netsim_key), kernel)
    assert exc.value.code == 100 and "cni0" in exc.value.msg and "2 ports" in exc.value.details


def test_failed_add_releases_ip(kernel, ctx, netsim_key, make_pod, ready):
    kernel.bridge_add(ns("a"), "cni9")
    kernel.addr_add(ns("a"), "cni9", "192.168.0.1/24")
    with pytest.raises(CniError, match="different"):
        invoke(flannel.PLUGIN, "ADD", make_pod("x"), conf(netsim_key, delegate={"bridge": "cni9"}), kernel)
    assert not list((ctx("a").node_dir / "cni" / "networks" / "cbr0").glob("10.*"))


def test_cross_node_pod_subnets_and_veth_names_are_deterministic(kernel, netsim_key, make_pod, ready):
    args = make_pod("web", cid="0123456789abcdef")
    res = invoke(flannel.PLUGIN, "ADD", args, conf(netsim_key, "b"), kernel)
    assert res["ips"][0]["address"] == "10.244.1.2/24"
    assert flannel.host_veth_name("0123456789abcdef", "eth0") == flannel.host_veth_name("0123456789abcdef", "eth0")
    assert flannel.host_veth_name("0123456789abcdef", "eth0") != flannel.host_veth_name("0123456789abcdef", "net1")
