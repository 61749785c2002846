"""Verbs that change objects in place, as kubectl's: label, annotate, set image, edit.

Each reads the object, changes it, and writes it back through `Cluster.update`: validated and admitted as
`apply` is, with the read resourceVersion as a precondition, so a concurrent writer makes the verb fail with
the API server's conflict message instead of being overwritten.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import click
import yaml

from netsim.api import Cluster, Conflict
from netsim.cli.common import cluster_option, handle_errors
from netsim.cli.front import front
from netsim.cli.get import select
from netsim.cli.kinds import is_namespaced, resolve_kind, resource_name
from netsim.model.errors import NetsimError, UsageError
from netsim.model.selectors import label_key_problem, label_value_problem

# Where each kind keeps its containers (kubectl set image's polymorphic pod spec lookup).
POD_SPEC_PATH = {"Pod": ("spec",), "ReplicationController": ("spec", "template", "spec"),
                 "Deployment": ("spec", "template", "spec"), "DaemonSet": ("spec", "template", "spec"),
                 "ReplicaSet": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
                 "Job": ("spec", "template", "spec"),
                 "CronJob": ("spec", "jobTemplate", "spec", "template", "spec")}


class ConflictError(NetsimError):
    exit_code = 1


def split_targets(args: Sequence[str], store, *, is_change) -> tuple[list[tuple[str, str]], list[str]]:
    """kubectl's argument forms: `TYPE NAME... CHANGES` or `TYPE/NAME... CHANGES` -> [(kind, name)], changes."""
    changes = [a for a in args if is_change(a)]
    rest = [a for a in args if not is_change(a)]
    if not rest:
        raise UsageError("say which objects: TYPE NAME... or TYPE/NAME...")
    if "/" in rest[0]:
        out = []
        for a in rest:
            kind, sep, name = a.partition("/")
            if not sep or not name:
                raise UsageError(f"{a!r}: use TYPE/NAME for every object, or TYPE NAME...")
            out.append((resolve_kind(kind, store), name))
        return out, changes
    kind = resolve_kind(rest[0], store)
    return [(kind, n) for n in rest[1:]], changes


def _objects(c: Cluster, targets: list[tuple[str, str]], kind_arg: str | None, namespace: str,
             selector: str | None, all_: bool) -> list[tuple[str, dict[str, Any]]]:
    store = c.store
    if (selector or all_) and kind_arg:
        kind = resolve_kind(kind_arg, store)
        return [(kind, o) for o in select(store, kind, [], namespace, False, selector, None)]
    if not targets:
        raise UsageError("one or more resources must be specified as TYPE NAME, TYPE/NAME, or TYPE with -l/--all")
    out = []
    for kind, name in targets:
        (obj,) = select(store, kind, [name], namespace, False, None, None)
        out.append((kind, obj))
    return out


def _write(c: Cluster, kind: str, obj: dict[str, Any], verb: str) -> str:
    try:
        c.update(obj, source=f"{verb} {kind.lower()}/{obj['metadata']['name']}")
    except Conflict as e:
        raise ConflictError(str(e)) from None
    return f"{resource_name(kind, c.store)}/{obj['metadata']['name']} {verb}"


def _key_value_changes(changes: Sequence[str], what: str, check_values: bool) -> tuple[dict[str, str], list[str]]:
    """`k=v` and `k-` arguments -> (to set, to remove), checked as the API server checks keys/values."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for ch in changes:
        if ch.endswith("-") and "=" not in ch:
            removes.append(ch[:-1])
            continue
        key, _, value = ch.partition("=")
        problem = label_key_problem(key) or (label_value_problem(value) if check_values else None)
        if problem:
            raise UsageError(f"invalid {what} spec {ch!r}: {problem}")
        sets[key] = value
    return sets, removes


def _meta_verb(field: str, what: str, verb: str, args: tuple[str, ...], namespace: str, selector: str | None,
               all_: bool, overwrite: bool, cluster: str | None) -> None:
    c = front().open(cluster)
    try:
        targets, changes = split_targets(args, c.store, is_change=lambda a: "=" in a or a.endswith("-"))
        if not changes:
            raise UsageError(f"at least one {what} update is required")
        sets, removes = _key_value_changes(changes, what, check_values=field == "labels")
        kind_arg = args[0] if (selector or all_) else None
        for kind, obj in _objects(c, targets, kind_arg, namespace, selector, all_):
            current = dict(obj["metadata"].get(field) or {})
            for k, v in sets.items():
                if k in current and current[k] != v and not overwrite:
                    raise UsageError(f"'{k}' already has a value ({current[k]}), and --overwrite is false")
            new = {**current, **sets}
            for k in removes:
                new.pop(k, None)
            if new == current:
                click.echo(f"{resource_name(kind, c.store)}/{obj['metadata']['name']} not {verb}")
                continue
            obj["metadata"][field] = new
            click.echo(_write(c, kind, obj, verb))
    finally:
        c.close()


def _meta_command(field: str, what: str, verb: str):
    @click.command(name=what, help=f"Update the {field} of objects: KEY=VALUE sets, KEY- removes (as kubectl).")
    @click.argument("args", nargs=-1, required=True)
    @click.option("-n", "--namespace", default="default")
    @click.option("-l", "--selector", default=None, help="Objects of TYPE whose labels match.")
    @click.option("--all", "all_", is_flag=True, help="Every object of TYPE in the namespace.")
    @click.option("--overwrite", is_flag=True, help="Allow changing a key that already has a value.")
    @cluster_option
    @handle_errors
    def command(args, namespace, selector, all_, overwrite, cluster):
        _meta_verb(field, what, verb, args, namespace, selector, all_, overwrite, cluster)
    return command


label = _meta_command("labels", "label", "labeled")
annotate = _meta_command("annotations", "annotate", "annotated")


@click.group(name="set")
def set_group() -> None:
    """Change a field of objects (as kubectl set)."""


@set_group.command(name="image")
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@cluster_option
@handle_errors
def set_image(args: tuple[str, ...], namespace: str, cluster: str | None) -> None:
    """CONTAINER=IMAGE for objects with a pod template (`*=IMAGE`: every container)."""
    c = front().open(cluster)
    try:
        targets, changes = split_targets(args, c.store, is_change=lambda a: "=" in a)
        if not changes:
            raise UsageError("at least one image update is required (CONTAINER=IMAGE)")
        images = dict(ch.split("=", 1) for ch in changes)
        for kind, obj in _objects(c, targets, None, namespace, None, False):
            path = POD_SPEC_PATH.get(kind)
            if path is None:
                raise UsageError(f"{kind} has no containers to set an image on")
            spec: Any = obj
            for p in path:
                spec = spec.get(p) or {}
            containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
            for name, image in images.items():
                hits = [ct for ct in containers if name in ("*", ct.get("name"))]
                if not hits:
                    raise UsageError(f'unable to find container named "{name}"')
                for ct in hits:
                    ct["image"] = image
            click.echo(_write(c, kind, obj, "image updated"))
    finally:
        c.close()


@click.command()
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default="default")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", help="Format to edit in.")
@cluster_option
@handle_errors
def edit(args: tuple[str, ...], namespace: str, output: str, cluster: str | None) -> None:
    """Edit objects in $KUBE_EDITOR or $EDITOR (default vi) and write them back (as kubectl edit)."""
    import json
    c = front().open(cluster)
    try:
        targets, _ = split_targets(args, c.store, is_change=lambda a: False)
        for kind, obj in _objects(c, targets, None, namespace, None, False):
            text = yaml.safe_dump(obj, sort_keys=False) if output == "yaml" else json.dumps(obj, indent=2)
            editor = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
            with tempfile.NamedTemporaryFile("w", suffix=f".{output}", prefix="netsim-edit-", delete=False) as f:
                f.write(text)
            try:
                proc = subprocess.run([*shlex.split(editor), f.name])
                if proc.returncode != 0:
                    raise UsageError(f"the editor {editor!r} exited {proc.returncode}; nothing was changed")
                with open(f.name) as fh:
                    edited_text = fh.read()
            finally:
                os.unlink(f.name)
            if edited_text == text:
                click.echo("Edit cancelled, no changes made.")
                continue
            try:
                edited = yaml.safe_load(edited_text)
            except yaml.YAMLError as e:
                raise UsageError(f"the edited file is not valid {output}: {e}") from None
            if not isinstance(edited, dict) or edited.get("kind") != kind \
                    or (edited.get("metadata") or {}).get("name") != obj["metadata"]["name"]:
                raise UsageError("the edited object must keep its kind and metadata.name")
            if is_namespaced(kind, c.store):
                edited["metadata"]["namespace"] = obj["metadata"].get("namespace")
            click.echo(_write(c, kind, edited, "edited"))
    finally:
        c.close()


COMMANDS = [label, annotate, set_group, edit]
