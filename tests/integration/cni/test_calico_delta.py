"""calico-node's syncs by difference (cni_plugins/calico_delta.py) on the real kernel: a claimed block, a
node leaving and coming back, each written as a difference, leave the node's routes, neighbours and FDB
entries exactly as a full reconcile against the kernel finds them (it changes nothing after each)."""

from __future__ import annotations

import pytest

from cni_plugins import calico
from cni_plugins.overlay import route_key


def kernel_state(c, node: str) -> tuple:
    k, ns = c.kernel, c.ns(node)
    return ({route_key(r) for r in k.routes(ns)}, {(n.ifname, n.ip, n.mac) for n in k.neighs(ns)},
            {(f.mac, f.dst) for f in k.fdbs(ns, calico.VXLAN_DEVICE)} if k.link_get(ns, calico.VXLAN_DEVICE) else set())


@pytest.mark.parametrize("backend", ["vxlan", "direct"])
def test_delta_syncs_leave_what_a_full_reconcile_would(cni_cluster, backend):
    c = cni_cluster
    for i, n in enumerate(("a", "b", "c")):
        c.add_node(n, f"172.31.0.{i + 2}")
    net = calico.CalicoNetConf(backend=backend)
    nodes = [calico.CalicoNode(n, ip) for n, ip in sorted(c.nodes.items())]
    ds = {n.name: calico.CalicoNodeDaemon(c.kernel, c.ctx(n.name), net, n.ip) for n in nodes}
    for d in ds.values():
        d.start()
    a = ds["a"]
    a.sync(nodes)

    def check(members) -> None:
        before = kernel_state(c, "a")
        a.sync(members, full=True)
        assert kernel_state(c, "a") == before

    for i in range(70):  # b's first block fills: IPAM claims it a second
        a.ipam.auto_assign("b", f"k8s.b{i}", {"node": "b"})
    a.sync(nodes)
    assert len(a.ipam.blocks_of("b")) == 2
    assert set(a.ipam.blocks_of("b")) <= {key[0] for key in kernel_state(c, "a")[0]}
    check(nodes)
    without_c = [n for n in nodes if n.name != "c"]
    a.sync(without_c)
    assert not set(a.ipam.blocks_of("c")) & {key[0] for key in kernel_state(c, "a")[0]}
    check(without_c)
    a.sync(nodes)
    check(nodes)
