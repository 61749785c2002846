"""Verbs on the data plane: probe, proxy rules."""

from __future__ import annotations

import re

import click

from netsim.api import results_json
from netsim.cli.common import EXIT_FAILED, SECONDS, cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.model.errors import UsageError
from netsim.parsers.iptables_save import COMMIT, RULE, TABLE, read_lines
from netsim.printers import render_table
from netsim.reports import probe_spread as spread

PROTOCOLS = ("TCP", "UDP", "SCTP")
_SERVICE_KEY = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _csv_ints(value: str | None) -> list[int] | None:
    """--ports: port numbers 1-65535 separated by commas."""
    if value is None:
        return None
    try:
        ports = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--ports takes numbers separated by commas, got {value!r}") from None
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad or not ports:
        raise UsageError(f"--ports takes port numbers 1-65535 separated by commas, got {value!r}")
    return ports


def _csv(value: str | None) -> list[str] | None:
    """--protocols: TCP, UDP, SCTP separated by commas (any case)."""
    if value is None:
        return None
    protos = [x.strip().upper() for x in value.split(",") if x.strip()]
    bad = [p for p in protos if p not in PROTOCOLS]
    if bad or not protos:
        raise UsageError(f"--protocols takes {', '.join(PROTOCOLS)} separated by commas, got {value!r}")
    return protos


@click.command()
@click.option("--from", "frm", default="*/*", show_default=True, help="Sources: ns/pod, ns/*, */*, node/N, host/H.")
@click.option("--to", "to", default="*/*", show_default=True,
              help="Targets: the source forms, svc/NS/NAME, a VIP, NODEIP:NODEPORT.")
@click.option("--ports", default=None, help="Ports, e.g. 80,443 (default: declared container/service ports).")
@click.option("--protocols", default=None, help="TCP,UDP,SCTP (default: as declared, else TCP).")
@click.option("--via", type=click.Choice(["pod", "service"]), default="pod", show_default=True)
@click.option("--count", default=1, type=click.IntRange(min=1), show_default=True, help="Attempts per probe (load-balancing spread).")
@click.option("--timeout", default=1.0, type=SECONDS, show_default=True, help="Seconds before a probe counts as a timeout.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@cluster_option
@handle_errors
def probe(frm: str, to: str, ports: str | None, protocols: str | None, via: str, count: int, timeout: float,
          output: str, cluster: str | None) -> None:
    """Connect from sources to targets and report what answered (all probes at once)."""
    with open_cluster(cluster) as c:
        results = c.probe(frm, to, _csv_ints(ports), _csv(protocols), via=via, count=count, timeout=timeout)
    if emit(results_json(results), "json" if output == "json" else None):
        return
    if not results:
        click.echo("nothing to probe (no matching sources or targets)", err=True)
        raise SystemExit(EXIT_FAILED)
    if count > 1:
        groups: dict[tuple, list] = {}
        for r in results:
            groups.setdefault((r.probe.source, r.probe.to, r.probe.port, r.probe.protocol), []).append(r)
        rows = []
        for (src, dst, port, proto), rs in groups.items():
            ok = sum(1 for r in rs if r.connected)
            dist = ", ".join(f"{k} {v}" for k, v in spread(rs).items())
            rows.append([src, dst or "", f"{port}/{proto}", f"{ok}/{len(rs)}", dist])
        click.echo(render_table(["FROM", "TO", "PORT", "CONNECTED", "SERVED BY"], rows))
        return
    rows = [[r.probe.source, r.probe.to or r.probe.target, r.probe.target, f"{r.probe.port}/{r.probe.protocol}",
             r.outcome, r.served_by or "", r.client_ip or "", f"{r.ms:.1f}"] for r in results]
    click.echo(render_table(["FROM", "TO", "TARGET", "PORT", "RESULT", "SERVED BY", "CLIENT IP", "MS"], rows))


@click.group()
def proxy() -> None:
    """What kube-proxy wrote."""


@proxy.command("rules")
@click.option("--node", required=True, help="The node whose rules to show.")
@click.option("--service", default=None, help="Only the rules of this Service (NS/NAME).")
@click.option("--table", "tables", multiple=True, type=click.Choice(["nat", "filter"]), default=("nat", "filter"))
@cluster_option
@handle_errors
def proxy_rules(node: str, service: str | None, tables: tuple[str, ...], cluster: str | None) -> None:
    """kube-proxy's chains and rules on a node, as iptables-save prints them."""
    if service is not None and not _SERVICE_KEY.match(service):
        raise UsageError(f"--service takes NAMESPACE/NAME, got {service!r}")
    with open_cluster(cluster) as c:
        text = c.iptables_save(f"node/{node}", tables)
    click.echo(filter_kube_rules(text, service))


def filter_kube_rules(save: str, service: str | None = None) -> str:
    """Keep kube-proxy's lines (KUBE-* chains and the jumps to them); with `service`, only the lines of
    that Service's chains and the dispatch rules that mention it."""
    lines = [ln for ln in read_lines(save) if ln.kind in (TABLE, COMMIT) or "KUBE-" in ln.text]
    if not service:
        return "\n".join(ln.text for ln in lines)
    ns, _, name = service.partition("/")
    tag = re.compile(rf'"?{re.escape(ns)}/{re.escape(name)}(:[^ "]*)?[ "]')
    chains = {m.group(1) for ln in lines if tag.search(ln.text + " ")
              for m in re.finditer(r"-j (KUBE-(?:SVC|SVL|EXT|FW|SEP)-\w+)", ln.text)}
    grown = True
    while grown:  # follow SVC -> SEP and EXT -> SVC/SVL
        grown = False
        for ln in lines:
            if ln.kind == RULE and ln.op == "-A" and ln.chain in chains:
                for m in re.finditer(r"-j (KUBE-(?:SVC|SVL|EXT|FW|SEP)-\w+)", ln.rest):
                    if m.group(1) not in chains:
                        chains.add(m.group(1))
                        grown = True
    keep = [ln.text for ln in lines
            if ln.kind in (TABLE, COMMIT) or tag.search(ln.text + " ") or ln.chain in chains]
    return "\n".join(keep)


COMMANDS = [probe, proxy]
