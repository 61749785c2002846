"""calico-node programs what changed (cni_plugins/calico_delta.py): after its first full reconcile a sync
reads nothing back from the kernel, a claimed block is one route on each other node, a node that leaves or
joins is its own neighbour/FDB/routes; and the kernel ends as a full reconcile would leave it."""

from __future__ import annotations

import pytest
from conftest import NODES

from cni_plugins.calico import CalicoNetConf, CalicoNode, CalicoNodeDaemon
from cni_plugins.common import node_netns
from cni_plugins.overlay import route_key
from netsim.kernel.api import Route

NODE_LIST = [CalicoNode(n, ip) for n, ip in NODES.items()]
READS = ("routes", "fdbs", "neighs", "addrs")


def count_reads(kernel, monkeypatch) -> None:
    """Dumps go into kernel.calls too (FakeKernel records only link_get and the writes)."""
    for name in READS:
        real = getattr(kernel, name)
        monkeypatch.setattr(kernel, name, lambda *a, _real=real, _name=name, **kw:
                            kernel.calls.append((_name, a)) or _real(*a, **kw))


def snapshot(kernel, node: str) -> tuple:
    ns = node_netns("c", node)
    return ({route_key(r) for r in kernel.routes(ns)}, {(n.ifname, n.ip, n.mac) for n in kernel.neighs(ns)},
            {(f.ifname, f.mac, f.dst) for f in kernel.fdbs(ns, "vxlan.calico")})


def started(kernel, ctx, backend: str) -> dict[str, CalicoNodeDaemon]:
    net = CalicoNetConf(backend=backend)
    ds = {n.name: CalicoNodeDaemon(kernel, ctx(n.name), net, n.ip) for n in NODE_LIST}
    for d in ds.values():
        d.start()
    for d in ds.values():
        d.sync(NODE_LIST)
    return ds


def second_block(d: CalicoNodeDaemon, node: str) -> str:
    """Fill `node`'s first block so IPAM claims it another; returns the new block."""
    first = set(d.ipam.blocks_of(node))
    i = 0
    while set(d.ipam.blocks_of(node)) == first:
        d.ipam.auto_assign(node, f"k8s.{node}{i}", {"node": node})
        i += 1
    (new,) = set(d.ipam.blocks_of(node)) - first
    return new


def then_full_changes_nothing(kernel, d: CalicoNodeDaemon, nodes) -> None:
    before = snapshot(kernel, "a")
    d.sync(nodes, full=True)
    assert snapshot(kernel, "a") == before


@pytest.mark.parametrize("backend", ["vxlan", "direct"])
def test_after_the_first_sync_only_the_change_is_written(kernel, ctx, monkeypatch, backend):
    ds = started(kernel, ctx, backend)
    a = ds["a"]
    count_reads(kernel, monkeypatch)
    kernel.calls.clear()
    a.sync(NODE_LIST)
    assert kernel.calls == []  # nothing changed: no dump, no iptables-save, no write

    block = second_block(a, "b")
    if backend == "vxlan":
        tunnel_b = ds["b"].state(NODE_LIST).device.address.split("/")[0]
        want = Route(dst=block, via=tunnel_b, dev="vxlan.calico", onlink=True)
    else:
        want = Route(dst=block, via=NODES["b"], dev="eth0", proto=12)
    kernel.calls.clear()
    a.sync(NODE_LIST)
    assert kernel.calls == [("route_replace", (node_netns("c", "a"), want))]
    then_full_changes_nothing(kernel, a, NODE_LIST)

    without_c = [n for n in NODE_LIST if n.name != "c"]
    kernel.calls.clear()
    a.sync(without_c)
    assert not {name for name, _ in kernel.calls} & set(READS)
    then_full_changes_nothing(kernel, a, without_c)
    kernel.calls.clear()
    a.sync(NODE_LIST)  # c comes back
    assert not {name for name, _ in kernel.calls} & set(READS)
    then_full_changes_nothing(kernel, a, NODE_LIST)


def test_the_node_claiming_a_block_blackholes_it_and_the_refresh_repairs_drift(kernel, ctx, monkeypatch):
    ds = started(kernel, ctx, "vxlan")
    block = second_block(ds["a"], "a")
    kernel.calls.clear()
    ds["a"].sync(NODE_LIST)
    assert kernel.calls == [("route_replace", (node_netns("c", "a"), Route(dst=block, kind="blackhole",
                                                                             proto=80)))]
    # something else removes a route: the next sync within the refresh interval does not look...
    ns = node_netns("c", "a")
    peer = next(r for r in kernel.routes(ns) if r.dev == "vxlan.calico")
    kernel.route_del(ns, peer)
    ds["a"].sync(NODE_LIST)
    assert route_key(peer) not in snapshot(kernel, "a")[0]
    # ...the one after felix's RouteRefreshInterval does
    ds["a"].refresh_interval = 0.0
    ds["a"].sync(NODE_LIST)
    assert route_key(peer) in snapshot(kernel, "a")[0]
