"""calico's and canal's ADD on the real kernel: the host end's route_localnet, proxy_arp, forwarding and ARP
proxy_delay are set by netlink, with no /proc/sys access, and read back through /proc/sys as calico's CNI
plugin leaves them (issue #18: each /proc/sys access of a new namespace costs time in proportion to the
namespaces on the machine; four per pod before).
"""

from __future__ import annotations

from collections import Counter

import pytest

from cni_plugins.routed_veth import calico_veth_name
from cni_plugins.skel import invoke
from netsim.kernel.linux import LinuxKernel

pytestmark = pytest.mark.root


@pytest.mark.parametrize("plugin", ["calico", "canal"])
def test_routed_veth_add_sets_the_host_end_by_netlink_with_no_sysctl(cni_cluster, monkeypatch, plugin):
    c = cni_cluster
    c.add_node("a", "172.31.0.2")
    cni, conf = c.start_network(plugin, "vxlan")
    pod = c.make_pod("p1")
    counts: Counter[str] = Counter()
    orig_path = LinuxKernel._sysctl_path
    monkeypatch.setattr(LinuxKernel, "_sysctl_path", staticmethod(lambda key: (
        counts.update([key]), orig_path(key))[1]))

    invoke(cni, "ADD", pod, conf("a"), c.kernel)
    monkeypatch.undo()

    assert sum(counts.values()) == 0, counts
    k, node = c.kernel, c.ns("a")
    host_if = calico_veth_name("default", "p1", pod.container_id)
    host = k.link_get(node, host_if)
    assert host.up and host.mac == "ee:ee:ee:ee:ee:ee" and k.link_get(pod.netns_name, "eth0").up
    got = {key: k.sysctl_get(node, f"net.ipv4.conf.{host_if}.{key}")
           for key in ("route_localnet", "proxy_arp", "forwarding")}
    assert got == {"route_localnet": "1", "proxy_arp": "1", "forwarding": "1"}
    assert k.sysctl_get(node, f"net.ipv4.neigh.{host_if}.proxy_delay") == "0"
    assert k.sysctl_get(node, "net.ipv4.neigh.lo.proxy_delay") != "0"  # the kernel default is not 0
