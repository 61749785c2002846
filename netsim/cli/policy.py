"""NetworkPolicy verbs: verify (model against kernel, what-if with --diff) and explain."""

from __future__ import annotations

from typing import Any

import click

from netsim.cli.common import EXIT_FAILED, SECONDS, cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.cli.network import _csv, _csv_ints
from netsim.model.errors import UsageError
from netsim.model.loader import load_documents
from netsim.model.targets import SelectorError, parse_target, split_port
from netsim.reports import matrix_png
from netsim.reports import verify_matrix as matrix

NOT_ENFORCED = ("plugin {plugin} does not enforce NetworkPolicy (as with real flannel): the kernel allows "
                "what the policies deny")


def _report_text(report: Any) -> str:
    out = []
    for (port, proto), cells in sorted(report.groups().items()):
        out.append(f"== {port}/{proto}: expected (policy model)")
        out.append(matrix(cells, "expected"))
        out.append(f"== {port}/{proto}: observed (kernel)")
        out.append(matrix(cells, "observed"))
    for note in report.notes:
        out.append(f"note: {note}")
    if report.ok:
        out.append(f"model and kernel agree on all {len(report.cells)} probes")
    else:
        out.append(f"{len(report.disagreements)} disagreement(s) (model vs kernel):")
        for c in report.disagreements:
            if c.observed is not None and c.observed != c.expected:
                out.append(f"  {c.source} -> {c.destination} {c.port}/{c.protocol}: model "
                           f"{'allows' if c.expected else 'denies'}, kernel {c.outcome}")
            if not c.address_agrees:
                out.append(f"  {c.source} -> {c.destination} {c.port}/{c.protocol}: model says the pod sees "
                           f"client {c.expected_client}, kernel {c.observed_client}")
            if c.verdict is not None:
                out.extend("    " + line for line in c.verdict.explain().splitlines()[1:])
    return "\n".join(out)


@click.command()
@click.option("-f", "--filename", "files", multiple=True, help="Apply these policies first, then verify.")
@click.option("--diff", "diff_file", default=None, help="What-if: the change NEW.yaml would make, confirmed on "
              "the kernel, then rolled back.")
@click.option("--from", "frm", default=None, help="Sources (default: every pod outside kube-system).")
@click.option("--to", "to", default=None, help="Destinations (default: every pod outside kube-system).")
@click.option("--ports", default=None, help="Ports (default: the destinations' declared ports).")
@click.option("--protocols", default=None, help="TCP,UDP,SCTP (default: as declared).")
@click.option("--via", type=click.Choice(["pod", "service"]), default="pod", show_default=True)
@click.option("--timeout", default=0.5, type=SECONDS, show_default=True, help="Seconds before a probe counts as blocked.")
@click.option("--png", default=None, help="Also write the reachability matrix as a heatmap PNG.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@cluster_option
@handle_errors
def verify(files: tuple[str, ...], diff_file: str | None, frm: str | None, to: str | None, ports: str | None,
           protocols: str | None, via: str, timeout: float, png: str | None, output: str,
           cluster: str | None) -> None:
    """The NetworkPolicy model's truth table against probes on the kernel; exit 1 on any disagreement."""
    port_list, proto_list = _csv_ints(ports), _csv(protocols)  # bad input is refused before anything is applied
    with open_cluster(cluster) as c:
        if files:
            c.apply(list(files))
        if diff_file:
            new = load_documents([diff_file])
            diff = c.verify_diff(new, frm=frm, to=to, ports=port_list, protocols=proto_list,
                                 via=via, timeout=timeout)
            if not emit(diff, "json" if output == "json" else None):
                click.echo(_diff_text(diff))
            raise SystemExit(0 if diff["confirmed"] else EXIT_FAILED)
        report = c.verify(frm=frm, to=to, ports=port_list, protocols=proto_list, via=via,
                          timeout=timeout)
    if png:
        matrix_png(report, png)
    if not emit(report.to_json(), "json" if output == "json" else None):
        click.echo(_report_text(report))
    raise SystemExit(0 if report.ok else EXIT_FAILED)


def _diff_text(diff: dict) -> str:
    lines = [f"applying {diff.get('file', 'the change')} would change "
             f"{len(diff['changes'])} of {diff['pairs']} connection(s):"]
    for ch in diff["changes"]:
        mark = "confirmed" if ch["observed"] == ch["after"] else "NOT confirmed on the kernel"
        lines.append(f"  {ch['from']} -> {ch['to']} {ch['port']}/{ch['protocol']}: "
                     f"{'allowed' if ch['before'] else 'denied'} -> {'allowed' if ch['after'] else 'denied'} "
                     f"({mark})")
    if diff.get("disagreements"):
        lines.append(f"note: {diff['disagreements']} probe(s) under the change disagree with the model "
                     "(see `netsim verify`)")
    lines.append("rolled back: the cluster is as it was" if diff["rolledBack"] else "ROLLBACK FAILED")
    return "\n".join(lines)


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option("--probe/--no-probe", default=True, help="Also probe the kernel.")
@cluster_option
@handle_errors
def explain(src: str, dst: str, probe: bool, cluster: str | None) -> None:
    """Why SRC may or may not reach DST:PORT[/PROTO]: every policy and rule that contributed."""
    target, proto = dst, "TCP"
    if "/" in dst.rsplit(":", 1)[-1]:
        target, proto = dst.rsplit("/", 1)
    try:
        head, port = split_port(target)
        parse_target(head)
    except SelectorError as exc:
        raise UsageError(str(exc)) from None
    if port is None:
        raise UsageError("say which port: netsim explain SRC DST:PORT[/PROTO]")
    with open_cluster(cluster) as c:
        text = c.explain(src, head, port, proto.upper(), probe=probe)
    click.echo(text)


COMMANDS = [verify, explain]
