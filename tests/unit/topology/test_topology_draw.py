"""DOT text for the topology picture and the verify heatmap; rendering when Graphviz is there."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netsim import draw
from netsim import topology as t
from netsim.model.errors import MissingDependency, UsageError
from netsim.policy.verify import Cell, VerifyReport

from .examples import calico, flannel

HAVE_DOT = shutil.which("dot") is not None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _edges(dot: str) -> list[str]:
    return [line.strip() for line in dot.splitlines() if " -> " in line and "style=invis" not in line]


def test_flannel_dot_groups_devices_and_pods_per_node():
    dot = draw.topology_dot(t.build_graph(flannel()))
    assert dot.startswith("digraph topology {") and dot.rstrip().endswith("}")
    assert 'subgraph "cluster_node-1" {' in dot and 'subgraph "cluster_node-2" {' in dot
    block = dot.split('subgraph "cluster_node-1" {')[1].split("  }")[0]
    for v in ("pod/default/a", "dev/node-1/cni0", "dev/node-1/flannel.1", "dev/node-1/veth0aaaaaaa", "node/node-1"):
        assert f'"{v}" [' in block
    assert "pod/default/b" not in block
    assert 'label="node-1  172.18.0.2  pods 10.244.0.0/24"' in block
    assert 'label="default/a\\n10.244.0.2"' in dot
    assert 'label="flannel.1\\nVNI 1  UDP 8472\\n10.244.0.0/32"' in dot
    assert 'label="svc default/web\\nLoadBalancer 10.96.0.2\\n80/TCP->8080 np 30000"' in dot
    assert 'label="host client\\n203.0.113.10"' in dot


def test_symmetric_links_and_tunnels_are_drawn_once():
    dot = draw.topology_dot(t.build_graph(flannel()))
    edges = _edges(dot)
    tunnels = [e for e in edges if "VXLAN" in e]
    assert len(tunnels) == 1 and "dir=both" in tunnels[0] and "VXLAN 1/8472" in tunnels[0]
    veth = [e for e in edges if '"pod/default/a"' in e and "veth0aaaaaaa" in e]
    assert veth == [e for e in veth if e.startswith('"pod/default/a" -> ')] and len(veth) == 1
    underlay = [e for e in edges if '-> "fabric"' in e or e.startswith('"fabric"')]
    assert len(underlay) == 3  # two nodes and the host, each once, drawn downwards to the fabric
    endpoints = [e for e in edges if e.startswith('"svc/default/web" -> "pod/')]
    assert len(endpoints) == 2 and all("dashed" in e for e in endpoints)


def test_calico_dot_shows_blocks_routed_veths_and_the_announced_vip():
    dot = draw.topology_dot(t.build_graph(calico()))
    assert "blocks 10.244.189.128/26" in dot
    assert re.search(r'"dev/node-1/cali1111111111a" -> "node/node-1" \[[^]]*dotted', dot)
    assert '"node/node-1" -> "vip/172.18.255.1"' in dot
    assert 'label="172.18.255.1\\nLoadBalancer"' in dot


def test_quoting_survives_odd_names():
    data = flannel()
    data.pods[0] = dataclasses.replace(data.pods[0], key='default/we"ird\\name')
    dot = draw.topology_dot(t.build_graph(data), title='a "title"')
    assert 'label="a \\"title\\""' in dot and 'we\\"ird\\\\name' in dot


@pytest.mark.skipif(not HAVE_DOT, reason="graphviz dot not installed")
@pytest.mark.parametrize("example", [flannel, calico])
def test_graphviz_accepts_the_dot_text(example, tmp_path):
    path = draw.draw(t.build_graph(example()), str(tmp_path / "topo.svg"))
    assert "<svg" in Path(path).read_text()


def _report() -> VerifyReport:
    cells = [Cell("ns/a", "ns/b", 80, "TCP", True, True, "connected"),
             Cell("ns/b", "ns/a", 80, "TCP", False, False, "timeout"),
             Cell("ns/a", "ns/a", 80, "TCP", False, True, "connected"),  # disagreement
             Cell("ns/b", "ns/b", 80, "TCP", True, None),  # not probed
             Cell("ns/a", "ns/b", 53, "UDP", True, True, "connected")]
    return VerifyReport(cells=cells)


def test_matrix_dot_colours_and_marks():
    dot = draw.matrix_dot(_report())
    assert "80/TCP: 4 pair(s), 1 disagreement(s)" in dot and "53/UDP: 1 pair(s), model = kernel" in dot
    table80 = dot.split("g1 [label=")[1].split("];")[0]  # groups sorted: (53, UDP) then (80, TCP)
    assert table80.count(f'BGCOLOR="{draw.ALLOWED}"') == 2  # a->b connected, a->a connected (disagrees)
    assert table80.count(f'BGCOLOR="{draw.BLOCKED}"') == 1
    assert table80.count(f'BGCOLOR="{draw.ALLOWED_MODEL}"') == 1
    assert table80.count("<B>!</B>") == 1
    assert "0  ns/a" in table80 and "1 = ns/b" in table80
    assert "model and kernel disagree" in dot


def test_matrix_of_nothing_still_renders_a_message():
    assert "no connections were verified" in draw.matrix_dot(VerifyReport())


@pytest.mark.skipif(not HAVE_DOT, reason="graphviz dot not installed")
def test_matrix_png_writes_a_png(tmp_path):
    path = draw.matrix_png(_report(), str(tmp_path / "m.png"))
    assert Path(path).read_bytes()[:8] == PNG_SIGNATURE
    proc = subprocess.run(["file", path], capture_output=True, text=True) if shutil.which("file") else None
    assert proc is None or "PNG image data" in proc.stdout


def test_formats(tmp_path, monkeypatch):
    path = draw.draw(t.build_graph(flannel()), str(tmp_path / "t.dot"))
    assert Path(path).read_text().startswith("digraph topology")
    with pytest.raises(UsageError, match="jpg"):
        draw.draw(t.build_graph(flannel()), str(tmp_path / "t.jpg"))
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependency, match="graphviz"):
        draw.matrix_png(_report(), str(tmp_path / "m.png"))


def test_a_highlighted_path_is_red_and_numbered():
    g = t.build_graph(flannel())
    path = t.path_between(g, "default/a", "svc/default/web", endpoint="default/b")
    dot = draw.topology_dot(g, highlight=path)
    marked = [line for line in dot.splitlines() if f'color="{draw.HIGHLIGHT}"' in line]
    assert sum(1 for line in marked if " -> " not in line) == len(set(path))  # every vertex on the path
    steps = sorted(int(m) for m in re.findall(r'xlabel="(\d+)"', dot))
    assert steps == list(range(1, len(path)))  # every step once, drawn on an edge
    # DNAT at the node has no edge in the graph: drawn as an extra dashed arrow
    assert re.search(r'"node/node-1" -> "svc/default/web" \[[^]]*dashed[^]]*xlabel="4"', dot)


def test_host_gw_routes_between_nodes_are_drawn_each_way_with_their_prefixes():
    dot = draw.topology_dot(t.build_graph(flannel("host-gw")))
    assert re.search(r'"node/node-1" -> "node/node-2" \[[^]]*label="10.244.1.0/24"', dot)
    assert re.search(r'"node/node-2" -> "node/node-1" \[[^]]*label="10.244.0.0/24"', dot)


def test_cli_rejects_an_unknown_format_before_anything_else(tmp_path):
    from click.testing import CliRunner

    from netsim.cli.draw import COMMANDS
    from netsim.cli.draw import draw as draw_command
    assert [draw_command] == COMMANDS and draw_command.name == "draw"
    res = CliRunner().invoke(draw_command, ["-o", str(tmp_path / "x.gif"), "--cluster", "nope"])
    assert res.exit_code == 2 and "unknown picture format 'gif'" in res.output


def test_nodes_on_hosts_say_which_host():
    view = flannel()
    view.nodes["node-2"].machine = "hb"
    g = t.build_graph(view)
    assert g.nodes["node/node-2"]["host"] == "hb" and "host" not in g.nodes["node/node-1"]
    dot = draw.topology_dot(g)
    assert 'label="node-2  172.18.0.3  pods 10.244.1.0/24  on host hb"' in dot
    assert 'label="node-1  172.18.0.2  pods 10.244.0.0/24"' in dot
