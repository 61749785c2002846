"""`netsim top pods|nodes`: what `kubectl top` shows, from the usage the daemon samples (netsim.node.metrics_sampler).

Columns and units as kubectl's (CPU in millicores `250m`, memory in `Mi`; nodes also as a percentage of their
allocatable). Before the first two samples of a pod there is nothing to show: kubectl's "metrics not available
yet", exit 1.
"""

from __future__ import annotations

import math
from typing import Any

import click

from netsim.cli.common import EXIT_FAILED, cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.model.errors import UsageError
from netsim.model.metrics import MetricsView
from netsim.model.quantity import parse_quantity
from netsim.model.selectors import parse_selector_string
from netsim.printers import render_table


def _cpu(cores: float) -> str:
    return f"{math.ceil(cores * 1000 - 1e-9)}m"


def _mem(b: float) -> str:
    return f"{int(b // 2**20)}Mi"


def _fail(message: str) -> None:
    click.echo(f"netsim top: {message}", err=True)
    raise SystemExit(EXIT_FAILED)


@click.group()
def top() -> None:
    """Resource usage of pods and nodes, as kubectl top shows it."""


@top.command("pods")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default=None, help="Only pods whose labels match.")
@click.option("--containers", is_flag=True, help="One line per container.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@cluster_option
@handle_errors
def top_pods(name: str | None, namespace: str, all_namespaces: bool, selector: str | None, containers: bool,
             output: str, cluster: str | None) -> None:
    """CPU (cores) and memory of pods: real processes measured, image-played containers emulated."""
    try:
        sel = parse_selector_string(selector) if selector else None
    except ValueError as exc:
        raise UsageError(f"--selector: {exc}") from None
    with open_cluster(cluster) as c:
        view: MetricsView = c.metrics()
        pods = c.get("Pod", None if all_namespaces else namespace)
        named_exists = bool(name) and c.store.get("Pod", namespace, name) is not None
    rows: list[list[str]] = []
    out: list[dict[str, Any]] = []
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        md = pod["metadata"]
        if name and md["name"] != name or sel is not None and not sel.matches(md.get("labels") or {}):
            continue
        u = view.pod(md.get("namespace") or "default", md["name"])
        if u is None:
            continue
        prefix = [md.get("namespace", "")] if all_namespaces else []
        if containers:
            rows += [[*prefix, md["name"], c.name, _cpu(c.cpu), _mem(c.memory)] for c in u.containers]
        else:
            rows.append([*prefix, md["name"], _cpu(u.cpu), _mem(u.memory)])
        out.append({"namespace": md.get("namespace"), "name": md["name"], "timestamp": u.timestamp,
                    "window": u.window, "requestsPerSecond": round(u.rps, 3),
                    "containers": [{"name": c.name, "cpu": _cpu(c.cpu), "memory": _mem(c.memory)}
                                   for c in u.containers]})
    if name and not out:
        _fail(f'pod "{name}" metrics not available yet' if named_exists else f'pods "{name}" not found')
    if not out:
        _fail("metrics not available yet")
    if emit({"items": out}, "json" if output == "json" else None):
        return
    head = (["NAMESPACE"] if all_namespaces else []) + (["POD", "NAME"] if containers else ["NAME"])
    click.echo(render_table([*head, "CPU(cores)", "MEMORY(bytes)"], rows))


@top.command("nodes")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@cluster_option
@handle_errors
def top_nodes(output: str, cluster: str | None) -> None:
    """CPU and memory of each node: the sum of its pods, and as a share of its allocatable."""
    with open_cluster(cluster) as c:
        view: MetricsView = c.metrics()
        nodes = c.get("Node") if view.pods else []
    if not view.pods:
        _fail("metrics not available yet")
    rows, out = [], []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        nn = node["metadata"]["name"]
        used = [u for u in view.pods.values() if u.node == nn]
        cpu, mem = sum(u.cpu for u in used), sum(u.memory for u in used)
        alloc = (node.get("status") or {}).get("allocatable") or {}
        cpu_cap = float(parse_quantity(alloc.get("cpu", "0")))
        mem_cap = float(parse_quantity(alloc.get("memory", "0")))
        cpu_pct = f"{int(cpu * 100 / cpu_cap)}%" if cpu_cap else "<unknown>"
        mem_pct = f"{int(mem * 100 / mem_cap)}%" if mem_cap else "<unknown>"
        rows.append([nn, _cpu(cpu), cpu_pct, _mem(mem), mem_pct])
        out.append({"name": nn, "cpu": _cpu(cpu), "cpuPercent": cpu_pct, "memory": _mem(mem),
                    "memoryPercent": mem_pct})
    if emit({"items": out}, "json" if output == "json" else None):
        return
    click.echo(render_table(["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], rows))


COMMANDS = [top]
