"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

Strategic merge patch follows k8s.io/apimachinery pkg/util/strategicpatch/patch.go (mergeMap, mergeSlice):
lists with a patch merge key are merged element by element on that key, `$patch: delete|replace|merge`,
`$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` directives are honoured, a
null deletes a field, every other list is replaced. The merge keys are the `patchMergeKey` tags of the
built-in types kubectl needs (k8s.io/api core/v1 types.go: PodSpec.containers/initContainers/
ephemeralContainers/volumes/imagePullSecrets by name, Container.ports by containerPort, env by name,
volumeMounts by mountPath, ServiceSpec.ports by port, conditions by type, ObjectMeta.ownerReferences by uid,
finalizers merged as a set). Custom resources take no strategic merge patch (the API server answers 415).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from netsim.apiserver import errors


class PatchError(ValueError):
    """A patch that cannot be applied: the API server's 422 (json-patch test failed, bad path) or 400."""


# -- JSON patch -----------------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return cur, parts[-1]


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"doc is missing path: {path}")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"unable to add: index out of range: {path}")
    else:
        raise PatchError(f"doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902, as evanphx/json-patch applies it for the API server."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            parts = _pointer(path)
            if not parts:
                doc = copy.deepcopy(op.get("value"))
            else:
                parent, last = _parent(doc, parts, path)
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op.get("value"))
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


# -- merge patch ----------------------------------------------------------------------------------------
def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -- strategic merge patch ------------------------------------------------------------------------------
POD_SPEC_LISTS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
                  "volumes": "name", "imagePullSecrets": "name", "hostAliases": "ip",
                  "topologySpreadConstraints": "topologyKey", "resourceClaims": "name", "schedulingGates": "name"}
CONTAINER_LISTS = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath",
                   "volumeDevices": "devicePath"}
ANYWHERE = {"conditions": "type", "ownerReferences": "uid", "podIPs": "ip", "hostIPs": "ip"}
SET_LISTS = frozenset({"finalizers"})  # patchStrategy=merge lists of strings
CONTAINER_FIELDS = frozenset({"containers", "initContainers", "ephemeralContainers"})


def merge_key(kind: str, path: Sequence[str], field: str) -> str | None:
    """The patch merge key of list `field` found at `path` (field names from the object root, list
    indexes left out) in an object of `kind`; None: the list is replaced as a whole."""
    parent = path[-1] if path else ""
    if parent in CONTAINER_FIELDS and field in CONTAINER_LISTS:
        return CONTAINER_LISTS[field]
    if field in POD_SPEC_LISTS and parent == "spec" and (kind == "Pod" or "template" in path):
        return POD_SPEC_LISTS[field]
    if kind == "Service" and field == "ports" and tuple(path) == ("spec",):
        return "port"
    if kind == "Node" and field == "addresses" and tuple(path) == ("status",):
        return "type"
    if kind == "Node" and field == "taints" and tuple(path) == ("spec",):
        return None
    if field in ANYWHERE:
        return ANYWHERE[field]
    return None


def _strategic(kind: str, path: list[str], doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(doc, dict):
        doc = {}
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(doc)
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [x for x in out[name] if x not in (v or [])]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            out[k] = _merge_list(kind, path, k, out.get(k), v)
        else:
            merged = _strategic(kind, [*path, k], out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
    for name, order in orders.items():
        key = merge_key(kind, path, name)
        if isinstance(out.get(name), list) and isinstance(order, list):
            out[name] = _reorder(out[name], order, key)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(x: Any) -> Any:
        return x.get(key) if key and isinstance(x, dict) else x
    wanted = [ident(o) for o in order]
    first = [x for w in wanted for x in items if ident(x) == w]
    return first + [x for x in items if ident(x) not in wanted]


def _merge_list(kind: str, path: list[str], field: str, current: Any, patch: list[Any]) -> list[Any]:
    current = current if isinstance(current, list) else []
    if field in SET_LISTS:
        return list(dict.fromkeys([*current, *patch]))
    key = merge_key(kind, path, field)
    if key is None:
        return [x for x in copy.deepcopy(patch) if not (isinstance(x, dict) and "$patch" in x)]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{'.'.join([*path, field])}: elements must be objects with a {key!r} field")
        ident = item.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == ident), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append({k: v for k, v in _strategic(kind, [*path, field], {}, item).items()})
        else:
            out[idx] = _strategic(kind, [*path, field], out[idx], item)
    return out


def strategic_merge(doc: dict[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _strategic(kind, [], doc, patch)


def apply_patch(doc: dict[str, Any], body: Any, content_type: str, kind: str, custom: bool) -> dict[str, Any]:
    """The patched object for a PATCH of `content_type`; raises ApiError for an unknown type."""
    if content_type == "application/json-patch+json":
        return json_patch(doc, body)
    if content_type == "application/merge-patch+json":
        return merge_patch(doc, body)
    if content_type == "application/strategic-merge-patch+json":
        if custom:
            raise errors.ApiError(415, "UnsupportedMediaType", "strategic merge patch format is not supported")
        return strategic_merge(doc, body, kind)
    raise errors.unsupported_media_type(content_type)
