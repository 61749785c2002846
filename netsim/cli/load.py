"""`netsim load`: traffic at a fixed rate (open loop) or over N clients (closed loop), and what it met."""

from __future__ import annotations

import click

from netsim.cli.common import EXIT_FAILED, SECONDS, cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.model.errors import UsageError
from netsim.reports import load_text as render_text


@click.command()
@click.option("--from", "frm", required=True, help="Sources (round robin): ns/pod, ns/*, */*, node/N, host/H.")
@click.option("--to", "to", required=True, help="Target: svc/NS/NAME, ns/pod, node/N, host/H, IP or IP:PORT.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Target port (when it has several).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP"], case_sensitive=False), default="TCP",
              show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Requests per second (open loop); with --connections, spread over those keep-alive connections.")
@click.option("--connections", type=click.IntRange(min=1), default=None,
              help="N keep-alive HTTP clients: closed loop alone (each sends when its answer came), open loop with --rate.")
@click.option("--duration", type=SECONDS, default=10.0, show_default=True, help="How long to send.")
@click.option("--timeout", type=SECONDS, default=1.0, show_default=True, help="Seconds before a request times out.")
@click.option("--max-failed", type=click.IntRange(min=0), default=None,
              help="Exit 1 when more requests than this did not succeed.")
@click.option("--png", default=None, help="Also plot the run (requests/s by outcome, latency, events) to FILE.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@cluster_option
@handle_errors
def load(frm: str, to: str, port: int | None, protocol: str, rate: float | None, connections: int | None,
         duration: float, timeout: float, max_failed: int | None, png: str | None, output: str,
         cluster: str | None) -> None:
    """Send requests from pods, nodes or hosts to a target and report sent, ok, refused, timeout, reset,
    latency percentiles, requests per endpoint and a per-second series."""
    if rate is None and connections is None:
        raise UsageError("load: give --rate R (open loop) or --connections N (closed loop)")
    with open_cluster(cluster) as c:
        report = c.load(frm, to, port=port, protocol=protocol, rate=rate, duration=duration,
                        connections=connections, timeout=timeout, png=png)
    if not emit(report, "json" if output == "json" else None):
        click.echo(render_text(report))
        if png:
            click.echo(f"  picture: {png}")
    if max_failed is not None and report["sent"] - report["ok"] > max_failed:
        raise SystemExit(EXIT_FAILED)


COMMANDS = [load]
