"""`netsim trace SRC DST[:PORT]`: one packet's path, simulated and observed (exit 3 when they disagree)."""

from __future__ import annotations

import click

from netsim.cli.common import EXIT_TRACE_DISAGREE, cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.reports import trace_text as render_text


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--protocol",
    "-p",
    type=click.Choice(["TCP", "UDP", "ICMP", "SCTP"], case_sensitive=False),
    default="TCP",
    show_default=True,
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Destination port (or DST:PORT).")
@click.option("--sport", type=click.IntRange(1, 65535), default=None, help="Source port (default: random).")
@click.option(
    "--pcap",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write every captured copy (inner and VXLAN outer) to this pcap file.",
)
@click.option("--simulate-only", is_flag=True, help="Only simulate; send nothing.")
@click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text")
@cluster_option
@handle_errors
def trace(
    src: str,
    dst: str,
    protocol: str,
    port: int | None,
    sport: int | None,
    pcap: str | None,
    simulate_only: bool,
    output: str,
    cluster: str | None,
) -> None:
    """Trace one packet from SRC (ns/pod, node/NAME, host/NAME) to DST (ns/pod, svc/NS/NAME, a VIP,
    NODEIP:NODEPORT, an external IP), hop by hop: what the model predicts and what the kernel did."""
    with open_cluster(cluster) as c:
        report = c.trace(src, dst, port, protocol.upper(), sport=sport, pcap=pcap, observe=not simulate_only)
    if not emit(report.to_json(), None if output == "text" else output):
        click.echo(render_text(report))
    if not report.agree:
        raise SystemExit(EXIT_TRACE_DISAGREE)


COMMANDS = [trace]
