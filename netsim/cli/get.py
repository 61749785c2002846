"""`netsim get` as kubectl's: several kinds (`deploy,svc`, `all`, `pod/web`), label and field selectors,
`-o name|wide|json|yaml|jsonpath=...|custom-columns=...`, `--show-labels`, and `--watch`.

Tables keep kubectl's default printer columns (netsim.printers); `all` is kubectl's "all" category
(pods, services, daemonsets, deployments, replicasets, statefulsets, jobs, cronjobs, hpa, rc).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import click

from netsim.cli import jsonpath
from netsim.cli.common import cluster_option, emit, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.cli.kinds import is_namespaced, resolve_kind, resource_name
from netsim.model.errors import UsageError
from netsim.model.fieldselectors import matches as field_matches
from netsim.model.fieldselectors import parse_field_selector
from netsim.model.selectors import parse_selector_string
from netsim.printers import render_table, table

ALL_CATEGORY = ("Pod", "Service", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet",
                "HorizontalPodAutoscaler", "ReplicationController", "Job", "CronJob")
PLAIN_FORMATS = ("text", "wide", "json", "yaml", "name")


def parse_output(output: str) -> tuple[str, str | None]:
    """(format, argument) of `-o`: text, wide, json, yaml, name, jsonpath=T, custom-columns=SPEC."""
    if output in PLAIN_FORMATS:
        return output, None
    for fmt in ("jsonpath", "custom-columns"):
        if output.startswith(fmt + "="):
            arg = output[len(fmt) + 1:]
            if not arg:
                raise UsageError(f"-o {fmt}= needs a template")
            return fmt, arg
    raise UsageError(f"unable to match a printer suitable for the output format {output!r}, allowed formats are: "
                     "custom-columns,json,jsonpath,name,wide,yaml")


def parse_custom_columns(spec: str) -> list[tuple[str, str]]:
    cols = []
    for part in spec.split(","):
        header, sep, expr = part.partition(":")
        if not sep or not header or not expr:
            raise UsageError(f"custom-columns format {part!r} must be HEADER:JSONPATH")
        cols.append((header, expr))
    return cols


def _requests(args: Sequence[str], store) -> list[tuple[str, list[str]]]:
    """(kind, names) pairs from kubectl's argument forms: `KIND[,KIND] [NAME...]` or `KIND/NAME...`."""
    if not args:
        raise UsageError("say what to get: a resource type such as pods, or TYPE/NAME")
    if "/" in args[0]:
        out: list[tuple[str, list[str]]] = []
        for a in args:
            kind, sep, name = a.partition("/")
            if not sep or not name:
                raise UsageError(f"there is no need to specify a resource type as a separate argument when "
                                 f"passing arguments in resource/name form (e.g. 'get pod/web'): {a!r}")
            k = resolve_kind(kind, store)
            if out and out[-1][0] == k:
                out[-1][1].append(name)
            else:
                out.append((k, [name]))
        return out
    kinds: list[str] = []
    for part in args[0].split(","):
        if part.strip().lower() == "all":
            kinds += [k for k in ALL_CATEGORY if k not in kinds]
        elif part.strip():
            k = resolve_kind(part, store)
            if k not in kinds:
                kinds.append(k)
    if len(args) > 1 and len(kinds) > 1:
        raise UsageError("you may only specify a single resource type when naming objects")
    return [(k, list(args[1:])) for k in kinds]


def select(store, kind: str, names: Sequence[str], namespace: str, all_namespaces: bool, selector: str | None,
           field_selector: str | None) -> list[dict[str, Any]]:
    """The objects a get names, in kubectl's order (namespace, name); NotFound for a missing named one."""
    namespaced = is_namespaced(kind, store)
    ns = None if (all_namespaces or not namespaced) else namespace
    try:
        label_sel = parse_selector_string(selector) if selector else None
        field_reqs = parse_field_selector(field_selector, kind) if field_selector else ()
    except ValueError as e:
        raise UsageError(str(e)) from None
    objs = store.list(kind, ns)
    if names:
        by_name = {o["metadata"]["name"]: o for o in objs}
        missing = [n for n in names if n not in by_name]
        if missing:
            where = f" in namespace {namespace}" if ns else ""
            raise UsageError(f'{resource_name(kind, store).split(".")[0]} "{missing[0]}" not found{where}')
        objs = [by_name[n] for n in names]
    else:
        objs.sort(key=lambda x: (x["metadata"].get("namespace", ""), x["metadata"]["name"]))
    if label_sel is not None:
        objs = [o for o in objs if label_sel.matches(o["metadata"].get("labels"))]
    if field_reqs:
        objs = [o for o in objs if field_matches(o, kind, field_reqs)]
    return objs


def _endpoints_by_service(store) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sl in store.list("EndpointSlice"):
        svc = (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        key = f"{sl['metadata'].get('namespace', 'default')}/{svc}"
        ports = [p.get("port") for p in sl.get("ports") or []]
        for e in sl.get("endpoints") or []:
            if (e.get("conditions") or {}).get("ready") is False:
                continue
            for p in ports[:1] or [None]:
                out.setdefault(key, []).extend(f"{a}:{p}" if p else a for a in e.get("addresses", [])[:1])
    return out


def _labels_text(o: Mapping[str, Any]) -> str:
    labels = o["metadata"].get("labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def render(store, kind: str, objs: list[dict[str, Any]], fmt: str, arg: str | None, *, all_namespaces: bool,
           show_labels: bool, prefix_kind: bool, header: bool = True) -> str:
    """The text `get` prints for one kind's objects (not for json/yaml, which print the whole List)."""
    namespaced = is_namespaced(kind, store)
    if fmt == "name":
        rn = resource_name(kind, store)
        return "\n".join(f"{rn}/{o['metadata']['name']}" for o in objs)
    if fmt == "jsonpath":
        data = objs[0] if len(objs) == 1 and not prefix_kind else {"apiVersion": "v1", "kind": "List",
                                                                   "items": objs}
        return jsonpath.render(arg or "", data)
    if fmt == "custom-columns":
        cols = parse_custom_columns(arg or "")
        rows = [[" ".join(jsonpath._format(v) for v in jsonpath.values(expr, o)) or "<none>" for _, expr in cols]
                for o in objs]
        return render_table([h for h, _ in cols] if header else [], rows) if header else \
            "\n".join("   ".join(r) for r in rows)
    head, rows = table(kind, objs, wide=fmt == "wide", all_namespaces=all_namespaces and namespaced,
                       endpoints=_endpoints_by_service(store) if kind == "Service" else None)
    if prefix_kind:
        col = head.index("NAME")
        rn = resource_name(kind, store)
        for r in rows:
            r[col] = f"{rn}/{r[col]}"
    if show_labels:
        head = head + ["LABELS"]
        rows = [r + [_labels_text(o)] for r, o in zip(rows, objs)]
    return render_table(head, rows) if header else "\n".join(render_table(head, rows).split("\n")[1:])


@click.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default=None, help="Label selector (a=b, a!=b, a in (x,y), a, !a).")
@click.option("--field-selector", default=None, help="Field selector (metadata.name=x, spec.nodeName=node-1...).")
@click.option("-o", "--output", default="text",
              help="text|wide|json|yaml|name|jsonpath=TEMPLATE|custom-columns=HEADER:PATH,...")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@click.option("-w", "--watch", is_flag=True, help="After the list, print objects again as they change.")
@click.option("--watch-seconds", type=click.FloatRange(min=0), default=None,
              help="With --watch: stop after this many seconds (default: until interrupted).")
@cluster_option
@handle_errors
def get(args: tuple[str, ...], namespace: str, all_namespaces: bool, selector: str | None,
        field_selector: str | None, output: str, show_labels: bool, watch: bool, watch_seconds: float | None,
        cluster: str | None) -> None:
    """Objects with their live state, in kubectl's shapes."""
    fmt, arg = parse_output(output)
    with open_cluster(cluster) as c:
        _get(c.store, args, namespace, all_namespaces, selector, field_selector, fmt, arg, show_labels, watch,
             watch_seconds)


def _get(store, args: tuple[str, ...], namespace: str, all_namespaces: bool, selector: str | None,
         field_selector: str | None, fmt: str, arg: str | None, show_labels: bool, watch: bool,
         watch_seconds: float | None) -> None:
    """`get` on the cluster's store (read only)."""
    requests = _requests(args, store)
    several = len(requests) > 1
    named = any(names for _, names in requests)
    results = [(k, select(store, k, names, namespace, all_namespaces, selector, field_selector))
               for k, names in requests]
    if fmt in ("json", "yaml"):
        items = [o for _, objs in results for o in objs]
        single = len(items) == 1 and named and not several and len(requests[0][1]) == 1
        emit(items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}},
             fmt)
    else:
        blocks = [render(store, k, objs, fmt, arg, all_namespaces=all_namespaces, show_labels=show_labels,
                         prefix_kind=several and fmt in ("text", "wide"))
                  for k, objs in results if objs]
        if fmt == "jsonpath":
            click.echo("".join(blocks), nl=False)  # kubectl adds no newline to a template's output
        elif blocks:
            click.echo(("\n" if fmt == "name" else "\n\n").join(blocks))
        elif not watch:
            scope = "" if all_namespaces else f" in {namespace} namespace"
            click.echo(f"No resources found{scope}.", err=True)
    if watch:
        _watch(store, requests, namespace, all_namespaces, selector, field_selector, fmt, arg, show_labels,
               watch_seconds)


def _watch(store, requests, namespace, all_namespaces, selector, field_selector, fmt, arg, show_labels,
           seconds: float | None) -> None:
    """Print each object of the requested kinds again when it changes (kubectl get -w), as one more row."""
    kinds = {k: names for k, names in requests}
    rv = store.current_rv()
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        store.wait_for_change(rv, wait)
        changes = store.changes_since(rv)
        seen: set[tuple[str, str | None, str]] = set()
        for ch in changes:
            rv = max(rv, int(ch.rv))
            key = (ch.kind, ch.namespace, ch.name)
            if ch.kind not in kinds or key in seen or ch.type == "DELETED":
                continue
            seen.add(key)  # the log keeps no bodies: print each changed object once, as it is now
            names = kinds[ch.kind]
            if names and ch.name not in names:
                continue
            if is_namespaced(ch.kind, store) and not all_namespaces and ch.namespace != namespace:
                continue
            obj = store.get(ch.kind, ch.namespace, ch.name)
            if obj is None:
                continue
            kept = select_one(obj, ch.kind, selector, field_selector)
            if not kept:
                continue
            text = render(store, ch.kind, [obj], fmt, arg, all_namespaces=all_namespaces,
                          show_labels=show_labels, prefix_kind=len(kinds) > 1 and fmt in ("text", "wide"),
                          header=False)
            click.echo(text, nl=not text.endswith("\n"))


def select_one(obj: dict[str, Any], kind: str, selector: str | None, field_selector: str | None) -> bool:
    try:
        if selector and not parse_selector_string(selector).matches(obj["metadata"].get("labels")):
            return False
        if field_selector and not field_matches(obj, kind, parse_field_selector(field_selector, kind)):
            return False
    except ValueError as e:
        raise UsageError(str(e)) from None
    return True


COMMANDS = [get]
