"""The recording fake enforces the kernel's preconditions, so unit tests of agents catch real mistakes."""

from __future__ import annotations

import pytest

from netsim import fabric
from netsim.kernel.api import KernelError, Route
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import default_cluster


def test_links_need_their_namespace_and_unique_names():
    k = FakeKernel()
    k.netns_create("a")
    with pytest.raises(KernelError):
        k.netns_create("a")
    with pytest.raises(KernelError):
        k.bridge_add("missing", "br0")
    k.bridge_add("a", "br0")
    with pytest.raises(KernelError):
        k.bridge_add("a", "br0")
    with pytest.raises(KernelError, match="15 characters"):
        k.bridge_add("a", "a-very-long-name0")


def test_veth_ends_live_in_their_namespaces_and_die_together():
    k = FakeKernel()
    k.netns_create("node")
    k.netns_create("pod")
    k.veth_add("node", "veth1", "pod", "eth0", mtu=1450)
    k.addr_add("pod", "eth0", "10.244.0.2/24")
    assert k.link_get("pod", "eth0").mtu == 1450
    k.netns_delete("pod")
    assert k.link_get("node", "veth1") is None


def test_route_needs_device_and_replace_is_by_destination():
    k = FakeKernel()
    k.netns_create("n")
    with pytest.raises(KernelError):
        k.route_replace("n", Route(dst="10.0.0.0/24", dev="nope"))
    k.route_replace("n", Route(dst="10.0.0.0/24", kind="blackhole"))
    k.route_replace("n", Route(dst="10.0.0.0/24", kind="blackhole", proto=80))
    assert k.routes("n") == [Route(dst="10.0.0.0/24", kind="blackhole", proto=80)]


def test_fabric_builds_the_documented_node_layout():
    k = FakeKernel()
    spec = default_cluster("demo")
    fabric.build_fabric(k, spec)
    rec = fabric.add_node(k, spec, 1, spec.nodes[1])
    ns = rec["netns"]
    assert rec == {**rec, "ip": "172.18.0.3", "podCIDR": "10.244.1.0/24", "netns": "netsim-demo.node.node-2"}
    assert k.addrs(ns, "eth0") == [("eth0", "172.18.0.3/16")]
    assert k.routes(ns) == [Route(dst="default", via="172.18.0.1")]
    assert k.sysctl_get(ns, "net.bridge.bridge-nf-call-iptables") == "1"
    assert k.sysctl_get(ns, "net.ipv4.ip_forward") == "1"
    assert k.link_get("netsim-demo.fabric", "n1").master == "underlay"
    host = fabric.add_host(k, spec, 0, spec.external_hosts[0])
    assert host["gateway"] == "203.0.113.1"
    assert k.addrs("netsim-demo.fabric", "x0") == [("x0", "203.0.113.1/24")]
    assert k.link_get("netsim-demo.fabric", "h0").master == "x0"


def test_hosts_on_one_external_subnet_share_a_segment():
    from netsim.model.cluster import parse_cluster
    from netsim.model.errors import Source
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "demo"},
                          "spec": {"nodes": 1, "externalHosts": [{"name": "a", "ip": "203.0.113.10"},
                                                                 {"name": "b", "ip": "203.0.113.20"},
                                                                 {"name": "c", "ip": "198.51.100.7"}]}},
                         Source("<t>"))
    k = FakeKernel()
    fabric.build_fabric(k, spec)
    for i, h in enumerate(spec.external_hosts):
        fabric.add_host(k, spec, i, h)
    ns = "netsim-demo.fabric"
    assert [k.link_get(ns, p).master for p in ("h0", "h1", "h2")] == ["x0", "x0", "x1"]
    assert k.addrs(ns, "x0") == [("x0", "203.0.113.1/24")] and k.addrs(ns, "x1") == [("x1", "198.51.100.1/24")]


def test_missing_vxlan_is_a_clear_error():
    from netsim.model.errors import MissingDependency

    class NoVxlan(FakeKernel):
        def vxlan_add(self, *a, **kw):
            raise KernelError("Operation not supported", 95)

    k = NoVxlan()
    spec = default_cluster("demo")
    fabric.build_fabric(k, spec)
    with pytest.raises(MissingDependency, match="CONFIG_VXLAN"):
        fabric.check_vxlan(k, spec)
    ok = FakeKernel()
    fabric.build_fabric(ok, spec)
    fabric.check_vxlan(ok, spec)
    assert ok.link_get("netsim-demo.fabric", "netsim-vxchk") is None
