"""canal: calico veths and /32 addresses from the node podCIDR, flannel.1 between nodes, no cni0."""

from __future__ import annotations

import pytest
from conftest import CLUSTER, NODES

from cni_plugins import canal
from cni_plugins.flannel import Flanneld, FlannelNetConf, lease_for
from cni_plugins.routed_veth import calico_veth_name
from cni_plugins.skel import invoke
from cni_plugins.types import CniError
from netsim.kernel.api import Route


def conf(netsim_key, node="a", **extra):
    return {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "netsim-canal",
            "ipam": {"type": "host-local", "subnet": "usePodCidr"}, "netsim": netsim_key(node), **extra}


def sync_all(kernel, ctx, backend="vxlan"):
    net = FlannelNetConf(backend=backend)
    leases = [lease_for(CLUSTER, n, ip, f"10.244.{i}.0/24", net) for i, (n, ip) in enumerate(NODES.items())]
    for n in NODES:
        Flanneld(kernel, ctx(n), net).sync(leases)


def test_add_on_flannel_network(kernel, ctx, netsim_key, make_pod):
    sync_all(kernel, ctx)
    args = make_pod("web")
    res = invoke(canal.PLUGIN, "ADD", args, conf(netsim_key, "b"), kernel)
    node = "netsim-c.node.b"
    host_if = calico_veth_name("default", "web", args.container_id)
    assert kernel.link_get(node, "cni0") is None
    assert kernel.link_get(node, "flannel.1") is not None
    # the host end's settings by netlink, no /proc/sys access per pod (issue #18)
    assert [c for c in kernel.calls if c[0] == "sysctl_set" and host_if in c[1][1]] == []
    assert kernel.sysctl_get(node, f"net.ipv4.conf.{host_if}.proxy_arp") == "1"
    assert kernel.sysctl_get(node, f"net.ipv4.neigh.{host_if}.proxy_delay") == "0"
    hv = kernel.link_get(node, host_if)
    assert hv.mac == "ee:ee:ee:ee:ee:ee" and hv.mtu == 1450
    assert kernel.addrs(args.netns_name, "eth0") == [("eth0", "10.244.1.2/32")]
    assert res["ips"] == [{"address": "10.244.1.2/32", "interface": 1}]
    assert Route(dst="10.244.1.2/32", dev=host_if, scope="link") in kernel.routes(node)
    assert {(r.dst, r.via) for r in kernel.routes(args.netns_name)} == {("169.254.1.1/32", None),
                                                                       ("default", "169.254.1.1")}
    ipfile = ctx("b").node_dir / "cni" / "networks" / "k8s-pod-network" / "10.244.1.2"
    assert ipfile.read_bytes() == f"{args.container_id}\r\neth0".encode()
    assert [e.ip for e in canal.list_endpoints(ctx("b"))] == ["10.244.1.2"]
    invoke(canal.PLUGIN, "DEL", args, conf(netsim_key, "b"), kernel)
    assert not ipfile.exists() and kernel.link_get(node, host_if) is None


def test_host_gw_mtu_and_not_ready(kernel, ctx, netsim_key, make_pod):
    with pytest.raises(CniError) as exc:
        invoke(canal.PLUGIN, "ADD", make_pod("x"), conf(netsim_key), kernel)
    assert exc.value.code == 11
    sync_all(kernel, ctx, "host-gw")
    args = make_pod("y")
    invoke(canal.PLUGIN, "ADD", args, conf(netsim_key), kernel)
    assert kernel.link_get(args.netns_name, "eth0").mtu == 1500


def test_rejects_other_ipam(kernel, netsim_key, make_pod):
    with pytest.raises(CniError) as exc:
        invoke(canal.PLUGIN, "ADD", make_pod("x"), conf(netsim_key, ipam={"type": "host-local",
                                                                          "subnet": "10.0.0.0/24"}), kernel)
    assert exc.value.code == 7
