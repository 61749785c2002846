"""The REST verbs on stored objects: get, list, create, update, patch, delete, deletecollection, and the
`status` and `scale` subresources, over the cluster's store.

Behaviour follows k8s.io/apiserver pkg/endpoints/handlers (get.go, create.go, update.go, patch.go,
delete.go) and pkg/registry/generic/registry/store.go:
- create: the body's namespace must match the URL's, `generateName` gets 5 random characters, the
  namespace must exist (404 `namespaces "x" not found`), `dryRun=All` validates and answers without
  storing; 201 with the stored object.
- update: a body resourceVersion is a precondition (409 Conflict when stale); none is an unconditional
  update; for kinds with a status subresource the main resource keeps the stored status and /status
  keeps everything but status (the registries' PrepareForUpdate).
- patch: applied to the current object and written with its resourceVersion as a precondition, retried
  on a conflict the patch did not ask for (patch.go's patcher retries), 404 when the object is missing.
- delete: DeleteOptions from the body or the query (`gracePeriodSeconds`, `propagationPolicy`,
  `preconditions`, `dryRun`); pods go through graceful termination (netsim.controlplane.deletion);
  `Orphan` takes the owner reference out of the dependents first (the garbage collector's orphaning).
Every write is validated and admitted by netsim.controlplane.writes.admit_object, the code behind
`netsim apply` and `Cluster.update`: the same input gets the same error either way.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from netsim.apiserver import errors, managedfields, pastlist, patch
from netsim.apiserver.resources import Catalog, Resource
from netsim.controlplane import deletion
from netsim.controlplane.nodewrites import check_node_update
from netsim.controlplane.writes import admit_object
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import SpecError, SpecErrors, UsageError
from netsim.model.fieldselectors import matches as field_matches
from netsim.model.fieldselectors import parse_field_selector
from netsim.model.generic import CustomKind, custom_kinds_from
from netsim.model.limits import MAX_REPLICAS
from netsim.model.selectors import LabelSelector, parse_selector_string
from netsim.store import (
    AlreadyExists,
    Conflict,
    InvalidObject,
    NotFound,
    SQLiteStore,
    Store,
    scoped_namespace,
)

PATCH_RETRIES = 5
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp",
                   "deletionGracePeriodSeconds", "selfLink")


class DryRun(Exception):
    """Raised inside a store transaction to roll back a dry-run write after it was checked."""

    def __init__(self, result: dict[str, Any]):
        super().__init__("dry run")
        self.result = result


@dataclass(frozen=True)
class Target:
    """What a request addresses: a resource, a namespace (None: all / cluster-scoped), a name, a subresource."""

    res: Resource
    namespace: str | None
    name: str | None = None
    subresource: str | None = None

    @property
    def kind(self) -> str:
        return self.res.stored_kind

    @property
    def store_ns(self) -> str | None:
        if not self.res.namespaced:
            return None
        return self.namespace if self.res.custom else scoped_namespace(self.kind, self.namespace) \
            if self.namespace else None


def selectors(query: Mapping[str, str], kind: str) -> tuple[LabelSelector | None, tuple]:
    label = field = None
    try:
        if query.get("labelSelector"):
            label = parse_selector_string(query["labelSelector"])
        if query.get("fieldSelector"):
            field = parse_field_selector(query["fieldSelector"], kind)
    except (ValueError, SpecError) as e:
        raise errors.bad_request(f"unable to parse requirement: {e}") from None
    return label, field or ()


def selected(obj: Mapping[str, Any], kind: str, label: LabelSelector | None, field: tuple) -> bool:
    if label is not None and not label.matches((obj.get("metadata") or {}).get("labels") or {}):
        return False
    return not field or field_matches(obj, kind, field)


def encode_continue(rv: int, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": after}).encode()).decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        d = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(d["rv"]), str(d["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: the continue token is malformed") from None


def _key(obj: Mapping[str, Any]) -> str:
    md = obj.get("metadata") or {}
    return f"{md.get('namespace') or ''}/{md.get('name')}"


def _spec_errors(e: SpecError | SpecErrors) -> list[dict[str, str]]:
    errs = e.errors if isinstance(e, SpecErrors) else [e]
    return [{"reason": "FieldValueInvalid", "message": x.message, "field": x.field or ""} for x in errs]


class Handlers:
    """The verbs over one store. `store` is the server's own connection (not the daemon loop's)."""

    def __init__(self, store: SQLiteStore, spec: ClusterSpec, clock: Callable[[], float] = time.time):
        self.store = store
        self.spec = spec
        self.clock = clock

    # -- the served resources --------------------------------------------------------------------------
    def custom_kinds(self) -> dict[str, CustomKind]:
        return custom_kinds_from(self.store.list("CustomResourceDefinition"))

    def catalog(self) -> Catalog:
        return Catalog(self.custom_kinds())

    def present(self, t: Target, obj: dict[str, Any]) -> dict[str, Any]:
        """An object as the API shows it under the requested group/version."""
        obj["apiVersion"] = t.res.group_version
        obj["kind"] = t.res.kind
        return obj

    def _error(self, t: Target, e: Exception, name: str | None = None) -> errors.ApiError:
        res = t.res
        name = name or t.name or ""
        if isinstance(e, NotFound):
            return errors.not_found(res.plural, res.group, e.name)
        if isinstance(e, AlreadyExists):
            return errors.already_exists(res.plural, res.group, e.name)
        if isinstance(e, Conflict):
            return errors.conflict(res.plural, res.group, e.name, errors.STALE)
        if isinstance(e, (SpecError, SpecErrors)):
            return errors.invalid(res.kind, res.group, name, _spec_errors(e))
        if isinstance(e, InvalidObject):
            return errors.invalid(res.kind, res.group, name, [{"message": str(e), "field": ""}])
        if isinstance(e, UsageError):
            return errors.bad_request(str(e))
        raise e

    # -- reads -----------------------------------------------------------------------------------------
    def get(self, t: Target) -> dict[str, Any]:
        obj = self.store.get(t.kind, t.store_ns, t.name)
        if obj is None:
            raise errors.not_found(t.res.plural, t.res.group, t.name or "")
        return self.present(t, obj)

    def list(self, t: Target, query: Mapping[str, str]) -> tuple[list[dict[str, Any]], int, str | None, int | None]:
        """(items, resourceVersion, continue token, remaining count) for a LIST."""
        label, field = selectors(query, t.kind)
        self._check_rv_match(query)
        limit = int(query["limit"]) if (query.get("limit") or "").isdigit() else 0
        start = ""
        with self.store.snapshot() as snap:
            rv = snap.current_rv()
            at = None  # a past state to read: an Exact one (pastlist.py)
            if query.get("continue"):
                # A continue page is read from the present (rebuilding the first page's version costs a
                # decode of the kind's whole change log: too slow for kubectl's chunked LISTs of pods).
                token_rv, start = decode_continue(query["continue"])
                if token_rv < snap.compacted_rv():
                    raise errors.expired("The provided continue parameter is too old to display a consistent "
                                         "list result. You can start a new list without the continue "
                                         "parameter.")
                rv = token_rv
            elif query.get("resourceVersionMatch") == "Exact":
                at = int(query["resourceVersion"])
            if at is not None and at < rv:
                items, rv = pastlist.list_at(snap, t.kind, t.store_ns, at), at
            else:
                items = snap.list(t.kind, t.store_ns)
        items = [o for o in items if selected(o, t.kind, label, field)]
        if start:
            items = [o for o in items if _key(o) > start]
        cont, remaining = None, None
        if limit and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            cont = encode_continue(rv, _key(items[-1]))
        return [self.present(t, o) for o in items], rv, cont, remaining

    def _check_rv_match(self, query: Mapping[str, str]) -> None:
        """`resourceVersion` / `resourceVersionMatch` of a LIST (k8s.io/apiserver pkg/storage/cacher
        semantics): a version newer than the store's is waited for up to 3 s and is then 504 "Too large
        resource version"; an older `Exact` one is rebuilt from the change log by `list` (pastlist.py)."""
        match = query.get("resourceVersionMatch") or ""
        rv_text = query.get("resourceVersion") or ""
        if match not in ("", "NotOlderThan", "Exact"):
            raise errors.bad_request(f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
                                     '"Exact", "NotOlderThan"')
        if match and not rv_text:
            raise errors.bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if not rv_text.isdigit() or rv_text == "0":
            return
        rv, current = int(rv_text), self.store.current_rv()
        if rv > current and not self.store.wait_for_change(rv - 1, 3.0):
            raise errors.ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {current}",
                                  {"causes": [{"reason": "ResourceVersionTooLarge",
                                               "message": "Too large resource version"}], "retryAfterSeconds": 1})

    # -- writes ----------------------------------------------------------------------------------------
    def _check_body(self, t: Target, body: Any, *, name_required: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON or YAML object")
        body = copy.deepcopy(body)
        body.setdefault("apiVersion", t.res.group_version)
        body.setdefault("kind", t.res.kind)
        if body["kind"] != t.res.kind or body["apiVersion"] != t.res.group_version:
            raise errors.bad_request(f"the API version in the data ({body['apiVersion']}) does not match the "
                                     f"expected API version ({t.res.group_version})" if body["kind"] == t.res.kind
                                     else f"the kind in the data ({body['kind']}) does not match the expected "
                                          f"kind ({t.res.kind})")
        md = body.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if t.res.namespaced:
            ns = md.get("namespace")
            if ns and t.namespace and ns != t.namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            if t.namespace:
                md["namespace"] = t.namespace
        else:
            md.pop("namespace", None)
        if name_required and t.name is not None:
            if md.get("name") and md["name"] != t.name:
                raise errors.bad_request("the name of the object "
                                         f"({md['name']}) does not match the name on the URL ({t.name})")
            md["name"] = t.name
        return body

    def _require_namespace(self, tx: Store, t: Target) -> None:
        if t.res.namespaced and t.kind != "Namespace":
            ns = t.namespace or "default"
            if tx.get("Namespace", None, ns) is None:
                raise errors.not_found("namespaces", "", ns)

    def now_text(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))

    @staticmethod
    def manager(query: Mapping[str, str]) -> str:
        """The field manager of a write: `fieldManager`, else the client's User-Agent prefix (the server
        puts it in `__manager`), as the API server's fieldmanager defaults it."""
        return query.get("fieldManager") or query.get("__manager") or "unknown"

    def create(self, t: Target, body: Any, query: Mapping[str, str], *, track: bool = True) -> dict[str, Any]:
        body = self._check_body(t, body, name_required=False)
        md = body["metadata"]
        for k in SERVER_METADATA:
            md.pop(k, None)
        if not md.get("name") and md.get("generateName"):
            # names.SimpleNameGenerator: the prefix and 5 random [bcdfghjklmnpqrstvwxz2456789] characters
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            md["name"] = md["generateName"] + "".join(secrets.choice(alphabet) for _ in range(5))
        if not md.get("name"):
            raise errors.invalid(t.res.kind, t.res.group, "", [{"reason": "FieldValueRequired",
                                                                 "message": "Required value: name or generateName "
                                                                            "is required",
                                                                 "field": "metadata.name"}])
        name = md["name"]
        custom = self.custom_kinds()
        dry = query.get("dryRun") == "All"
        try:
            with self.store.transaction() as tx:
                self._require_namespace(tx, t)
                obj = admit_object(tx, self.spec, body, custom, source="<api>")
                if track:
                    managedfields.record_update(None, obj, t.res.kind, self.manager(query), t.res.group_version,
                                                self.now_text())
                stored = tx.create(obj)
                if dry:
                    raise DryRun(stored)
        except DryRun as d:
            # Nothing was stored: no resourceVersion (etcd never assigned one), as a dry-run create answers.
            d.result["metadata"].pop("resourceVersion", None)
            return self.present(t, d.result)
        except errors.ApiError:
            raise
        except Exception as e:
            raise self._error(t, e, name) from None
        return self.present(t, stored)

    def _write(self, t: Target, current: dict[str, Any], new: dict[str, Any], *, expected: str | None,
               dry: bool, manager: str | None = None) -> dict[str, Any]:
        """Store `new` in place of `current` (validated, admitted), compare-and-swap on `expected`."""
        custom = self.custom_kinds()
        sub = t.subresource
        if sub == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status", {})
            new = merged
        elif "status" in t.res.subresources:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        md, cur_md = new.setdefault("metadata", {}), current["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in cur_md:
                md[k] = cur_md[k]
        try:
            with self.store.transaction() as tx:
                if sub == "status":
                    stored = tx.update_status(t.kind, t.store_ns, t.name, new.get("status") or {},
                                              expected_rv=expected)
                else:
                    if t.kind == "Node":  # made from the Cluster spec: only what kubectl's node verbs change
                        check_node_update(current, new)
                        obj = new
                    else:
                        obj = admit_object(tx, self.spec, new, custom, source="<api>")
                    if manager:
                        managedfields.record_update(current, obj, t.res.kind, manager, t.res.group_version,
                                                    self.now_text(), subresource=sub or "")
                    stored = tx.update(obj, expected_rv=expected)
                if dry:
                    raise DryRun(stored)
        except DryRun as d:
            d.result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]  # not stored
            return d.result
        except errors.ApiError:
            raise
        except Exception as e:
            raise self._error(t, e) from None
        return stored

    def update(self, t: Target, body: Any, query: Mapping[str, str]) -> dict[str, Any]:
        body = self._check_body(t, body, name_required=True)
        current = self.store.get(t.kind, t.store_ns, t.name)
        if current is None:
            raise errors.not_found(t.res.plural, t.res.group, t.name or "")
        if t.subresource == "scale":
            return self._scale_write(t, current, body, query)
        expected = body["metadata"].get("resourceVersion") or None
        stored = self._write(t, current, body, expected=expected, dry=query.get("dryRun") == "All",
                             manager=self.manager(query))
        return self.present(t, stored)

    def patch(self, t: Target, body: Any, content_type: str, query: Mapping[str, str]) -> dict[str, Any]:
        if content_type == "application/apply-patch+yaml":
            return self.apply(t, body, query)
        asked_rv = None
        if isinstance(body, dict):
            asked_rv = ((body.get("metadata") or {}).get("resourceVersion")) if isinstance(body.get("metadata"),
                                                                                          dict) else None
        for attempt in range(PATCH_RETRIES):
            current = self.store.get(t.kind, t.store_ns, t.name)
            if current is None:
                raise errors.not_found(t.res.plural, t.res.group, t.name or "")
            doc = self.scale_of(t, current) if t.subresource == "scale" else self.present(t, copy.deepcopy(current))
            try:
                patched = patch.apply_patch(doc, body, content_type, t.res.kind, t.res.custom)
            except patch.PatchError as e:
                raise errors.ApiError(422, "Invalid", str(e)) from None
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not give an object")
            if t.subresource == "scale":
                return self._scale_write(t, current, patched, query)
            md = patched.setdefault("metadata", {})
            if md.get("name") != t.name or (t.res.namespaced and md.get("namespace") != t.store_ns):
                raise errors.bad_request("the name or namespace of the object may not be changed by a patch")
            expected = asked_rv or current["metadata"]["resourceVersion"]
            md["resourceVersion"] = expected
            try:
                stored = self._write(t, current, patched, expected=expected, dry=query.get("dryRun") == "All",
                                     manager=self.manager(query))
            except errors.ApiError as e:
                if e.reason == "Conflict" and not asked_rv and attempt < PATCH_RETRIES - 1:
                    continue
                raise
            return self.present(t, stored)
        raise errors.internal("patch retries exhausted")

    def apply(self, t: Target, body: Any, query: Mapping[str, str]) -> dict[str, Any]:
        """Server-side apply (managedfields.py): the configuration is merged into the live object
        (strategic merge for built-in kinds, merge patch for custom resources) or created; its manager owns
        exactly its fields; a field another manager owns with another value is a 409 conflict unless
        `force=true`."""
        manager = query.get("fieldManager")
        if not manager:
            raise errors.bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                     "is required for apply patch")
        body = self._check_body(t, body, name_required=True)
        config = copy.deepcopy(body)
        force = query.get("force") in ("true", "1")
        for attempt in range(PATCH_RETRIES):
            current = self.store.get(t.kind, t.store_ns, t.name)
            if current is None:
                new = managedfields.apply(None, config, copy.deepcopy(body), t.res.kind, manager,
                                          t.res.group_version, self.now_text(), force=force)
                try:
                    return self.create(t, new, query, track=False)
                except errors.ApiError as e:
                    if e.reason == "AlreadyExists" and attempt < PATCH_RETRIES - 1:
                        continue
                    raise
            found = [] if force else managedfields.conflicts(current, config, t.res.kind, manager)
            if found:
                raise managedfields.conflict_error(t.res.plural, t.res.group, t.name or "", found)
            doc = self.present(t, copy.deepcopy(current))
            merged = patch.merge_patch(doc, body) if t.res.custom else patch.strategic_merge(doc, body, t.res.kind)
            merged = managedfields.apply(current, config, merged, t.res.kind, manager, t.res.group_version,
                                         self.now_text(), force=force)
            try:
                stored = self._write(t, current, merged, expected=current["metadata"]["resourceVersion"],
                                     dry=query.get("dryRun") == "All")
            except errors.ApiError as e:
                if e.reason == "Conflict" and attempt < PATCH_RETRIES - 1:
                    continue
                raise
            return self.present(t, stored)
        raise errors.internal("apply retries exhausted")

    # -- scale -----------------------------------------------------------------------------------------
    def scale_of(self, t: Target, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The autoscaling/v1 Scale of a Deployment/ReplicaSet/StatefulSet (registry ScaleREST.Get)."""
        md = obj["metadata"]
        sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in md},
                "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1))},
                "status": {"replicas": int((obj.get("status") or {}).get("replicas", 0)),
                           "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

    def _scale_write(self, t: Target, current: dict[str, Any], scale: Mapping[str, Any],
                     query: Mapping[str, str]) -> dict[str, Any]:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", t.name or "", [
                {"message": f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                 "field": "spec.replicas"}])
        if replicas > MAX_REPLICAS:
            raise errors.invalid("Scale", "autoscaling", t.name or "", [
                {"message": f"Invalid value: {replicas}: must be at most {MAX_REPLICAS} (netsim's bound: every "
                            "replica is a network namespace on this host)", "field": "spec.replicas"}])
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        expected = (scale.get("metadata") or {}).get("resourceVersion") or current["metadata"]["resourceVersion"]
        stored = self._write(Target(t.res, t.namespace, t.name, "scale"), current, new, expected=expected,
                             dry=query.get("dryRun") == "All", manager=self.manager(query))
        return self.scale_of(t, stored)

    # -- delete ----------------------------------------------------------------------------------------
    @staticmethod
    def delete_options(body: Any, query: Mapping[str, str]) -> dict[str, Any]:
        opts = dict(body) if isinstance(body, dict) else {}
        if "gracePeriodSeconds" in query:
            try:
                opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("gracePeriodSeconds must be an integer") from None
        if "propagationPolicy" in query:
            opts["propagationPolicy"] = query["propagationPolicy"]
        if query.get("dryRun") == "All":
            opts["dryRun"] = ["All"]
        policy = opts.get("propagationPolicy")
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid("DeleteOptions", "", "", [{
                "message": f'Unsupported value: "{policy}": supported values: "Foreground", "Background", '
                           '"Orphan"', "field": "propagationPolicy"}])
        if opts.get("orphanDependents") is True and policy is None:
            opts["propagationPolicy"] = "Orphan"
        return opts

    def _orphan(self, tx: Store, obj: Mapping[str, Any]) -> None:
        uid, ns = obj["metadata"].get("uid"), obj["metadata"].get("namespace")
        if not ns:
            return
        for kind in sorted(tx.kinds_in(ns)):
            for dep in tx.list(kind, ns):
                refs = dep["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != uid]
                if len(kept) != len(refs):
                    if kept:
                        dep["metadata"]["ownerReferences"] = kept
                    else:
                        del dep["metadata"]["ownerReferences"]
                    tx.update(dep)

    def delete(self, t: Target, body: Any, query: Mapping[str, str]) -> dict[str, Any]:
        opts = self.delete_options(body, query)
        current = self.store.get(t.kind, t.store_ns, t.name)
        if current is None:
            raise errors.not_found(t.res.plural, t.res.group, t.name or "")
        pre = opts.get("preconditions") or {}
        md = current["metadata"]
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise errors.conflict(t.res.plural, t.res.group, t.name or "",
                                  f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                                  f"{md.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
            raise errors.conflict(t.res.plural, t.res.group, t.name or "",
                                  f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                                  f"ResourceVersion in object meta: {md.get('resourceVersion')}")
        if opts.get("dryRun"):
            return self.present(t, current)
        grace = opts.get("gracePeriodSeconds")
        if opts.get("propagationPolicy") == "Orphan":
            with self.store.transaction() as tx:
                self._orphan(tx, current)
        try:
            deletion.delete_objects(self.store, [deletion.Target(t.kind, t.store_ns, t.name or "")], self.clock(),
                                    grace_period=grace, force=grace == 0)
        except UsageError:  # gone meanwhile
            raise errors.not_found(t.res.plural, t.res.group, t.name or "") from None
        after = self.store.get(t.kind, t.store_ns, t.name)
        return self.present(t, after if after is not None else current)

    def delete_collection(self, t: Target, body: Any, query: Mapping[str, str]) -> list[dict[str, Any]]:
        opts = self.delete_options(body, query)
        items, _, _, _ = self.list(t, {k: v for k, v in query.items() if k in ("labelSelector", "fieldSelector")})
        if opts.get("dryRun") or not items:
            return items
        grace = opts.get("gracePeriodSeconds")
        targets = [deletion.Target(t.kind, o["metadata"].get("namespace") if t.res.namespaced else None,
                                   o["metadata"]["name"]) for o in items]
        deletion.delete_objects(self.store, targets, self.clock(), grace_period=grace, force=grace == 0,
                                ignore_not_found=True)
        return items

