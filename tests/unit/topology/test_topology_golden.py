"""The topology graph, its DOT picture and its predicted paths as contracts, byte for byte: the graph
(`nx.node_link_data`, attributes in the order the builder sets them), `draw.topology_dot` with a highlighted
path, and `forward_hops` for a set of questions, over the hand-written flannel (VXLAN, host-gw) and calico
clusters. The golden files were written before the graph was built from the shared cluster view and its
paths expressed with the shared packet walker; they must not change when either is reworked.

Regenerate (only for an intended contract change, noted in docs): NETSIM_REGOLD=1 pytest this file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import networkx as nx
import pytest

from netsim import draw
from netsim import topology as t

from .examples import calico, flannel

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = {"flannel-vxlan": lambda: flannel("vxlan"), "flannel-host-gw": lambda: flannel("host-gw"),
            "calico-vxlan": calico}
QUESTIONS = [("pod/default/a", "10.244.1.2", {}), ("pod/default/a", "10.96.0.2", {"endpoint": "default/b"}),
             ("pod/default/b", "10.96.0.2", {}), ("host/client", "172.18.255.1", {"endpoint": "default/b"}),
             ("host/client", "172.18.0.3", {"service": "svc/default/web", "endpoint": "default/a"}),
             ("host/client", "172.18.0.3", {}), ("node/node-1", "10.244.1.2", {}),
             ("node/node-2", "203.0.113.10", {}), ("pod/default/a", "10.244.0.2", {}),
             ("node/node-1", "10.244.189.140", {}), ("pod/default/b", "8.8.8.8", {}),
             ("host/client", "10.244.1.2", {})]


def _graph_text(g: nx.MultiDiGraph) -> str:
    return json.dumps(nx.node_link_data(g, edges="links"), default=repr, indent=1)


def _paths_text(g: nx.MultiDiGraph) -> str:
    out = []
    for src, dst, kw in QUESTIONS:
        if src not in g:
            continue
        try:
            hops = [repr(h) for h in t.forward_hops(g, src, dst, **kw)]
        except t.PathError as exc:
            hops = [f"PathError: {exc} partial={exc.partial}"]
        out.append(f"{src} -> {dst} {sorted(kw.items())}\n" + "".join(f"  {h}\n" for h in hops))
    return "".join(out)


def _texts(name: str) -> dict[str, str]:
    g = t.build_graph(EXAMPLES[name]())
    path = t.path_between(g, "default/a", "default/b")
    return {"graph.json": _graph_text(g), "dot": draw.topology_dot(g, title="x", highlight=path),
            "paths.txt": _paths_text(g)}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_topology_outputs_match_the_golden_files(name):
    for suffix, text in _texts(name).items():
        f = GOLDEN / f"{name}.{suffix}"
        if os.environ.get("NETSIM_REGOLD"):
            f.write_text(text)
        assert text == f.read_text(), f"{f.name} changed"
