"""flannel's ADD on the real kernel once a node's cni0 is set up: how many netlink requests it costs, that it
reads or writes nothing under /proc/sys, and the pod wiring it leaves (issue #18, flannel's cost per pod).

A /proc/sys lookup costs time in proportion to the network namespaces on the machine (every namespace's
sysctl directories share one dcache hash chain), ~0.8-1.2 ms per access at 2,000 pods; the requests are
~30 us each. The wiring read back is the same as before the cut: host end enslaved to cni0 and up, hairpin
on, pod end up with its address and arp_notify=1.
"""

from __future__ import annotations

from collections import Counter

import pytest

from cni_plugins import flannel
from cni_plugins.skel import invoke
from netsim.kernel.fastnl import FastNetlink
from netsim.kernel.linux import LinuxKernel

pytestmark = pytest.mark.root

# pod eth0 exists?, cni0 lookup, veth pair (echoed), pod end up + arp_notify, hairpin, address, two routes,
# two permanent neighbour entries. Before the cut: 13 requests and 2 /proc/sys accesses.
MAX_REQUESTS = 10


def test_a_flannel_add_on_a_set_up_node_makes_ten_requests_and_no_sysctl(cni_cluster, monkeypatch):
    c = cni_cluster
    c.add_node("a", "172.31.0.2")
    cni, conf = c.start_network("flannel", "vxlan")
    invoke(cni, "ADD", c.make_pod("p0"), conf("a"), c.kernel)  # makes cni0 and checks it in full
    pod = c.make_pod("p1")  # the sandbox netns (with lo up) is the kubelet's, not the ADD's

    counts: Counter[str] = Counter()
    for name in ("request", "request_echo", "dump"):
        orig = getattr(FastNetlink, name, None)
        if orig is None:
            continue
        monkeypatch.setattr(FastNetlink, name, lambda self, *a, _o=orig, _n=name, **kw: (
            counts.update(["netlink", _n]), _o(self, *a, **kw))[1])
    orig_path = LinuxKernel._sysctl_path
    monkeypatch.setattr(LinuxKernel, "_sysctl_path", staticmethod(lambda key: (
        counts.update(["sysctl"]), orig_path(key))[1]))
    monkeypatch.setattr(LinuxKernel, "_ipr", lambda self, ns: pytest.fail(f"pyroute2 request in {ns}"))

    res = invoke(cni, "ADD", pod, conf("a"), c.kernel)
    monkeypatch.undo()

    assert counts["sysctl"] == 0, counts
    assert counts["netlink"] <= MAX_REQUESTS, counts

    k, node = c.kernel, c.ns("a")
    host_if = flannel.host_veth_name(pod.container_id, "eth0")
    host, peer = k.link_get(node, host_if), k.link_get(pod.netns_name, "eth0")
    assert host.master == "cni0" and host.up and host.mtu == 1450
    assert peer.up and peer.mac == res["interfaces"][2]["mac"]
    assert k.sysctl_get(pod.netns_name, "net.ipv4.conf.eth0.arp_notify") == "1"
    assert "hairpin on" in k.run(node, ["bridge", "-d", "link", "show", "dev", host_if]).stdout
    assert k.addrs(pod.netns_name, "eth0") == [("eth0", res["ips"][0]["address"])]
    assert c.ping(pod.netns_name, "10.244.0.1")
