"""Verbs on Kubernetes objects: apply, delete, get, describe, events, logs, scale, rollout, kill, node."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time

import click
import yaml

from netsim.api import DaemonError, Target, check_scale
from netsim.cli.common import SECONDS, cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.cli.kinds import custom_kinds, is_namespaced, resolve_kind
from netsim.model import registry
from netsim.model.errors import SpecError, UsageError
from netsim.model.loader import load_sourced, object_ref

wait_option = click.option("--wait/--no-wait", default=True, help="Wait until the cluster has converged.")
timeout_option = click.option("--timeout", default=120.0, type=SECONDS, show_default=True, help="Seconds to wait.")


_kind, _custom, _namespaced = resolve_kind, custom_kinds, is_namespaced


recursive_option = click.option("-R", "--recursive", is_flag=True,
                                 help="Process the directory used in -f recursively (as kubectl).")


@click.command()
@click.option("-f", "--filename", "files", multiple=True, required=True, help="File, directory or - (stdin).")
@recursive_option
@click.option("--skip-unknown", is_flag=True,
              help="Store objects of kinds neither Kubernetes nor a stored CRD defines, with a warning.")
@click.option("-n", "--namespace", default=None,
              help="Namespace for the objects that name none (an object naming another one is an error).")
@cluster_option
@wait_option
@timeout_option
@handle_errors
def apply(files: tuple[str, ...], recursive: bool, skip_unknown: bool, namespace: str | None,
          cluster: str | None, wait: bool, timeout: float) -> None:
    """Apply manifests (all or nothing) and wait until the kernel state matches."""
    with open_cluster(cluster) as c:
        sources = load_sourced(list(files), stdin=sys.stdin, recursive=recursive, custom=c.custom_kinds(),
                               skip_unknown=skip_unknown, namespace=namespace)
        lines = [f'Warning: no matches for kind "{x.kind}" in version "{x.api_version}": stored unchecked '
                 f"(--skip-unknown)" for _, x in sources if getattr(x, "verified", True) is False]
        try:
            lines += c.apply([x for _, x in sources], wait=False)
        except SpecError as e:  # admission (allocations, external IPs): name the file the object came from
            where = {object_ref(x): src for src, x in sources}
            raise SpecError(e.message, source=where.get(e.obj or "", e.source), obj=e.obj, field=e.field) from None
        for line in lines:
            click.echo(line, err=line.startswith(("Warning:", "Note:")))
        if wait:
            c.wait_converged(timeout, [x.to_dict() for _, x in sources])


@click.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True, help="Delete the objects in these manifests.")
@recursive_option
@click.option("-n", "--namespace", default=None,
              help="Namespace of the objects (default: default; with -f, of the objects that name none).")
@click.option("--grace-period", type=click.IntRange(min=-1), default=-1, show_default=True,
              help="Seconds a pod is given to terminate (-1: its own; 0 only with --force).")
@click.option("--force", is_flag=True, help="With --grace-period=0: remove pods from the store at once.")
@click.option("--ignore-not-found", is_flag=True, help="Absent objects are not an error.")
@click.option("-l", "--selector", default=None, help="Delete the objects of KIND whose labels match.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of KIND in the namespace.")
@cluster_option
@wait_option
@timeout_option
@handle_errors
def delete(kind: str | None, names: tuple[str, ...], files: tuple[str, ...], recursive: bool,
           namespace: str | None, grace_period: int, force: bool, ignore_not_found: bool, selector: str | None,
           all_: bool, cluster: str | None, wait: bool, timeout: float) -> None:
    """Delete objects by manifest (-f), by KIND NAME..., TYPE/NAME..., or KIND with -l/--all: all of them or
    none. Pods terminate first (the kubelet tears their sandbox down), as in Kubernetes."""
    with open_cluster(cluster) as c:
        for line in _delete(c, kind, names, files, recursive, namespace, grace_period, force, ignore_not_found,
                            selector, all_, wait, timeout):
            click.echo(line)


def _delete(c, kind: str | None, names: tuple[str, ...], files: tuple[str, ...], recursive: bool,
            namespace: str | None, grace_period: int, force: bool, ignore_not_found: bool, selector: str | None,
            all_: bool, wait: bool, timeout: float) -> list[str]:
    store = c.store  # read: which kinds and objects the arguments name
    targets: list[Target] = []
    given, namespace = namespace, namespace or "default"
    if files:  # as `apply -n`: -n is the namespace of the objects naming none, another one is an error
        for src, x in load_sourced(list(files), stdin=sys.stdin, recursive=recursive, custom=_custom(store),
                                   skip_unknown=True, namespace=given):
            ns = (x.meta.namespace or namespace) if _namespaced(x.kind, store) else None
            targets.append(Target(x.kind, ns, x.meta.name, src))
    elif kind and "/" in kind:
        for arg in (kind, *names):
            k_text, sep, name = arg.partition("/")
            if not sep or not name:
                raise UsageError(f"{arg!r}: use TYPE/NAME for every object, or KIND NAME...")
            k = _kind(k_text, store)
            targets.append(Target(k, namespace if _namespaced(k, store) else None, name))
    elif kind and names:
        if selector or all_:
            raise UsageError("name objects or select them with -l/--all, not both")
        k = _kind(kind, store)
        targets = [Target(k, namespace if _namespaced(k, store) else None, n) for n in names]
    elif kind and (selector or all_):
        from netsim.cli.get import select  # the printers and selectors of `get`: not for every verb here
        k = _kind(kind, store)
        ns = namespace if _namespaced(k, store) else None
        targets = [Target(k, ns, o["metadata"]["name"])
                   for o in select(store, k, [], namespace, False, selector, None)]
        if not targets:
            click.echo(f"No resources found{' in ' + namespace + ' namespace' if ns else ''}.", err=True)
            return []
    else:
        raise UsageError("say what to delete: -f FILE, KIND NAME..., TYPE/NAME..., or KIND -l SELECTOR / --all")
    return c.delete_objects(targets, grace_period=grace_period, force=force, ignore_not_found=ignore_not_found,
                            wait=wait, timeout=timeout)


@click.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default")
@cluster_option
@handle_errors
def describe(kind: str, name: str, namespace: str, cluster: str | None) -> None:
    """An object in full, with its events."""
    with open_cluster(cluster) as c:
        store = c.store
        k = _kind(kind, store)
        ns = namespace if _namespaced(k, store) else None
        obj = store.get(k, ns, name)
        if obj is None:
            raise UsageError(f'{k.lower()} "{name}" not found')
        ref = f"{k}/{ns + '/' if ns else ''}{name}"
        evs = [e for e in c.events() if e.object in (ref, f"{k} {ns}/{name}", f"{k.lower()}/{name}")]
    click.echo(yaml.safe_dump(obj, sort_keys=False).rstrip())
    click.echo("Events:" + ("" if evs else " <none>"))
    for e in evs:
        click.echo(f"  {_ts(e.time)}  {e.actor:<24} {e.reason:<16} {e.message}")


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def event_objects(spec: str) -> set[str]:
    """`--for`: the names events give the object (`Pod default/web-1`, `node/node-1`, `Node node-1`), from
    KIND/NAME (namespace default), KIND/NS/NAME, node/NAME, or the event's own `Kind ns/name`."""
    text = spec.strip()
    kind_text, sep, rest = text.partition(" ") if " " in text else text.partition("/")
    parts = rest.split("/") if sep else []
    kind = registry.kind_alias(kind_text) if kind_text else None
    if kind == "Node" or kind_text.lower() == "node":
        kind = "Node"
    if kind is None or not parts or len(parts) > 2 or not all(_NAME.match(p) for p in parts):
        raise UsageError(f"--for takes KIND/NAME, KIND/NS/NAME or node/NAME (e.g. pod/default/web-1), got {spec!r}")
    if kind == "Node":
        if len(parts) != 1:
            raise UsageError(f"--for: a node has no namespace: node/NAME, got {spec!r}")
        return {f"node/{parts[0]}", f"Node {parts[0]}"}
    if not registry.namespaced(kind):
        return {f"{kind} {parts[-1]}"} if len(parts) == 1 else set()
    key = "/".join(parts) if len(parts) == 2 else f"default/{parts[0]}"
    return {f"{kind} {key}"}


@click.command()
@click.option("-w", "--watch", is_flag=True, help="Keep printing new events.")
@click.option("--for", "for_obj", default=None,
              help="Only this object's events: KIND/NAME, KIND/NS/NAME or node/NAME (e.g. pod/default/web-1).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@cluster_option
@handle_errors
def events(watch: bool, for_obj: str | None, output: str, cluster: str | None) -> None:
    """The control-plane timeline: who did what, when, and how long it took."""
    wanted = event_objects(for_obj) if for_obj is not None else None
    with open_cluster(cluster) as c:
        stream = c.watch_events() if watch else iter(c.events())
        if output == "json" and not watch:
            emit([e.to_record() for e in stream if wanted is None or e.object in wanted], "json")
            return
        for e in stream:
            if wanted is not None and e.object not in wanted:
                continue
            took = f"{e.duration_ms:8.1f}ms" if e.duration_ms else " " * 10
            click.echo(f"{_ts(e.time)}  {e.actor:<26} {e.reason:<16} {took}  {e.object}  {e.message}")


@click.command()
@click.argument("pod")
@click.option("-n", "--namespace", default="default")
@click.option("-c", "--container", default=None)
@click.option("-p", "--previous", is_flag=True, help="the previous (terminated) instance of the container")
@cluster_option
@handle_errors
def logs(pod: str, namespace: str, container: str | None, previous: bool, cluster: str | None) -> None:
    """Output of a pod's container processes."""
    with open_cluster(cluster) as c:
        files = c.log_files(pod, namespace, container, previous=previous)
    if not files and previous:
        # kubectl's message for a container that has not restarted
        raise UsageError(f'previous terminated container{f" {container!r}" if container else ""} in pod '
                         f'"{pod}" not found')
    if not files:
        raise UsageError(f"no logs for pod {namespace}/{pod} (only containers with a command have logs)")
    for f in files:
        with open(f, errors="replace") as fh:
            click.echo(fh.read(), nl=False)


@click.command()
@click.argument("target")
@click.option("--replicas", type=int, required=True)
@click.option("-n", "--namespace", default="default")
@cluster_option
@wait_option
@timeout_option
@handle_errors
def scale(target: str, replicas: int, namespace: str, cluster: str | None, wait: bool, timeout: float) -> None:
    """Set replicas of a deployment/replicaset/statefulset (TARGET as kind/name or name)."""
    kind, _, name = target.rpartition("/")
    k = _kind(kind or "deployment")
    check_scale(k, replicas)
    with open_cluster(cluster) as c:
        obj = c.scale(k, name, replicas, namespace, wait=False)
        click.echo(f"{k.lower()}/{name} scaled")
        if wait:  # for the scaled object's pods only, as apply waits for what it applied
            c.wait_converged(timeout, [obj])


@click.group()
def rollout() -> None:
    """Deployment rollouts: status, history, undo."""


@rollout.command("status")
@click.argument("target")
@click.option("-n", "--namespace", default="default")
@cluster_option
@timeout_option
@handle_errors
def rollout_status_cmd(target: str, namespace: str, cluster: str | None, timeout: float) -> None:
    name = target.rpartition("/")[2]
    with open_cluster(cluster) as c:
        c.require_daemon()
        deadline = time.monotonic() + timeout
        last = None
        while True:
            msg, done = c.rollout_status(name, namespace)
            if msg != last:
                click.echo(msg)
                last = msg
            if done:
                return
            if time.monotonic() > deadline:
                raise DaemonError(f"rollout of {name} did not finish within {timeout:.0f}s")
            c.require_daemon()
            time.sleep(0.1)


@rollout.command("history")
@click.argument("target")
@click.option("-n", "--namespace", default="default")
@cluster_option
@handle_errors
def rollout_history_cmd(target: str, namespace: str, cluster: str | None) -> None:
    name = target.rpartition("/")[2]
    with open_cluster(cluster) as c:
        history = c.rollout_history(name, namespace)
    click.echo(f"deployment.apps/{name}\nREVISION  CHANGE-CAUSE")
    for rev, cause in history:
        click.echo(f"{rev:<9} {cause or '<none>'}")


@rollout.command("undo")
@click.argument("target")
@click.option("-n", "--namespace", default="default")
@click.option("--to-revision", type=click.IntRange(min=0), default=0)
@cluster_option
@wait_option
@timeout_option
@handle_errors
def rollout_undo_cmd(target: str, namespace: str, to_revision: int, cluster: str | None, wait: bool,
                     timeout: float) -> None:
    name = target.rpartition("/")[2]
    with open_cluster(cluster) as c:
        click.echo(c.rollout_undo(name, namespace, to_revision))
        if wait:
            c.wait_converged(timeout)


@click.group()
def kill() -> None:
    """Faults: destroy a pod's sandbox out from under the kubelet, as a crash would."""


@kill.command("pod")
@click.argument("name")
@click.option("-n", "--namespace", default="default")
@cluster_option
@wait_option
@timeout_option
@handle_errors
def kill_pod(name: str, namespace: str, cluster: str | None, wait: bool, timeout: float) -> None:
    with open_cluster(cluster) as c:
        c.kill_pod(name, namespace, wait=wait, timeout=timeout)
    click.echo(f"pod/{name} sandbox destroyed" + ("; the kubelet made a new one" if wait else ""))


@click.group()
def node() -> None:
    """Faults on nodes: cut a node off the underlay (its agents stop) and bring it back."""


def _set_failed(name: str, cluster: str | None, failed: bool, wait: bool, timeout: float) -> None:
    with open_cluster(cluster) as c:
        if c.state.node(name) is None:
            raise UsageError(f"cluster {c.name} has no node {name!r}")
        c.set_node_failed(name, failed)
        click.echo(f"node/{name} {'failed' if failed else 'restored'}")
        if wait:
            c.wait_converged(timeout)


@node.command("fail")
@click.argument("name")
@cluster_option
@click.option("--wait/--no-wait", default=False, help="Wait for the cluster to converge (pods replaced).")
@timeout_option
@handle_errors
def node_fail(name: str, cluster: str | None, wait: bool, timeout: float) -> None:
    _set_failed(name, cluster, True, wait, timeout)


@node.command("restore")
@click.argument("name")
@cluster_option
@wait_option
@timeout_option
@handle_errors
def node_restore(name: str, cluster: str | None, wait: bool, timeout: float) -> None:
    _set_failed(name, cluster, False, wait, timeout)


COMMANDS = [apply, delete, describe, events, logs, scale, rollout, kill, node]
