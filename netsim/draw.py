"""Pictures: the cluster topology and the verify reachability heatmap, both through Graphviz.

Why Graphviz and not matplotlib: `dot` (Debian package `graphviz`, installed by scripts/setup.sh) lays out
clustered graphs well, renders PNG and SVG, and HTML-like table labels make a clean coloured matrix, so one
external tool covers both pictures with no Python dependency. The DOT text is generated here (pure, unit
tested); only `render_dot` runs the `dot` command.

* `topology_dot(g)` -> DOT text: a subgraph (cluster) per node holding the node's netns box, its bridge
  (cni0), tunnel device (flannel.1 / vxlan.calico with VNI and port), host-side veths and its pods (name +
  IP); the underlay bridge below them with external hosts; VXLAN tunnels as bold edges between the nodes'
  tunnel devices; Services as separate shapes with dashed edges to their endpoint pods; LoadBalancer /
  external IPs as notes pointing at their Service and at the node announcing them.
* `matrix_dot(report)` -> DOT text: one table per port/protocol, rows sources, columns destinations; a cell
  is green when the connection was allowed and red when blocked (the kernel's result where probed, the
  model's otherwise, in lighter shades), with `!` where the model and the kernel disagree.
* `draw(g, path)` / `matrix_png(report, path)`: write .png, .svg (or .dot text) by the file's extension.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import networkx as nx

from netsim.model.errors import MissingDependency, UsageError

FORMATS = ("png", "svg", "dot")

# Top-to-bottom order of vertex kinds, so undirected links are emitted "downwards" and dot ranks them.
_RANK = {"vip": 0, "service": 1, "pod": 2, "veth": 3, "bridge": 4, "tunnel": 4, "node": 5, "fabric": 6, "host": 7}
_STYLE = {
    "pod": 'shape=box, style="rounded,filled", fillcolor="#fff6d5", color="#c9a227"',
    "veth": 'shape=box, style="filled", fillcolor="#eeeeee", color="#999999", fontsize=8, height=0.2',
    "bridge": 'shape=box, style="filled", fillcolor="#d5e8ff", color="#3a6fb0"',
    "tunnel": 'shape=hexagon, style="filled", fillcolor="#ffe0c2", color="#d2691e"',
    "node": 'shape=box3d, style="filled", fillcolor="#e3f1e3", color="#2e7d32"',
    "fabric": 'shape=box, style="rounded,filled,bold", fillcolor="#cfcfcf", color="#555555", width=6',
    "host": 'shape=box, style="rounded,filled", fillcolor="#f0e0f5", color="#7b3fa0"',
    "service": 'shape=component, style="filled", fillcolor="#dbeafe", color="#1d4ed8"',
    "vip": 'shape=note, style="filled", fillcolor="#fde2e2", color="#b91c1c"',
}
_EDGE_STYLE = {
    "veth": 'color="#777777"',
    "bridge-port": 'color="#3a6fb0"',
    "route": 'color="#2e7d32", style=dotted',
    "underlay": 'color="#555555", penwidth=1.5',
    "vxlan-tunnel": 'color="#d2691e", penwidth=2.5, constraint=false, fontcolor="#d2691e"',
    "endpoint": 'color="#1d4ed8", style=dashed, arrowsize=0.6',
    "frontend": 'color="#b91c1c", arrowsize=0.6',
    "announce": 'color="#b91c1c", style=dotted, arrowsize=0.6, constraint=false',
}
_SYMMETRIC = ("veth", "bridge-port", "route", "underlay")


def _q(s: Any) -> str:
    """A DOT double-quoted string."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(v: str, a: dict[str, Any]) -> str:
    kind = a.get("kind")
    # devices keep plain CIDRs, L3 vertices (ifname, cidr) pairs
    addrs = [x[1] if isinstance(x, tuple) else x for x in a.get("addrs") or []]
    addrs = [c for c in addrs if not c.startswith("127.")]
    if kind == "pod":
        return f"{a['key']}\n{a.get('ip') or ''}"
    if kind == "veth":
        return a["ifname"]
    if kind == "bridge":
        return "\n".join([a["ifname"], *addrs])
    if kind == "tunnel":
        return "\n".join([a["ifname"], f"VNI {a.get('vni')}  UDP {a.get('port')}", *addrs])
    if kind == "node":
        return f"{a['name']} netns\neth0 {a['ip']}"
    if kind == "fabric":
        return "\n".join(["underlay bridge (fabric)", *addrs])
    if kind == "host":
        return f"host {a['name']}\n{a['ip']}"
    if kind == "service":
        ports = ", ".join(f"{p.port}/{p.protocol}" + (f"->{p.target_port}" if p.target_port not in (None, p.port)
                                                      else "") + (f" np {p.node_port}" if p.node_port else "")
                          for p in a.get("ports") or [])
        return f"svc {a['key']}\n{a.get('type')} {a.get('cluster_ip') or ''}\n{ports}".rstrip()
    if kind == "vip":
        return f"{a['ip']}\n{' / '.join(sorted(set(a.get('roles') or ['VIP'])))}"
    return v


HIGHLIGHT = "#e11d48"


def topology_dot(g: nx.MultiDiGraph, *, title: str | None = None, highlight: Sequence[str] = ()) -> str:
    """DOT text for the topology graph built by netsim.topology.build_graph; `highlight` is a path (vertex ids,
    e.g. from topology.path_between) drawn in red with its steps numbered."""
    on_path = set(highlight)
    steps: dict[tuple[str, str], int] = {}
    for i, (u, v) in enumerate(zip(highlight, highlight[1:]), 1):
        steps.setdefault((u, v), i)
    title = title or f"cluster {g.graph.get('cluster', '')}: {g.graph.get('plugin', '')}/{g.graph.get('backend', '')}"
    out = ["digraph topology {",
           f"  graph [rankdir=TB, newrank=true, compound=true, fontname=Helvetica, fontsize=14, labelloc=t, "
           f"nodesep=0.25, ranksep=0.45, label={_q(title)}];",
           "  node [fontname=Helvetica, fontsize=10, margin=\"0.08,0.04\"];",
           "  edge [fontname=Helvetica, fontsize=8, arrowhead=none];"]
    by_node: dict[str, list[str]] = {}
    loose: list[str] = []
    for v, a in sorted(g.nodes(data=True)):
        node = a.get("node") if a.get("kind") in ("pod", "veth", "bridge", "tunnel") else \
            a.get("name") if a.get("kind") == "node" else None
        (by_node.setdefault(node, []) if node else loose).append(v)

    def vertex(v: str, indent: str) -> str:
        a = g.nodes[v]
        mark = f', penwidth=3, color="{HIGHLIGHT}"' if v in on_path else ""
        return f"{indent}{_q(v)} [label={_q(_label(v, a))}, {_STYLE.get(a.get('kind'), 'shape=box')}{mark}];"

    for node in sorted(by_node):
        nid = f"node/{node}"
        a = g.nodes[nid] if nid in g else {}
        out.append(f"  subgraph {_q('cluster_' + node)} {{")
        # calico allocates from IPAM blocks (its blackhole routes), not the node's podCIDR
        blocks = [r.dst for r in a.get("routes", []) if getattr(r, "kind", "") == "blackhole"]
        node_title = f"{node}  {a.get('ip', '')}  " + (f"blocks {' '.join(blocks)}" if blocks
                                                        else f"pods {a.get('pod_cidr', '')}")
        if a.get("host"):  # spec.hosts: which machine the node runs on
            node_title += f"  on host {a['host']}"
        out.append(f"    label={_q(node_title)}; "
                   "style=\"rounded,filled\"; fillcolor=\"#f7faf7\"; color=\"#2e7d32\"; fontsize=12;")
        for v in by_node[node]:
            out.append(vertex(v, "    "))
        out.append("  }")
    for v in loose:
        out.append(vertex(v, "  "))
    hosts = [v for v in loose if g.nodes[v].get("kind") == "host"]
    if hosts:
        out.append("  { rank=sink; " + " ".join(_q(h) for h in hosts) + " }")

    seen: set[tuple[str, str, str]] = set()
    for u, v, a in sorted(g.edges(data=True), key=lambda e: (e[0], e[1], e[2].get("kind", ""))):
        kind = a.get("kind", "")
        node_route = kind == "route" and g.nodes[u].get("kind") == "node" and g.nodes[v].get("kind") == "node"
        if (kind in _SYMMETRIC and not node_route) or kind == "vxlan-tunnel":
            pair = tuple(sorted((u, v)))
            if (pair[0], pair[1], kind) in seen:
                continue
            seen.add((pair[0], pair[1], kind))
        attrs = [_EDGE_STYLE.get(kind, "")]
        if kind in _SYMMETRIC:
            ru, rv = _RANK.get(g.nodes[u].get("kind"), 9), _RANK.get(g.nodes[v].get("kind"), 9)
            if ru > rv:
                u, v = v, u
            if node_route:
                attrs.append(f"label={_q(' '.join(a.get('routes', [])))}, constraint=false, arrowhead=normal")
        elif kind == "vxlan-tunnel":
            both = g.has_edge(v, u, "vxlan-tunnel")
            tunnel_label = f"VXLAN {a.get('vni')}/{a.get('port')}"
            attrs.append(f"label={_q(tunnel_label)}, dir={'both' if both else 'forward'}, "
                         "arrowhead=normal, arrowtail=normal")
        else:
            attrs.append("arrowhead=normal")
        step = steps.pop((u, v), None) or steps.pop((v, u), None)
        if step is not None:
            attrs.append(f'color="{HIGHLIGHT}", penwidth=3, xlabel={_q(step)}, fontcolor="{HIGHLIGHT}"')
        out.append(f"  {_q(u)} -> {_q(v)} [{', '.join(x for x in attrs if x)}];")
    for (u, v), step in sorted(steps.items(), key=lambda x: x[1]):  # path steps with no edge (DNAT at a node)
        if u in g and v in g:
            out.append(f'  {_q(u)} -> {_q(v)} [color="{HIGHLIGHT}", penwidth=2, style=dashed, arrowhead=normal, '
                       f'constraint=false, xlabel={_q(step)}, fontcolor="{HIGHLIGHT}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def check_format(path: str, fmt: str | None = None) -> str:
    """The picture format for `path` (from `fmt` or the extension); a UsageError for anything else."""
    return _format(path, fmt)


def _format(path: str, fmt: str | None) -> str:
    fmt = (fmt or os.path.splitext(path)[1].lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise UsageError(f"{path}: unknown picture format {fmt!r} (use .png, .svg or .dot)")
    return fmt


def render_dot(dot_text: str, path: str, fmt: str | None = None, *, timeout: float = 60.0) -> str:
    """Write `dot_text` to `path` as png/svg (through Graphviz `dot`) or as the .dot text itself."""
    fmt = _format(path, fmt)
    if fmt == "dot":
        with open(path, "w") as f:
            f.write(dot_text)
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise MissingDependency("Graphviz `dot` is not installed (Debian package graphviz; scripts/setup.sh "
                                "installs it); write .dot text instead with -o FILE.dot")
    proc = subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot_text, text=True, capture_output=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise MissingDependency(f"dot failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    return path


def draw(g: nx.MultiDiGraph, path: str, fmt: str | None = None, *, title: str | None = None,
         highlight: Sequence[str] = ()) -> str:
    """Render the topology graph to `path` (.png, .svg or .dot), optionally with a path highlighted."""
    return render_dot(topology_dot(g, title=title, highlight=highlight), path, fmt)


# --- the verify heatmap --------------------------------------------------------------------------

ALLOWED, BLOCKED = "#43a047", "#e53935"  # probed (the kernel's result)
ALLOWED_MODEL, BLOCKED_MODEL = "#b9e4bb", "#f6b8b7"  # not probed: the model's verdict
NO_PAIR = "#f2f2f2"


def _cell_html(c: Any) -> str:
    if c is None:
        return f'<TD BGCOLOR="{NO_PAIR}" WIDTH="26" HEIGHT="22"> </TD>'
    if c.observed is None:
        color, mark = (ALLOWED_MODEL if c.expected else BLOCKED_MODEL), ("." if c.expected else "X")
    else:
        color, mark = (ALLOWED if c.observed else BLOCKED), ("." if c.observed else "X")
    if not c.agrees:
        mark = "!"
        return (f'<TD BGCOLOR="{color}" WIDTH="26" HEIGHT="22" BORDER="3" COLOR="#111111">'
                f'<FONT COLOR="#ffffff" POINT-SIZE="14"><B>{mark}</B></FONT></TD>')
    return f'<TD BGCOLOR="{color}" WIDTH="26" HEIGHT="22"><FONT COLOR="#ffffff">{mark}</FONT></TD>'


def _matrix_table(title: str, cells: Sequence[Any]) -> str:
    sources = sorted({c.source for c in cells})
    dests = sorted({c.destination for c in cells})
    names = sorted(set(sources) | set(dests))
    idx = {n: i for i, n in enumerate(names)}
    at = {(c.source, c.destination): c for c in cells}
    e = html.escape
    rows = [f'<TR><TD COLSPAN="{len(dests) + 1}" BORDER="0"><B>{e(title)}</B></TD></TR>',
            '<TR><TD BORDER="0" ALIGN="RIGHT"><I>from \\ to</I></TD>'
            + "".join(f'<TD BORDER="0"><B>{idx[d]}</B></TD>' for d in dests) + "</TR>"]
    for s in sources:
        rows.append(f'<TR><TD BORDER="0" ALIGN="RIGHT">{idx[s]}  {e(s)}</TD>'
                    + "".join(_cell_html(at.get((s, d))) for d in dests) + "</TR>")
    legend = "<BR ALIGN=\"LEFT\"/>".join(f"{idx[d]} = {e(d)}" for d in dests)
    rows.append(f'<TR><TD COLSPAN="{len(dests) + 1}" BORDER="0" ALIGN="LEFT">'
                f'<FONT POINT-SIZE="9">{legend}<BR ALIGN="LEFT"/></FONT></TD></TR>')
    return f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="2">{"".join(rows)}</TABLE>>'


def matrix_dot(report: Any, *, title: str = "reachability: model vs kernel") -> str:
    """DOT text for a VerifyReport: one table per (port, protocol), stacked top to bottom."""
    groups = sorted(report.groups().items())
    out = ["digraph matrix {",
           f"  graph [rankdir=TB, fontname=Helvetica, labelloc=t, fontsize=14, label={_q(title)}];",
           "  node [shape=plaintext, fontname=Helvetica, fontsize=10];", "  edge [style=invis];"]
    if not groups:
        out.append('  empty [label="no connections were verified"];')
    for i, ((port, proto), cells) in enumerate(groups):
        bad = sum(1 for c in cells if not c.agrees)
        head = f"{port}/{proto}: {len(cells)} pair(s)" + (f", {bad} disagreement(s)" if bad else ", model = kernel")
        out.append(f"  g{i} [label={_matrix_table(head, cells)}];")
        if i:
            out.append(f"  g{i - 1} -> g{i};")
    legend = (f'<<TABLE BORDER="0" CELLSPACING="4"><TR>'
              f'<TD BGCOLOR="{ALLOWED}" WIDTH="18"> </TD><TD ALIGN="LEFT">allowed (kernel)</TD>'
              f'<TD BGCOLOR="{BLOCKED}" WIDTH="18"> </TD><TD ALIGN="LEFT">blocked (kernel)</TD>'
              f'<TD BGCOLOR="{ALLOWED_MODEL}" WIDTH="18"> </TD><TD ALIGN="LEFT">allowed (model, not probed)</TD>'
              f'<TD BGCOLOR="{BLOCKED_MODEL}" WIDTH="18"> </TD><TD ALIGN="LEFT">blocked (model, not probed)</TD>'
              f'<TD BORDER="1"><B>!</B></TD><TD ALIGN="LEFT">model and kernel disagree</TD></TR></TABLE>>')
    out.append(f"  legend [label={legend}];")
    if groups:
        out.append(f"  g{len(groups) - 1} -> legend;")
    out.append("}")
    return "\n".join(out) + "\n"


def matrix_png(report: Any, path: str, fmt: str | None = None) -> str:
    """Render a VerifyReport's reachability matrices as a heatmap (.png by default; .svg/.dot by extension)."""
    return render_dot(matrix_dot(report), path, fmt)
