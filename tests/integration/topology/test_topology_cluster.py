"""The topology of a live cluster (flannel VXLAN, calico VXLAN): collected from the kernel and the store,
walked pod to pod across nodes, and drawn by `netsim draw`. Each cluster is `h14<hex>`, removed in the
fixture finaliser by name even when `up` failed half-way."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from netsim import lifecycle
from netsim import topology as t
from netsim.api import Cluster
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source

pytestmark = pytest.mark.root

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 80}]}
"""


@pytest.fixture(scope="module", params=[("flannel", "vxlan"), ("calico", "vxlan"), ("canal", "vxlan"), ("flannel", "host-gw")],
                ids=lambda p: "-".join(p))
def cluster(request, kernel) -> Iterator[Cluster]:
    name = f"h14{secrets.token_hex(3)}"
    plugin, backend = request.param
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": 2, "network": {"plugin": plugin, "backend": backend},
                                   "externalHosts": [{"name": "client", "ip": "203.0.113.10"}]}}, Source("<test>"))
    c = None
    try:
        c = Cluster.up(spec, timeout=60)
        c.apply(MANIFESTS)
        yield c
    finally:
        if c is not None:
            c.close()
        lifecycle.down(kernel, name)


def test_collected_graph_has_nodes_pods_devices_and_tunnels(cluster):
    g = t.topology_of(cluster)
    plugin = cluster.spec.network.plugin
    device = "vxlan.calico" if plugin == "calico" else "flannel.1"  # canal: calico veths, flannel's VXLAN
    assert t.vertices(g, "node") == ["node/node-1", "node/node-2"]
    assert {"pod/default/a", "pod/default/b"} <= set(t.vertices(g, "pod"))
    st = cluster.state
    for rec in st.nodes:
        a = g.nodes[t.node_id(rec["name"])]
        assert (a["ip"], a["pod_cidr"]) == (rec["ip"], rec["podCIDR"])
    a = g.nodes["pod/default/a"]
    assert a["node"] == "node-1" and a["host_veth"] and a["ip"]
    assert a["host_veth"].startswith("veth" if plugin == "flannel" else "cali")
    assert g.nodes[t.dev_id("node-1", a["host_veth"])]["pod"] == "pod/default/a"
    tunnels = {(u, v): e for u, v, e in t.edges(g, "vxlan-tunnel")}
    if cluster.spec.network.backend == "host-gw":
        assert not tunnels and not t.vertices(g, "tunnel")
        assert g.edges["node/node-1", "node/node-2", "route"]["via"] == st.nodes[1]["ip"]
        return
    fwd = tunnels[(t.dev_id("node-1", device), t.dev_id("node-2", device))]
    assert (fwd["src_ip"], fwd["dst_ip"]) == (st.nodes[0]["ip"], st.nodes[1]["ip"])
    assert (fwd["vni"], fwd["port"]) == ((4096, 4789) if plugin == "calico" else (1, 8472))
    assert (t.dev_id("node-2", device), t.dev_id("node-1", device)) in tunnels
    if plugin == "flannel":
        assert t.vertices(g, "bridge") == ["dev/node-1/cni0", "dev/node-2/cni0"]
    assert {v for _, v, _ in g.out_edges("svc/default/web", data=True)} == {"pod/default/a", "pod/default/b"}
    assert t.pod_by_ip(g, g.nodes["pod/default/b"]["ip"]) == "pod/default/b"
    assert t.node_of_ip(g, g.nodes["pod/default/b"]["ip"]) == "node-2"
    assert ("host/client", "fabric") in {(u, v) for u, v, _ in t.edges(g, "underlay")}


def test_pod_to_pod_across_nodes_goes_through_both_nodes_and_the_tunnel(cluster):
    g = t.topology_of(cluster)
    device = "vxlan.calico" if cluster.spec.network.plugin == "calico" else "flannel.1"
    path = t.path_between(g, "default/a", "default/b")
    assert path[0] == "pod/default/a" and path[-1] == "pod/default/b"
    i1, i2 = path.index("node/node-1"), path.index("node/node-2")
    if cluster.spec.network.backend == "host-gw":
        assert path[i1 + 1:i2] == ["fabric"]
    else:
        assert path[i1 + 1:i2] == [t.dev_id("node-1", device), t.dev_id("node-2", device)]
    # and the kernel agrees that the pair is connected the way the graph says it is
    results = cluster.probe("default/a", "default/b", [80])
    assert results and all(r.connected for r in results)


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot not installed")
def test_netsim_draw_writes_png_and_svg(cluster, tmp_path):
    from netsim.cli.draw import draw
    runner = CliRunner()
    png, svg = tmp_path / "topo.png", tmp_path / "topo.svg"
    res = runner.invoke(draw, ["-o", str(png), "--cluster", cluster.name])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5000
    res = runner.invoke(draw, ["-o", str(svg), "--cluster", cluster.name, "--no-system"])
    assert res.exit_code == 0, res.output
    text = svg.read_text()
    assert "<svg" in text and "default/a" in text and "coredns" not in text
    res = runner.invoke(draw, ["-o", str(tmp_path / "p.dot"), "--cluster", cluster.name, "--path", "default/a",
                               "svc/default/web"])
    assert res.exit_code == 0, res.output
    assert "path: pod/default/a ->" in res.output and "penwidth=3" in (tmp_path / "p.dot").read_text()
