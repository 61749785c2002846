"""The source address of node and external-host traffic where policy judges it (netsim.policy.paths)."""

from __future__ import annotations

import pytest

from netsim.policy.paths import NodeAddresses, from_host_via_node, from_node

CALICO = NodeAddresses.from_devices("n1", {"lo": "127.0.0.1", "eth0": "172.18.0.2", "vxlan.calico": "10.244.9.128"})
FLANNEL = NodeAddresses.from_devices("n1", {"eth0": "172.18.0.2", "flannel.1": "10.244.0.0", "cni0": "10.244.0.1"})
CANAL = NodeAddresses.from_devices("n1", {"eth0": "172.18.0.2", "flannel.1": "10.244.0.0"})
HOST = "203.0.113.10"


def test_from_devices() -> None:
    assert NodeAddresses("n1", "172.18.0.2", "10.244.9.128", None) == CALICO
    assert NodeAddresses("n1", "172.18.0.2", "10.244.0.0", "10.244.0.1") == FLANNEL


@pytest.mark.parametrize(("plugin", "backend", "node", "local", "remote"), [
    ("calico", "vxlan", CALICO, "172.18.0.2", "10.244.9.128"),   # cali veths have no address: eth0's
    ("calico", "direct", CALICO, "172.18.0.2", "172.18.0.2"),
    ("flannel", "vxlan", FLANNEL, "10.244.0.1", "10.244.0.0"),   # cni0 locally, flannel.1 across
    ("flannel", "host-gw", FLANNEL, "10.244.0.1", "172.18.0.2"),
    ("canal", "vxlan", CANAL, "172.18.0.2", "10.244.0.0"),
])
def test_node_to_pod(plugin: str, backend: str, node: NodeAddresses, local: str, remote: str) -> None:
    here = from_node(plugin, backend, node, "n1")
    assert (here.policed, here.seen) == (False, local)  # host -> local pod: OUTPUT path, never policed
    there = from_node(plugin, backend, node, "n2")
    assert (there.policed, there.judged, there.seen) == (True, remote, remote)


def test_host_via_nodeport_cluster_policy() -> None:
    # Endpoint on the ingress node: FORWARD (policy) runs before POSTROUTING's MASQUERADE.
    local = from_host_via_node("calico", "vxlan", HOST, CALICO, "n1", external_policy_local=False)
    assert (local.policed, local.judged, local.seen, local.masqueraded) == (True, HOST, "172.18.0.2", True)
    # Elsewhere: masqueraded on the ingress node before it crosses the overlay.
    remote = from_host_via_node("calico", "vxlan", HOST, CALICO, "n2", external_policy_local=False)
    assert (remote.judged, remote.seen) == ("10.244.9.128", "10.244.9.128")
    flannel_local = from_host_via_node("flannel", "vxlan", HOST, FLANNEL, "n1", external_policy_local=False)
    assert flannel_local.seen == "10.244.0.1"


def test_host_via_nodeport_local_policy_keeps_the_client_address() -> None:
    a = from_host_via_node("calico", "vxlan", HOST, CALICO, "n1", external_policy_local=True)
    assert (a.judged, a.seen, a.masqueraded) == (HOST, HOST, False)
