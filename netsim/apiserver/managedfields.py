"""Field ownership for server-side apply: `metadata.managedFields` in the FieldsV1 format, and conflicts.

As k8s.io/apiserver pkg/endpoints/handlers/fieldmanager (structured-merge-diff underneath): every write
records which fields its manager set. An apply (`application/apply-patch+yaml`, `fieldManager` required)
owns exactly the fields of its configuration, as an `Apply` entry; a create, update or patch owns the
fields it changed, as an `Update` entry, and takes them from every other manager. An apply that would
change a field another manager owns is refused, 409 Conflict with one cause `FieldManagerConflict` per
field ("conflict with \"kubectl\": .spec.replicas"), unless `force=true`, which takes the fields over.
Fields an applier owned and no longer applies are removed from the object when nobody else owns them.

A field path is a tuple of steps: `f:<name>` for a map key, `k:<json of the merge key>` for an element of a
list merged by key (patch.merge_key), `v:<json>` for an element of a set-like list (finalizers); other
lists are atomic (owned as one field). netsim derives the paths from the objects themselves, not from
schemas, so a map field is owned leaf by leaf (upstream treats a few maps, such as `selector`, atomically).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from netsim.apiserver import errors, patch

Path = tuple[str, ...]
SKIP_METADATA = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                           "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"})
SKIP_TOP = frozenset({"apiVersion", "kind", "status"})


def leaves(obj: Any, kind: str, *, names: tuple[str, ...] = (), path: Path = ()) -> dict[Path, Any]:
    """Every owned field of `obj` and its value."""
    out: dict[Path, Any] = {}
    if not isinstance(obj, Mapping):
        return out
    for k, v in obj.items():
        if not path and k in SKIP_TOP:
            continue
        if path == ("f:metadata",) and k in SKIP_METADATA:
            continue
        step = (*path, f"f:{k}")
        if isinstance(v, Mapping) and v:
            out.update(leaves(v, kind, names=(*names, k), path=step))
        elif isinstance(v, list) and v:
            key = patch.merge_key(kind, list(names), k)
            if key and all(isinstance(x, Mapping) and key in x for x in v):
                for x in v:
                    elem = (*step, "k:" + json.dumps({key: x[key]}, sort_keys=True, separators=(",", ":")))
                    out[(*elem, ".")] = x[key]
                    out.update(leaves(x, kind, names=(*names, k), path=elem))
            elif k in patch.SET_LISTS:
                for x in v:
                    out[(*step, "v:" + json.dumps(x, sort_keys=True, separators=(",", ":")))] = x
            else:
                out[step] = v
        else:
            out[step] = v
    return out


def to_fields(paths: set[Path] | dict[Path, Any]) -> dict[str, Any]:
    """A FieldsV1 tree: `{"f:spec": {"f:replicas": {}}}`; an element of a keyed list also has `"."`."""
    tree: dict[str, Any] = {}
    for p in paths:
        node = tree
        for step in p:
            node = node.setdefault(step, {})
    return tree


def from_fields(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for step, sub in tree.items():
        p = (*prefix, step)
        if isinstance(sub, Mapping) and sub:
            out |= from_fields(sub, p)
        else:
            out.add(p)
    return out


def _entries(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(e) for e in (obj.get("metadata") or {}).get("managedFields") or [] if isinstance(e, Mapping)]


def _entry(manager: str, operation: str, api_version: str, when: str, paths: set[Path],
           subresource: str = "") -> dict[str, Any]:
    out = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": when,
           "fieldsType": "FieldsV1", "fieldsV1": to_fields(paths)}
    if subresource:
        out["subresource"] = subresource
    return out


def _ident(e: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """A manager is its name, operation and subresource together (structured-merge-diff's manager key)."""
    return e.get("manager"), e.get("operation"), e.get("subresource") or ""


def _set(entries: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    same = [e for e in entries if _ident(e) == _ident(entry)]
    rest = [e for e in entries if e not in same]
    return [*rest, entry] if entry["fieldsV1"] else rest


def record_update(old: Mapping[str, Any] | None, new: dict[str, Any], kind: str, manager: str, api_version: str,
                  when: str, subresource: str = "") -> None:
    """A non-apply write: `manager` owns the fields it changed (added to its Update entry), which no other
    manager owns any more. Writes `new.metadata.managedFields`."""
    before = leaves(old or {}, kind)
    after = leaves(new, kind)
    changed = {p for p, v in after.items() if before.get(p, object()) != v}
    entries = _entries(old or {})
    if not changed:
        new["metadata"]["managedFields"] = entries
        if not entries:
            new["metadata"].pop("managedFields", None)
        return
    kept = []
    mine: set[Path] = set()
    for e in entries:
        owned = from_fields(e.get("fieldsV1") or {})
        if _ident(e) == (manager, "Update", subresource):
            mine = owned
            continue
        rest = owned - changed
        if rest:
            kept.append({**e, "fieldsV1": to_fields(rest)})
    mine = {p for p in (mine | changed) if p in after}
    entries = _set(kept, _entry(manager, "Update", api_version, when, mine, subresource))
    if entries:
        new["metadata"]["managedFields"] = entries
    else:
        new["metadata"].pop("managedFields", None)


def conflicts(current: Mapping[str, Any], config: Mapping[str, Any], kind: str, manager: str) -> list[tuple[str, Path]]:
    """(other manager, path) for each field of `config` another manager owns with a different value."""
    have = leaves(current, kind)
    want = leaves(config, kind)
    out = []
    for e in _entries(current):
        if _ident(e) == (manager, "Apply", ""):
            continue
        for p in sorted(from_fields(e.get("fieldsV1") or {}) & set(want)):
            if have.get(p, object()) != want[p]:
                out.append((manager_text(e), p))
    return out


def manager_text(e: Mapping[str, Any]) -> str:
    """How a conflict names the other manager (fieldmanager/internal/conflict.go printManager)."""
    out = json.dumps(str(e.get("manager")))
    if e.get("subresource"):
        out += f' with subresource "{e["subresource"]}"'
    if e.get("operation") == "Update":
        out += f" using {e.get('apiVersion')}" + (f" at {e['time']}" if e.get("time") else "")
    return out


def path_text(p: Path) -> str:
    """`.spec.template.spec.containers[name="web"].image`, as the API server's conflict causes show it."""
    out = ""
    for step in p:
        if step.startswith("f:"):
            out += "." + step[2:]
        elif step.startswith("k:"):
            kv = json.loads(step[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in kv.items()) + "]"
        elif step.startswith("v:"):
            out += f"[={step[2:]}]"
    return out


def conflict_error(resource: str, group: str, name: str, found: list[tuple[str, Path]]) -> errors.ApiError:
    n = len(found)
    lines = [f"conflict with {m}: {path_text(p)}" for m, p in found]
    msg = f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "; ".join(lines)
    details: dict[str, Any] = {"kind": resource, "name": name,
                               "causes": [{"reason": "FieldManagerConflict", "message": f"conflict with {m}",
                                           "field": path_text(p)} for m, p in found]}
    if group:
        details["group"] = group
    return errors.ApiError(409, "Conflict", msg, details)


def apply(current: Mapping[str, Any] | None, config: Mapping[str, Any], merged: dict[str, Any], kind: str,
          manager: str, api_version: str, when: str, *, force: bool) -> dict[str, Any]:
    """Ownership after an apply of `config` by `manager` (conflicts were checked by the caller): the
    applier owns exactly its configuration's fields, forced fields leave their old owners, and fields it
    gave up are removed from `merged` when nobody else owns them. Returns `merged`, its managedFields set."""
    want = set(leaves(config, kind))
    entries = _entries(current or {})
    before = set()
    kept = []
    for e in entries:
        owned = from_fields(e.get("fieldsV1") or {})
        if _ident(e) == (manager, "Apply", ""):
            before = owned
            continue
        if force:
            owned -= want
        if owned:
            kept.append({**e, "fieldsV1": to_fields(owned)})
    others = set().union(*(from_fields(e.get("fieldsV1") or {}) for e in kept)) if kept else set()
    for p in sorted(before - want - others, key=len, reverse=True):
        _remove(merged, p)
    merged.setdefault("metadata", {})["managedFields"] = _set(kept, _entry(manager, "Apply", api_version, when,
                                                                             want))
    return merged


def _remove(obj: dict[str, Any], p: Path) -> None:
    """Take the field at `p` out of `obj` (map keys only; keyed list elements go when their `.` goes)."""
    node: Any = obj
    for i, step in enumerate(p):
        last = i == len(p) - 1
        if step == ".":
            return
        if step.startswith("f:") and isinstance(node, dict):
            if last:
                node.pop(step[2:], None)
                return
            node = node.get(step[2:])
        elif step.startswith("k:") and isinstance(node, list):
            kv = json.loads(step[2:])
            match = [x for x in node if isinstance(x, dict) and all(x.get(k) == v for k, v in kv.items())]
            if not match:
                return
            if i + 1 < len(p) and p[i + 1] == ".":
                node.remove(match[0])
                return
            node = match[0]
        elif step.startswith("v:") and isinstance(node, list):
            value = json.loads(step[2:])
            if value in node:
                node.remove(value)
            return
        else:
            return
        if node is None:
            return


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    (out.get("metadata") or {}).pop("managedFields", None)
    return out
