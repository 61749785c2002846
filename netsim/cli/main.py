"""`netsim` top-level command group and the cluster lifecycle verbs."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import click

from netsim.api import Cluster, DaemonDown
from netsim.cli.common import (
    EXIT_USAGE,
    SECONDS,
    cluster_option,
    emit,
    fail,
    handle_errors,
    output_option,
)
from netsim.cli.front import cluster as open_cluster
from netsim.cli.front import front
from netsim.model.errors import UsageError
from netsim.model.storespec import STORE_TYPES, StoreSpec

if TYPE_CHECKING:
    from rich.console import Console


class OneLineErrors(click.Group):
    """click's usage errors as one line on stderr (`netsim probe: Invalid value for '--count': ...`), exit 2,
    like every other netsim error; --help and --version as usual."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            where = exc.ctx.command_path if getattr(exc, "ctx", None) else (prog_name or "netsim")
            hint = f" (see {where} --help)" if isinstance(exc, click.UsageError) else ""
            message = " ".join(exc.format_message().split())
            command = getattr(getattr(exc, "ctx", None), "command", None)
            if isinstance(command, click.Group) and type(exc).__name__ == "NoArgsIsHelpError":
                if exc.ctx.parent is None:  # bare `netsim`: the overview, as always
                    click.echo(exc.ctx.get_help())
                    sys.exit(exc.exit_code)
                message = f"say which: {', '.join(sorted(command.commands))}"
            click.echo(f"{where}: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo(f"{prog_name or 'netsim'}: aborted", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        sys.exit(0)


# Which module defines each verb the group does not define itself. `netsim VERB` imports only that module
# (and what it imports): a verb pays for its own implementation alone, so `netsim apply` does not import the
# trace, probe or drawing code. `netsim --help` and walks over `cli.commands.items()` load them all.
# tests/unit/cli/test_cli_imports.py checks this table against each module's COMMANDS.
LAZY_VERBS: dict[str, str] = {
    "agent": "netsim.cli.hosts",
    "annotate": "netsim.cli.mutate",
    "apply": "netsim.cli.resources",
    "controlplane": "netsim.cli.hosts",
    "delete": "netsim.cli.resources",
    "describe": "netsim.cli.resources",
    "draw": "netsim.cli.draw",
    "edit": "netsim.cli.mutate",
    "events": "netsim.cli.resources",
    "explain": "netsim.cli.policy",
    "get": "netsim.cli.get",
    "kill": "netsim.cli.resources",
    "kubeconfig": "netsim.cli.kubeconfig",
    "label": "netsim.cli.mutate",
    "load": "netsim.cli.load",
    "logs": "netsim.cli.resources",
    "node": "netsim.cli.resources",
    "probe": "netsim.cli.network",
    "proxy": "netsim.cli.network",
    "rollout": "netsim.cli.resources",
    "run": "netsim.cli.run",
    "scale": "netsim.cli.resources",
    "set": "netsim.cli.mutate",
    "top": "netsim.cli.top",
    "trace": "netsim.cli.trace",
    "verify": "netsim.cli.policy",
    "wait": "netsim.cli.wait",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A click group's `commands` whose verbs are imported when first looked up: the names are known from
    LAZY_VERBS without importing anything, a verb's module is imported when its command is asked for
    (`get_command`, `commands[name]`, `.items()`), and every command that module defines is added then."""

    def __init__(self, lazy: Mapping[str, str]):
        self._loaded: dict[str, click.Command] = {}
        self._lazy = dict(lazy)

    def _load(self, name: str) -> None:
        module = importlib.import_module(self._lazy[name])
        for command in module.COMMANDS:
            self._loaded.setdefault(command.name or "", command)
            self._lazy.pop(command.name or "", None)
        if name not in self._loaded:  # the table names a module that does not define the verb
            raise RuntimeError(f"netsim.cli: {module.__name__} defines no command {name!r}")

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._lazy:
            self._load(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._lazy.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name in self._lazy:
            del self._lazy[name]
        else:
            del self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded, *(n for n in self._lazy if n not in self._loaded)])

    def __len__(self) -> int:
        return len(self._loaded) + sum(1 for n in self._lazy if n not in self._loaded)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netsim")
def cli() -> None:
    """netsim: the networking half of Kubernetes on one Linux kernel.

    Nodes, pods and external hosts are network namespaces; CNI plugins, kube-proxy rules and
    NetworkPolicies are real kernel state you can probe, trace and verify.
    """


cli.commands = LazyCommands(LAZY_VERBS)


@cli.command()
@click.option("-f", "--file", "path", type=click.Path(dir_okay=False), help="Cluster spec (kind: Cluster).")
@click.option("--name", default=None, help="Cluster name (overrides metadata.name).")
@click.option("--no-daemon", is_flag=True, help="Build only the node network; no control plane or agents.")
@click.option("--timeout", default=60.0, type=SECONDS, show_default=True, help="Seconds to wait for the cluster to be ready.")
@click.option("--store", "store_type", type=click.Choice(STORE_TYPES), default=None,
              help="Where the cluster's objects live (overrides spec.store.type): sqlite, or etcd (a private "
                   "etcd server unless spec.store.endpoints names one).")
@output_option
@handle_errors
def up(path: str | None, name: str | None, no_daemon: bool, timeout: float, store_type: str | None,
       output: str) -> None:
    """Build a cluster's node network (and, as they land, its agents); returns when ready."""
    from rich.console import Console

    from netsim.model.cluster import default_cluster, load_cluster_file  # the cluster model: `up` only

    f = front()
    f.require_root("up")
    spec = load_cluster_file(path, name_override=name) if path is not None else default_cluster(name or "demo")
    if store_type is not None and store_type != spec.store.type:
        spec = dataclasses.replace(spec, store=StoreSpec(store_type))
    console = Console(stderr=True)
    if not no_daemon:
        # An existing cluster whose daemon died: start a new one, which adopts the pods' sandboxes.
        revived = f.revive(spec.name, timeout)
        if revived is not None:
            c, pid = revived
            try:
                info = c.build_info()
            finally:
                c.close()
            _start_warm(f, spec.name)
            if not emit(info, output):
                click.echo(f"cluster {spec.name} exists; its daemon was not running and was restarted (pid {pid})")
            return
    with console.status(f"building cluster {spec.name}") as status:
        c = f.up(spec, daemon=not no_daemon, timeout=timeout,
                 progress=lambda msg: status.update(f"{spec.name}: {msg}"))
    try:
        info = c.build_info()
        st = c.state
    finally:
        c.close()
    _start_warm(f, spec.name)
    if not emit(info, output):
        click.echo(f"cluster {spec.name} ready: {len(st.nodes)} node(s), {len(st.hosts)} external host(s), "
                   f"{spec.network.plugin}/{spec.network.backend} in {st.extra.get('buildSeconds')}s")
        api = info.get("apiServer") or {}
        if api.get("kubeconfig"):
            click.echo(f"kubectl context {api['context']} ({api['server']}) in {api['kubeconfig']}")
        elif api.get("kubeconfigError"):
            click.echo(f"netsim up: warning: the kubeconfig was not updated ({api['kubeconfigError']}); "
                       f"`netsim kubeconfig --cluster {spec.name}` prints it", err=True)


def _start_warm(f: object, cluster: str) -> None:
    """The cluster's warm CLI process (netsim.cli.warm), which later verbs hand their work to; none for a
    cluster that lives in this process."""
    if getattr(f, "in_process", False):
        return
    from netsim.cli import warm
    try:
        warm.start(cluster)
    except OSError as exc:  # the cluster works without it: its verbs then run cold
        click.echo(f"netsim up: warning: no warm CLI process ({exc}); commands start cold", err=True)


@cli.command()
@click.option("--name", default=None, help="Cluster to remove (default: the only one).")
@click.option("--all", "all_", is_flag=True, help="Remove every netsim cluster and any leftovers.")
@output_option
@handle_errors
def down(name: str | None, all_: bool, output: str) -> None:
    """Remove everything a cluster made, also after a crash."""
    f = front()
    f.require_root("down")
    if all_ and name is not None:
        raise UsageError("--all removes every cluster; it takes no --name")
    if all_:
        reports = f.remove_all()
    else:
        if name is not None:
            Cluster.check_name(name, "--name")
        if name is None:
            known = f.known()
            if len(known) != 1:
                raise UsageError("name the cluster with --name, or use --all "
                                 f"(clusters: {', '.join(known) or 'none'})")
            name = known[0]
        reports = [f.remove(name)]
    data = [r.__dict__ for r in reports]
    if not emit(data, output):
        if not reports:
            click.echo("nothing to remove")
        for r in reports:
            click.echo(f"removed {r.cluster}: {r.namespaces} namespace(s), {r.processes} process(es)")


@cli.command()
@cluster_option
@output_option
@handle_errors
def status(cluster: str | None, output: str) -> None:
    """Nodes, addresses and namespaces of a cluster, its daemon and the daemon's components: exit 4 when the
    daemon is down, 1 when one of its components is dead."""
    from rich.console import Console
    from rich.table import Table

    with open_cluster(cluster) as c:
        info = c.status()
        down_message = c.daemon_down_message()
    d = info["daemon"]
    components = d["components"]
    dead = [n for n, comp in components.items() if (comp or {}).get("state") == "dead"]
    expected, running = d["expected"], d["running"]
    missing = [h for h, a in info.get("agents", {}).items() if not a["running"]] if expected else []
    down = expected and not running
    if emit(info, output):
        if down:
            click.echo(f"netsim: {down_message}", err=True)
            sys.exit(DaemonDown.exit_code)
        if dead or missing:
            sys.exit(1)
        return
    console = Console()
    console.print(f"[bold]{info['name']}[/bold] {info['phase']}  plugin {info['plugin']}/{info['backend']}  "
                  f"pods {info['podCIDR']}  services {info['serviceCIDR']}  nodes {info['nodeNetwork']}")
    table = Table(box=None)
    for col in ("KIND", "NAME", "IP", "POD CIDR", "NETNS", "OK"):
        table.add_column(col)
    for n in info["nodes"]:
        table.add_row("node", n["name"], n["ip"], n["podCIDR"], n["netns"], "yes" if n["present"] else "MISSING")
    for h in info["hosts"]:
        table.add_row("host", h["name"], h["ip"], "", h["netns"], "yes" if h["present"] else "MISSING")
    console.print(table)
    if d["expected"] or d["running"]:
        if d["running"]:
            conv = "converged" if d["converged"] else f"pending: {', '.join(d['pending']) or '?'}"
            console.print(f"daemon {d['pid']} running, {conv}  (log {d['log']})")
            api = info.get("apiServer") or {}
            if api:
                console.print(f"api {api['server']}  kubectl context {api['context']}", soft_wrap=True)
            _print_components(console, components)
            leader = (info.get("controlPlane") or {}).get("leader")
            if leader:
                console.print(f"control plane leader {leader}")
            for host, a in (info.get("agents") or {}).items():
                nodes = ", ".join(a["nodes"]) or "no nodes"
                if a["running"]:
                    console.print(f"agent of host {host} {a['pid']} running ({nodes})")
                    _print_components(console, a["components"])
                else:
                    console.print(f"[bold red]agent of host {host} DOWN[/bold red] ({nodes}): start it with "
                                  f"`netsim agent --cluster {info['name']} --host {host} --detach`", soft_wrap=True)
        else:
            console.print(f"[bold red]DOWN[/bold red]: {down_message}", soft_wrap=True)
    else:
        console.print("no daemon (in process)" if info.get("stateDir") is None else
                      "no daemon (built with --no-daemon)")
    if down:
        sys.exit(DaemonDown.exit_code)
    if dead or missing:
        sys.exit(1)


def _print_components(console: Console, components: dict) -> None:
    """One line for the healthy ones, one per component that is not running (DEAD ones in capitals)."""
    if not components:
        return
    ok = [n for n, c in components.items() if (c or {}).get("state") == "running"]
    console.print(f"components: {len(ok)}/{len(components)} running")
    for name, c in components.items():
        if (c or {}).get("state") != "running":
            state = str((c or {}).get("state"))
            why = (c or {}).get("error") or ""
            console.print(f"  {name}: {state.upper() if state == 'dead' else state}" + (f" ({why})" if why else ""))


@cli.group()
def daemon() -> None:
    """The cluster's daemon (controllers, kubelets, kube-proxy, felix, DNS, workload server)."""


@daemon.command("restart")
@cluster_option
@click.option("--timeout", type=SECONDS, default=60.0, show_default=True, help="Seconds to wait for it to converge.")
@handle_errors
def daemon_restart(cluster: str | None, timeout: float) -> None:
    """Stop the daemon if it runs and start a new one; its kubelets adopt the pods' existing sandboxes."""
    with open_cluster(cluster) as c:
        pid = c.restart_daemon(timeout)
        click.echo(f"cluster {c.name}: daemon restarted (pid {pid}), converged")


@cli.command(name="exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--node", default=None, help="Run in this node's namespace.")
@click.option("-n", "--namespace", "kns", default="default", help="Pod namespace (for a pod target).")
@cluster_option
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@handle_errors
def exec_(node: str | None, kns: str, cluster: str | None, args: tuple[str, ...]) -> None:
    """Run a command in a node's (--node N), host's (host/NAME) or pod's ([NS/]POD) network namespace.

    Examples: netsim exec --node node-1 -- ip route;  netsim exec host/client -- ping -c1 172.18.0.2
    """
    if "--" in args:
        cut = args.index("--")
        before, command = args[:cut], args[cut + 1:]
    elif node is not None:
        before, command = (), args
    else:
        before, command = args[:1], args[1:]
    if len(before) > 1:
        raise UsageError(f"one target expected before --, got {' '.join(before)}")
    target = before[0] if before else None
    if not command:
        raise UsageError("no command given (netsim exec TARGET -- CMD ARGS)")
    if node is None and not target:
        raise UsageError("say where to run: --node NODE, host/NAME or a pod name")
    with open_cluster(cluster) as c:
        ns = c.netns_for(f"node/{node}" if node is not None else target or "", namespace=kns)
    # `ip netns exec` also binds /etc/netns/<ns>/* (a pod's resolv.conf) over /etc in a private mount ns.
    argv = ["ip", "netns", "exec", ns, *command]
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        fail("`ip` (iproute2) is not installed", EXIT_USAGE)


def main() -> None:
    cli(prog_name="netsim")


if __name__ == "__main__":
    sys.exit(main())
