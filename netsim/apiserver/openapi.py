"""OpenAPI documents, generated from the served resources (never copied from upstream's swagger files).

What kubectl 1.32 reads (k8s.io/kubectl pkg/cmd/util/factory_client_access.go Validator, pkg/cmd/apply
patcher.go, k8s.io/cli-runtime pkg/resource/query_param_verifier_v3.go, client-go openapi3/root.go):

- `/openapi/v3` (the index: `paths` -> `serverRelativeURL`) and `/openapi/v3/<api/v1 | apis/G/V>`: kubectl
  looks for the PATCH operation of the kind (`x-kubernetes-group-version-kind`) and its `fieldValidation`
  query parameter; found, it leaves validation to the server (`?fieldValidation=Strict`) and does not
  validate on the client. The PATCH operation also lists the patch media types it takes. netsim does
  not list `application/strategic-merge-patch+json` there on purpose: kubectl apply then computes its
  three-way strategic merge patch from the Go types compiled into it (patcher.go
  buildStrategicMergeFromBuiltins, the same patch metadata the API server uses) instead of from schemas,
  which netsim's documents only sketch; the server still takes strategic merge patches (patch.py).
- `/openapi/v2` with `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`: kubectl fetches
  it before every validated write (the Validator's OpenAPISchema) and fails the command when it cannot.
  netsim answers an empty protobuf Document (valid: every proto field is optional), so the fetch
  succeeds; nothing is looked up in it once the v3 document says fieldValidation is supported. A JSON
  `/openapi/v2` (Accept application/json) carries the per-kind definitions.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from netsim.apiserver import schemas
from netsim.apiserver.resources import Catalog, Resource

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
INFO = {"title": "Kubernetes", "version": "v1.32.0"}


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def schema_name(r: Resource) -> str:
    g = r.group or "core"
    return f"io.netsim.{g}.{r.version}.{r.kind}"


def _schema(r: Resource) -> dict[str, Any]:
    return {"type": "object", "description": f"{r.kind} ({r.group_version}), as netsim stores it.",
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                           "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                           "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": r.kind}]}


def _ref(r: Resource, v3: bool) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema_name(r)}" if v3 else f"#/definitions/{schema_name(r)}"}


def _operation(r: Resource, action: str, *, v3: bool, body: bool = False) -> dict[str, Any]:
    gvk = {"group": r.group, "version": r.version, "kind": r.kind}
    op: dict[str, Any] = {"operationId": f"{action}{r.kind}", "x-kubernetes-action": action,
                          "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}}
    params = [{"name": p, "in": "query", "schema": {"type": "string"}} if v3 else
              {"name": p, "in": "query", "type": "string"} for p in QUERY_PARAMS]
    if action in ("patch", "put", "post"):
        op["parameters"] = params
    if v3 and body:
        types = PATCH_TYPES if action == "patch" else ("application/json", "application/yaml")
        op["requestBody"] = {"content": {t: {"schema": _ref(r, True) if action != "patch" else {"type": "object"}}
                                         for t in types}, "required": True}
    return op


def _paths(r: Resource, *, v3: bool) -> dict[str, Any]:
    prefix = f"/{_gv_path(r.group, r.version)}"
    scope = f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix
    collection = f"{scope}/{r.plural}"
    item = f"{collection}/{{name}}"
    if "get" not in r.verbs:  # request-only kinds: create
        return {collection: {"post": _operation(r, "post", v3=v3, body=True)}}
    out = {
        collection: {"get": _operation(r, "list", v3=v3), "post": _operation(r, "post", v3=v3, body=True),
                     "delete": _operation(r, "deletecollection", v3=v3)},
        item: {"get": _operation(r, "get", v3=v3), "put": _operation(r, "put", v3=v3, body=True),
               "patch": _operation(r, "patch", v3=v3, body=True), "delete": _operation(r, "delete", v3=v3)},
    }
    for sub in r.subresources:
        if sub == "eviction":
            out[f"{item}/{sub}"] = {"post": {**_operation(r, "post", v3=v3), "operationId": f"create{r.kind}Eviction"}}
            continue
        if sub in ("log", "exec", "attach", "portforward"):
            op = f"connect{r.kind}{'PortForward' if sub == 'portforward' else sub.title()}"
            out[f"{item}/{sub}"] = {"get": {**_operation(r, "get", v3=v3), "operationId": op}}
            continue
        out[f"{item}/{sub}"] = {"get": _operation(r, "get", v3=v3), "put": _operation(r, "put", v3=v3, body=True),
                                "patch": _operation(r, "patch", v3=v3, body=True)}
    return out


def v3_group(cat: Catalog, group: str, version: str) -> dict[str, Any] | None:
    rs = cat.in_group_version(group, version)
    if not rs:
        return None
    return _v3_group(tuple(rs))


@functools.lru_cache(maxsize=128)
def _v3_group(rs: tuple[Resource, ...]) -> dict[str, Any]:
    """One group-version's document (cached: kubectl reads the index, which hashes every document,
    before each validated write). Built-in kinds are described field by field when schemas.py can."""
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for r in rs:
        paths.update(_paths(r, v3=True))
        detailed = None if r.custom else schemas.kind_schemas(r.kind, r.group, r.version)
        if detailed is None:
            components[schema_name(r)] = _schema(r)
            continue
        top, reached = detailed
        for name, sch in reached.items():
            components.setdefault(name, sch)
        components[schema_name(r)] = {**reached[top], "x-kubernetes-preserve-unknown-fields": True}
    return {"openapi": "3.0.0", "info": INFO, "paths": paths, "components": {"schemas": components}}


def _hash(doc: Any) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


@functools.lru_cache(maxsize=128)
def _v3_hash(rs: tuple[Resource, ...]) -> str:
    """The document's version for the index: a document is a function of its resources and of the
    schemas' source, so those are hashed instead of the document (the index then costs no document)."""
    return _hash([[repr(r) for r in rs], schemas.source_version()])


def v3_index(cat: Catalog) -> dict[str, Any]:
    """`paths`: each group-version's document and a hash of it (clients cache by that URL)."""
    out = {}
    for g, vs in cat.group_versions().items():
        for v in vs:
            p = _gv_path(g, v)
            out[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={_v3_hash(tuple(cat.in_group_version(g, v)))}"}
    return {"paths": dict(sorted(out.items()))}


def v2_json(cat: Catalog) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in cat.resources:
        paths.update(_paths(r, v3=False))
    return {"swagger": "2.0", "info": INFO, "paths": paths,
            "definitions": {schema_name(r): _schema(r) for r in cat.resources}}
