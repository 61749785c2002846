"""Discovery documents: legacy (/api, /api/v1, /apis, /apis/G, /apis/G/V) and aggregated (apidiscovery v2).

Shapes are kube-apiserver's (k8s.io/apimachinery pkg/apis/meta/v1 APIVersions, APIGroupList, APIGroup,
APIResourceList; k8s.io/api/apidiscovery/v2 APIGroupDiscoveryList, served by k8s.io/apiserver
pkg/endpoints/discovery/aggregated when the client asks for it in Accept: client-go's discovery client sends
`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` first and reads the answer's
Content-Type to know which document it got (client-go discovery/discovery_client.go).
"""

from __future__ import annotations

from typing import Any

from netsim.apiserver.resources import Catalog, Resource

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"], "log": ["get"], "exec": ["create", "get"],
                     "attach": ["create", "get"], "portforward": ["create", "get"], "eviction": ["create"]}


def aggregated_version(accept: str) -> str | None:
    """"v2" / "v2beta1" when the Accept header asks for aggregated discovery (first match wins)."""
    for part in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:])
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList" \
                and part.split(";")[0].strip() in ("application/json", "*/*") and params.get("v") in ("v2", "v2beta1"):
            return params["v"]
    return None


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _subresource_kind(res: Resource, sub: str) -> tuple[str, str, str]:
    if sub == "scale":
        return "autoscaling", "v1", "Scale"
    if sub == "log":
        return "", "v1", "Pod"
    if sub == "exec":
        return "", "v1", "PodExecOptions"
    if sub == "attach":
        return "", "v1", "PodAttachOptions"
    if sub == "portforward":
        return "", "v1", "PodPortForwardOptions"
    if sub == "eviction":
        return "policy", "v1", "Eviction"
    return res.group, res.version, res.kind


def resource_list(cat: Catalog, group: str, version: str) -> dict[str, Any] | None:
    rs = cat.in_group_version(group, version)
    if not rs:
        return None
    gv = f"{group}/{version}" if group else version
    out = []
    for r in sorted(rs, key=lambda r: r.plural):
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            g, v, k = _subresource_kind(r, sub)
            s: dict[str, Any] = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                                 "kind": k, "verbs": SUBRESOURCE_VERBS[sub]}
            if sub in ("scale", "eviction"):
                s.update(group=g, version=v)
            out.append(s)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def group_list(cat: Catalog) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in sorted(cat.group_versions().items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(cat: Catalog, name: str) -> dict[str, Any] | None:
    vs = cat.group_versions().get(name)
    if not name or not vs:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, vs)}


def _discovery_resource(r: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {"resource": r.plural,
                           "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                           "scope": "Namespaced" if r.namespaced else "Cluster",
                           "singularResource": r.singular, "verbs": list(r.verbs)}
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    if r.subresources:
        out["subresources"] = []
        for sub in r.subresources:
            g, v, k = _subresource_kind(r, sub)
            out["subresources"].append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                                        "verbs": SUBRESOURCE_VERBS[sub]})
    return out


def aggregated(cat: Catalog, *, legacy: bool, version: str = "v2") -> dict[str, Any]:
    """/api (legacy=True: the core group) or /apis (every named group) as an APIGroupDiscoveryList."""
    items = []
    for g, vs in sorted(cat.group_versions().items()):
        if (g == "") != legacy:
            continue
        versions = [{"version": v, "freshness": "Current",
                     "resources": [_discovery_resource(r) for r in sorted(cat.in_group_version(g, v),
                                                                          key=lambda r: r.plural)]}
                    for v in vs]
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}
