"""`netsim draw`: the cluster's topology as a picture (PNG, SVG) or as Graphviz DOT text."""

from __future__ import annotations

import click

from netsim import preflight
from netsim.cli.common import cluster_option, handle_errors
from netsim.model.errors import UsageError


@click.command()
@click.option("-o", "--output", "path", default="topology.png", show_default=True,
              help="File to write; the format follows the extension: .png, .svg or .dot.")
@click.option("--system/--no-system", default=True, show_default=True,
              help="Include kube-system pods and Services.")
@click.option("--path", "between", nargs=2, default=None, metavar="SRC DST",
              help="Highlight the path the routing facts predict from SRC to DST (ns/pod, node/N, host/H, "
                   "svc/NS/NAME or an IP).")
@cluster_option
@handle_errors
def draw(path: str, system: bool, between: tuple[str, str] | None, cluster: str | None) -> None:
    """Draw nodes with their pods, bridges, veths and tunnel devices, the underlay, VXLAN tunnels between
    nodes, Services pointing at their endpoints, LoadBalancer IPs and external hosts."""
    from netsim import draw as drawing
    from netsim import topology
    from netsim.api import Cluster

    drawing.check_format(path)
    preflight.require_root("draw")
    c = Cluster(cluster)
    try:
        g = topology.topology_of(c)
    finally:
        c.close()
    highlight: list[str] = []
    if between:
        try:
            highlight = topology.path_between(g, *between)
        except topology.PathError as exc:
            raise UsageError(f"no path from {between[0]} to {between[1]}: {exc}") from None
    if not system:
        g = topology.without_namespaces(g, {"kube-system"}, keep=highlight)
    drawing.draw(g, path, highlight=highlight)
    click.echo(f"wrote {path}: {len(topology.vertices(g, 'node'))} node(s), {len(topology.vertices(g, 'pod'))} "
               f"pod(s), {len(topology.vertices(g, 'service'))} service(s)")
    if highlight:
        click.echo("path: " + " -> ".join(highlight))


COMMANDS = [draw]
