"""`netsim wait`, as `kubectl wait`: until objects meet a condition, are deleted, or a JSONPath has a value.

Forms (kubectl's): `--for=condition=Ready`, `--for=condition=Available=false`, `--for=delete`,
`--for=create`, `--for=jsonpath='{.status.phase}'=Running` (or a bare path: it must exist). Condition types
match case-insensitively, as kubectl's ConditionalWait compares them. Prints `KIND/NAME condition met` per
object; a timeout is `timed out waiting for the condition on KINDS/NAME` and exit 1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from netsim.cli import jsonpath
from netsim.cli.common import cluster_option, handle_errors
from netsim.cli.front import cluster as open_cluster
from netsim.cli.get import select
from netsim.cli.kinds import is_namespaced, resolve_kind, resource_name
from netsim.model.errors import NetsimError, UsageError
from netsim.model.registry import kind_info


class WaitTimeout(NetsimError):
    exit_code = 1


@dataclass(frozen=True)
class Condition:
    mode: str  # condition | delete | create | jsonpath
    name: str = ""
    value: str | None = None


def parse_for(text: str) -> Condition:
    if text == "delete":
        return Condition("delete")
    if text == "create":
        return Condition("create")
    if text.startswith("condition="):
        rest = text[len("condition="):]
        name, sep, value = rest.partition("=")
        if not name:
            raise UsageError("--for=condition=NAME[=VALUE] needs a condition name")
        return Condition("condition", name, value if sep else "True")
    if text.startswith("jsonpath="):
        rest = text[len("jsonpath="):]
        m = re.match(r"^(\{.*\}|[^=]+)(?:=(.*))?$", rest, re.S)
        if not m:
            raise UsageError(f"--for={text!r}: expected jsonpath='{{.path}}'=VALUE")
        jsonpath._parse_template(jsonpath.relaxed(m.group(1)))  # malformed paths are usage errors now
        return Condition("jsonpath", m.group(1), m.group(2))
    raise UsageError(f"unrecognized condition: {text!r} (use condition=NAME[=VALUE], delete, create or "
                     "jsonpath='{.path}'=VALUE)")


def parse_duration(text: str) -> float:
    """kubectl's --timeout: Go durations (30s, 1m30s, 500ms) or a plain number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"invalid --timeout {text!r}: use a duration such as 30s, 2m or 1m30s")
    return sum(float(n) * units[u] for n, u in parts)


def met(obj: Mapping[str, Any] | None, cond: Condition) -> bool:
    if cond.mode == "delete":
        return obj is None
    if obj is None:
        return False
    if cond.mode == "create":
        return True
    if cond.mode == "condition":
        for c in (obj.get("status") or {}).get("conditions") or []:
            if str(c.get("type", "")).lower() == cond.name.lower():
                return str(c.get("status", "")).lower() == str(cond.value).lower()
        return False
    found = jsonpath.values(cond.name, obj)
    if cond.value is None:
        return bool(found)
    return any(jsonpath._format(v) == cond.value for v in found)


@click.command()
@click.argument("args", nargs=-1, required=True)
@click.option("--for", "for_", required=True, help="condition=NAME[=VALUE] | delete | create | jsonpath='{..}'=V")
@click.option("-n", "--namespace", default="default")
@click.option("-l", "--selector", default=None)
@click.option("--all", "all_", is_flag=True, help="Every object of TYPE in the namespace.")
@click.option("--timeout", "timeout_text", default="30s", show_default=True)
@cluster_option
@handle_errors
def wait(args: tuple[str, ...], for_: str, namespace: str, selector: str | None, all_: bool, timeout_text: str,
         cluster: str | None) -> None:
    """Wait until objects meet a condition (as kubectl wait)."""
    cond = parse_for(for_)
    timeout = parse_duration(timeout_text)
    with open_cluster(cluster) as c:
        _wait(c, args, cond, namespace, selector, all_, timeout)


def _wait(c, args: tuple[str, ...], cond, namespace: str, selector: str | None, all_: bool, timeout: float) -> None:
    store = c.store  # read; the daemon (c.require_daemon) is what would change it
    if "/" in args[0]:
        targets = [(resolve_kind(a.partition("/")[0], store), a.partition("/")[2]) for a in args]
    else:
        kind = resolve_kind(args[0], store)
        names = list(args[1:])
        if not names and not (selector or all_):
            raise UsageError("resource(s) were provided, but no name was specified (use NAME, -l or --all)")
        if names:
            targets = [(kind, n) for n in names]
        else:
            targets = [(kind, o["metadata"]["name"])
                       for o in select(store, kind, [], namespace, False, selector, None)]
            if not targets:
                raise UsageError("no matching resources found")
    deadline = time.monotonic() + timeout
    for kind, name in targets:
        ns = namespace if is_namespaced(kind, store) else None
        if cond.mode not in ("delete", "create") and store.get(kind, ns, name) is None:
            raise UsageError(f'{resource_name(kind, store).split(".")[0]} "{name}" not found')
        while True:
            rv = store.current_rv()
            if met(store.get(kind, ns, name), cond):
                click.echo(f"{resource_name(kind, store)}/{name} condition met")
                break
            c.require_daemon()  # nothing would change while the daemon is down
            left = deadline - time.monotonic()
            if left <= 0:
                info = kind_info(kind)
                plural = info.plural if info else kind.lower() + "s"
                raise WaitTimeout(f"timed out waiting for the condition on {plural}/{name}")
            store.wait_for_change(rv, min(left, 1.0))


COMMANDS = [wait]
