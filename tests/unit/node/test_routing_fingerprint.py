"""The pod network's routing fingerprint (netsim/node/network.py), read every pass: it reads calico's IPAM
index only, never every allocation, so a pod's address in its own node's block costs nothing and changes
nothing, while a claimed block or a tunnel address changes it at once."""

from __future__ import annotations

from cni_plugins import calico
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.node.network import PodNetwork


def test_the_fingerprint_never_walks_the_allocations_and_pods_do_not_change_it(tmp_path, monkeypatch):
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "rf"},
                          "spec": {"nodes": 2, "network": {"plugin": "calico"}}}, Source("c.yaml"))
    net = PodNetwork(FakeKernel(), spec)
    net.state_dir = str(tmp_path)
    d = calico.CalicoNodeDaemon(net.kernel, net.ctx("n1"), net._calico, "172.18.0.2")
    d.start()
    net._calico_daemons["n1"] = d
    walks: list[int] = []
    real = d.ipam.allocations
    monkeypatch.setattr(d.ipam, "allocations", lambda: walks.append(1) or real())
    first = net.routing_fingerprint()
    for i in range(40):  # pods on n1, all in its first block
        d.ipam.auto_assign("n1", f"k8s-pod-network.c{i}", {"node": "n1", "pod": f"p{i}"})
        assert net.routing_fingerprint() == first
    assert walks == []
    d.ipam.claim_block("n2")
    assert net.routing_fingerprint() != first and walks == []


def test_a_tunnel_address_claimed_after_the_block_changes_the_fingerprint(tmp_path):
    """calico-node claims a node's block and its VXLAN tunnel address in two writes. Another host's agent
    that read between them routes nothing to that node (no tunnel address, no VXLAN peer) and must sync
    again when the address comes, though no block changed."""
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "rf"},
                          "spec": {"nodes": 2, "network": {"plugin": "calico", "backend": "vxlan"}}},
                         Source("c.yaml"))
    net = PodNetwork(FakeKernel(), spec)
    net.state_dir = str(tmp_path)
    d = calico.CalicoNodeDaemon(net.kernel, net.ctx("n1"), net._calico, "172.18.0.2")
    d.start()
    net._calico_daemons["n1"] = d
    d.ipam.claim_block("n2")  # the other host's calico-node, first write
    between = net.routing_fingerprint()
    me = calico.CalicoNode("n1", "172.18.0.2")
    nodes = [me, calico.CalicoNode("n2", "172.18.0.3")]

    def peers() -> list[str]:
        state = calico.desired_state(net._calico, "rf", me, nodes, *calico.routing_inputs(d.ipam))
        return [p.node for p in state.peers]
    assert peers() == []  # n2 has no tunnel address yet: no VXLAN peer
    d.ipam.auto_assign("n2", calico.tunnel_handle("n2"), {"node": "n2", "type": "vxlanTunnelAddress"})
    assert net.routing_fingerprint() != between
    assert peers() == ["n2"]
