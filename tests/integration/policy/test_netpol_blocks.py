"""verify on a calico node that has outgrown its first IPAM block.

Calico IPAM hands a node a /26 at start and another one when that is full; every other node must then route
the new block over VXLAN (and the owner blackholes it), as felix/BIRD do when block affinities change. If
that never happens, the pods of the second block are unreachable from other nodes: the policy model says
"allowed" (there is no policy at all) and the kernel times out, so verify reports disagreements that have
nothing to do with NetworkPolicy. 70 pods pinned to node-1 fill its first block (64 addresses, one taken by
the VXLAN tunnel address) and spill into a second.
"""

from __future__ import annotations

import secrets

import pytest

from netsim import lifecycle
from netsim.api import Cluster
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source

pytestmark = [pytest.mark.root, pytest.mark.slow]

PODS_ON_NODE_1 = 70


@pytest.fixture(scope="module")
def cluster(kernel):
    name = f"h13bk{secrets.token_hex(2)}"
    c = None
    try:
        c = Cluster.up(parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                                      "spec": {"nodes": [{"name": "node-1"}, {"name": "node-2"}],
                                               "network": {"plugin": "calico", "backend": "vxlan"}}},
                                     Source("<test>")), timeout=60)
        pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"s{i}", "namespace": "default",
                                                                 "labels": {"app": "s"}},
                 "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "agnhost",
                                                                "ports": [{"containerPort": 80}]}]}}
                for i in range(PODS_ON_NODE_1)]
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "default"},
                     "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "agnhost"}]}})
        c.apply(pods, timeout=180)
        yield c
    finally:
        if c is not None:
            c.close()
        lifecycle.down(kernel, name)


def test_pods_beyond_the_first_block_are_reachable_across_nodes(cluster: Cluster) -> None:
    blocks = {".".join(p["status"]["podIP"].split(".")[:3]) + f"/{int(p['status']['podIP'].split('.')[3]) // 64}"
              for p in cluster.pods("default") if p["spec"]["nodeName"] == "node-1"}
    assert len(blocks) >= 2, f"node-1 pods should span two /26 blocks: {blocks}"
    report = cluster.verify("default/client", "default/*", [80], ["TCP"], timeout=1.0)
    assert len(report.cells) == PODS_ON_NODE_1 + 1
    bad = [f"{c.destination} ({c.outcome})" for c in report.disagreements]
    assert not bad, f"{len(bad)} pods unreachable from node-2 although nothing denies them: {', '.join(bad[:10])}"
