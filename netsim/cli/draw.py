"""`netsim draw`: the cluster's topology as a picture (PNG, SVG) or as Graphviz DOT text."""

from __future__ import annotations

import click

from netsim.cli.common import cluster_option, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.reports import check_draw_format


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
    check_draw_format(path)
    with open_cluster(cluster) as c:
        drawn = c.draw(path, system=system, between=between)
    click.echo(f"wrote {path}: {drawn['nodes']} node(s), {drawn['pods']} pod(s), {drawn['services']} service(s)")
    if drawn["path"]:
        click.echo("path: " + " -> ".join(drawn["path"]))


COMMANDS = [draw]
