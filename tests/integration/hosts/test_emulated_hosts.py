"""A cluster over three emulated hosts: each host a namespace on the hosts' segment with its own underlay
bridge, the bridges joined by VXLAN into one L2 underlay. Traffic crosses hosts over that VXLAN; node failure
cuts the node's port on its own host; `down` removes the hosts and the segment too."""

from __future__ import annotations

import time

import pytest
from hostcluster import APP, HOSTS, check_traffic, spec, web_pods

from netsim import fabric, hostnet, naming
from tests.conftest import live_cluster

pytestmark = pytest.mark.root


def test_three_hosts_flannel_vxlan_underlay_failure_and_down(kernel):
    k = kernel
    with live_cluster(k, "hs", spec("flannel", "vxlan"), manifests=APP, timeout=120) as c:
        name = c.name
        lan = naming.lan_ns(name)
        assert k.link_get(lan, hostnet.LAN_BRIDGE) is not None
        for i, h in enumerate(HOSTS):
            ns = naming.machine_ns(name, h["name"])
            addr = h["address"].split("/")[0]
            assert (f"{hostnet.PHYS}", f"{addr}/24") in k.addrs(ns, hostnet.PHYS)
            vx = k.link_get(ns, hostnet.UNDERLAY_VXLAN)
            assert vx is not None and vx.mtu == 1450 and vx.master == naming.UNDERLAY_BRIDGE
            peers = sorted(f.dst for f in k.fdbs(ns, hostnet.UNDERLAY_VXLAN) if f.mac == hostnet.FLOOD_MAC)
            assert peers == sorted(o["address"].split("/")[0] for o in HOSTS if o is not h)
            # node-(i+1) hangs on host i's own underlay bridge, not on the cluster fabric
            port = k.link_get(ns, naming.fabric_port_for_node(i))
            assert port is not None and port.master == naming.UNDERLAY_BRIDGE
            assert k.link_get(naming.fabric_ns(name), naming.fabric_port_for_node(i)) is None
            node = k.link_get(naming.node_ns(name, f"node-{i + 1}"), naming.UPLINK)
            assert node is not None and node.mtu == 1450
        assert [n["host"] for n in c.state.nodes] == ["ha", "hb", "hc"]
        # the pod MTU loses both tunnels: flannel's 50 bytes off the node's 1450
        assert k.link_get(naming.node_ns(name, "node-1"), "flannel.1").mtu == 1400
        c.wait_converged(timeout=120)
        check_traffic(c, policy=False)
        # trace across hosts: simulated and observed agree (the walker sees one underlay)
        web = web_pods(c)
        for src, dst, port in ((f"default/{web['node-1']}", f"default/{web['node-3']}", 80),
                               ("host/client", f"{c.spec.node_ip(2)}:30080", None)):
            s = c.trace_summary(src, dst, port)
            assert s["verdict"] == "delivered" and s["agree"], (src, dst, s)
        status = c.status()
        assert [m["name"] for m in status["machines"]] == ["ha", "hb", "hc"]
        assert [n["host"] for n in status["nodes"]] == ["ha", "hb", "hc"]

        # a failed node is cut off at its own host's switch port
        c.node_fail("node-3")
        ns3, port3 = fabric.node_port(c.spec, 2)
        assert ns3 == naming.machine_ns(name, "hc")
        deadline = time.monotonic() + 20
        while k.link_get(ns3, port3).up:
            assert time.monotonic() < deadline, "node-3's port on host hc is still up"
            time.sleep(0.2)
        res = c.probe("default/friend", f"{c.spec.node_ip(2)}:30080", timeout=1)
        assert res and not any(r.connected for r in res)
        c.node_restore("node-3")
    left = kernel.netns_list(naming.cluster_prefix(name))
    assert left == [], left
