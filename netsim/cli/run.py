"""`netsim run`: build a cluster from a scenario, run its steps and expectations, tear it down."""

from __future__ import annotations

import os
import sys

import click
from rich.console import Console

from netsim.cli.common import EXIT_FAILED, handle_errors
from netsim.cli.front import front
from netsim.model.errors import SpecError, SpecErrors


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Choice(["text", "json", "junit"]), default="text")
@click.option("--keep", is_flag=True, help="Leave the cluster running after the steps.")
@click.option("--report", "report_dir", default=None, help="Also write report.json and report.xml per scenario here.")
@click.option("--name", default=None, help="Cluster name (overrides the scenario's).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed expectation.")
@handle_errors
def run(files: tuple[str, ...], output: str, keep: bool, report_dir: str | None, name: str | None,
        fail_fast: bool) -> None:
    """Run scenarios: exit 0 iff every expectation of every scenario holds."""
    from netsim.scenario.format import load_scenario
    from netsim.scenario.report import console_progress, to_json_text, to_junit, to_text
    from netsim.scenario.runner import Runner

    # Validate every file before building anything: bad input is exit 2 with nothing built.
    scenarios, errors = [], []
    for f in files:
        try:
            scenarios.append(load_scenario(f, cluster_name=name))
        except (SpecError, SpecErrors) as exc:
            errors.append(exc)
    if errors:
        raise SpecErrors([e for exc in errors for e in (exc.errors if isinstance(exc, SpecErrors) else [exc])])
    clusters = front()  # builds each scenario's cluster: netsim.Cluster.up, or one injected in process
    clusters.require_root("run")
    clusters.require_tools()
    console = Console(stderr=True)
    all_passed = True
    for sc in scenarios:
        progress = console_progress(console) if output == "text" or sys.stderr.isatty() else None
        result = Runner(clusters, progress=progress, keep=keep, fail_fast=fail_fast).run(sc)
        all_passed &= result.passed
        if output == "json":
            click.echo(to_json_text(result))
        elif output == "junit":
            click.echo(to_junit(result))
        else:
            click.echo(to_text(result))
        if report_dir:
            os.makedirs(report_dir, exist_ok=True)
            base = os.path.join(report_dir, sc.name)
            with open(base + ".json", "w") as fh:
                fh.write(to_json_text(result))
            with open(base + ".xml", "w") as fh:
                fh.write(to_junit(result))
    raise SystemExit(0 if all_passed else EXIT_FAILED)


COMMANDS = [run]
