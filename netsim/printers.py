"""kubectl's table shapes for `netsim get` and the API server's Table responses (pure: manifest dicts in, rows out).

Columns follow kubectl's default printers (kubernetes pkg/printers/internalversion/printers.go); `wide` adds
the same extra columns kubectl does, and services also show their endpoints, which is what people look
at first when a Service does not answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from netsim.store import parse_time

Obj = Mapping[str, Any]
Row = list[str]


def age(obj: Obj, now: float | None = None) -> str:
    """kubectl's short duration: 5s, 3m, 2h, 4d (two units below a day: 2m30s, 1h5m)."""
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    if created is None:
        return "<unknown>"
    return short_duration(max(0.0, (now or time.time()) - created))


def short_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60 * 2:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 60 * 3:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d"


def _md(o: Obj) -> Mapping[str, Any]:
    return o.get("metadata") or {}


def _spec(o: Obj) -> Mapping[str, Any]:
    return o.get("spec") or {}


def _status(o: Obj) -> Mapping[str, Any]:
    return o.get("status") or {}


def _sel(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return "<none>"
    labels = selector.get("matchLabels", selector) if "matchExpressions" not in selector else selector.get(
        "matchLabels", {})
    parts = [f"{k}={v}" for k, v in sorted((labels or {}).items()) if isinstance(v, str)]
    for e in selector.get("matchExpressions") or []:
        parts.append(f"{e['key']} {e['operator']} ({','.join(e.get('values', []))})")
    return ",".join(parts) or "<none>"


# -- per kind ----------------------------------------------------------------------------------------
def _init_status(spec: Mapping[str, Any], st: Mapping[str, Any]) -> str | None:
    """kubectl's printPod for init containers: Init:N/M while they run, Init:<reason> when one waits
    (CrashLoopBackOff, CreateContainerConfigError) or failed (Init:Error); None once they are done."""
    inits = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in inits if c.get("restartPolicy") == "Always"}
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if cs.get("name") in sidecars and cs.get("started"):
            continue
        if term:
            return "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        if waiting and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            return "Init:" + waiting["reason"]
        return f"Init:{i}/{len(inits)}"
    return None


def pod_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    st = _status(o)
    cstats = st.get("containerStatuses") or []
    containers = _spec(o).get("containers") or []
    ready = sum(1 for c in cstats if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cstats)
    status = _init_status(_spec(o), st) or st.get("reason") or st.get("phase") or "Pending"
    if _md(o).get("deletionTimestamp"):
        status = "Terminating"
    row = [_md(o)["name"], f"{ready}/{len(containers)}", status, str(restarts), age(o, now)]
    if wide:
        row += [st.get("podIP") or "<none>", _spec(o).get("nodeName") or "<none>"]
    return row


def service_row(o: Obj, wide: bool, now: float | None = None, endpoints: Mapping[str, list[str]] | None = None,
                **_: Any) -> Row:
    spec = _spec(o)
    ports = []
    for p in spec.get("ports") or []:
        s = f"{p['port']}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        ports.append(f"{s}/{p.get('protocol', 'TCP')}")
    ingress = [i.get("ip") for i in (_status(o).get("loadBalancer") or {}).get("ingress") or [] if i.get("ip")]
    external = list(spec.get("externalIPs") or []) + ingress
    if not external:
        external_s = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    else:
        external_s = ",".join(external)
    key = f"{_md(o).get('namespace', 'default')}/{_md(o)['name']}"
    eps = (endpoints or {}).get(key, [])
    row = [_md(o)["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external_s,
           ",".join(ports) or "<none>", _endpoints_text(eps), age(o, now)]
    if wide:
        row.append(_sel({"matchLabels": spec.get("selector")}) if spec.get("selector") else "<none>")
    return row


def _endpoints_text(eps: Sequence[str], limit: int = 3) -> str:
    if not eps:
        return "<none>"
    shown = ",".join(eps[:limit])
    return shown + (f" + {len(eps) - limit} more..." if len(eps) > limit else "")


def deployment_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    st, spec = _status(o), _spec(o)
    row = [_md(o)["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
           str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)), age(o, now)]
    if wide:
        images = [c.get("image", "") for c in ((spec.get("template") or {}).get("spec") or {}).get("containers", [])]
        row += [",".join(images) or "<none>", _sel(spec.get("selector"))]
    return row


def replicaset_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    st, spec = _status(o), _spec(o)
    return [_md(o)["name"], str(spec.get("replicas", 1)), str(st.get("replicas", 0)),
            str(st.get("readyReplicas", 0)), age(o, now)]


def daemonset_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    st, spec = _status(o), _spec(o)
    ns = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector")
    return [_md(o)["name"], str(st.get("desiredNumberScheduled", 0)), str(st.get("currentNumberScheduled", 0)),
            str(st.get("numberReady", 0)), str(st.get("updatedNumberScheduled", 0)),
            str(st.get("numberAvailable", 0)), _sel({"matchLabels": ns}) if ns else "<none>", age(o, now)]


def statefulset_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}", age(o, now)]


def job_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    st, spec = _status(o), _spec(o)
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    status = "Complete" if conds.get("Complete") == "True" else "Failed" if conds.get("Failed") == "True" \
        else "Running"
    completions = spec.get("completions")
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = short_duration((end or now or time.time()) - start) if start else ""
    return [_md(o)["name"], status, f"{st.get('succeeded', 0)}/{completions if completions is not None else 1}",
            duration, age(o, now)]


def cronjob_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    st, spec = _status(o), _spec(o)
    last = parse_time(st.get("lastScheduleTime"))
    return [_md(o)["name"], spec.get("schedule", ""), str(bool(spec.get("suspend", False))),
            str(len(st.get("active") or [])), short_duration((now or time.time()) - last) + " ago" if last else "<none>",
            age(o, now)]


def endpointslice_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses", [])[:1]]
    return [_md(o)["name"], o.get("addressType", "IPv4"), ports, _endpoints_text(addrs), age(o, now)]


def networkpolicy_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], _sel(_spec(o).get("podSelector")), age(o, now)]


def namespace_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], _status(o).get("phase", "Active"), age(o, now)]


def node_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    conds = {c.get("type"): c.get("status") for c in _status(o).get("conditions") or []}
    status = "Ready" if conds.get("Ready") == "True" else "NotReady"
    if _spec(o).get("unschedulable"):
        status += ",SchedulingDisabled"  # a cordoned node (printers.go printNode)
    labels = _md(o).get("labels") or {}
    roles = ",".join(sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))) \
        or "<none>"
    row = [_md(o)["name"], status, roles, age(o, now), "netsim"]
    if wide:
        addrs = {a.get("type"): a.get("address") for a in _status(o).get("addresses") or []}
        row += [addrs.get("InternalIP", "<none>"), _spec(o).get("podCIDR", "<none>")]
    return row


COLUMNS: dict[str, tuple[list[str], list[str], Callable[..., Row]]] = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], pod_row),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "ENDPOINTS", "AGE"], ["SELECTOR"],
                service_row),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["IMAGES", "SELECTOR"], deployment_row),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], [], replicaset_row),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"], [],
                  daemonset_row),
    "StatefulSet": (["NAME", "READY", "AGE"], [], statefulset_row),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], [], job_row),
    "CronJob": (["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"], [], cronjob_row),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], endpointslice_row),
    "NetworkPolicy": (["NAME", "POD-SELECTOR", "AGE"], [], networkpolicy_row),
    "Namespace": (["NAME", "STATUS", "AGE"], [], namespace_row),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"], ["INTERNAL-IP", "POD-CIDR"], node_row),
}


def configmap_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], str(len(o.get("data") or {}) + len(o.get("binaryData") or {})), age(o, now)]


def secret_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], str(o.get("type", "Opaque")), str(len(o.get("data") or {})), age(o, now)]


def serviceaccount_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], str(len(o.get("secrets") or [])), age(o, now)]


def ingress_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    spec = _spec(o)
    hosts = [r.get("host") for r in spec.get("rules") or [] if isinstance(r, Mapping) and r.get("host")]
    tls = bool(spec.get("tls"))
    lb = [i.get("ip") or i.get("hostname") for i in (_status(o).get("loadBalancer") or {}).get("ingress") or []]
    return [_md(o)["name"], str(spec.get("ingressClassName") or "<none>"), ",".join(hosts) or "*",
            ",".join(x for x in lb if x), "80, 443" if tls else "80", age(o, now)]


def pdb_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    spec = _spec(o)
    return [_md(o)["name"], str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            str(_status(o).get("disruptionsAllowed", 0)), age(o, now)]


def crd_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    return [_md(o)["name"], str(_md(o).get("creationTimestamp", ""))]


def hpa_targets(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """kubectl's formatHPAMetrics: `cpu: 45%/80%`, `<current>/<target>` for Pods and Object metrics, the
    first two metrics then `+ N more...`; `<unknown>` before the controller has measured."""
    metrics = spec.get("metrics") or []
    if not metrics:
        return "<none>"
    current = status.get("currentMetrics") or []
    out = []
    for i, m in enumerate(metrics):
        cur = current[i] if i < len(current) else {}
        kind = m.get("type")
        if kind in ("Resource", "ContainerResource"):
            key = "resource" if kind == "Resource" else "containerResource"
            src, now_ = m.get(key) or {}, (cur.get(key) or {}).get("current") or {}
            tgt = src.get("target") or {}
            if tgt.get("averageValue") is not None:
                out.append(f"{src.get('name')}: {now_.get('averageValue', '<unknown>')}/{tgt['averageValue']}")
            else:
                val = f"{now_['averageUtilization']}%" if now_.get("averageUtilization") is not None else "<unknown>"
                target = f"{tgt['averageUtilization']}%" if tgt.get("averageUtilization") is not None else "<auto>"
                out.append(f"{src.get('name')}: {val}/{target}")
        elif kind == "Pods":
            tgt = ((m.get("pods") or {}).get("target") or {}).get("averageValue")
            val = ((cur.get("pods") or {}).get("current") or {}).get("averageValue", "<unknown>")
            out.append(f"{val}/{tgt}")
        elif kind == "Object":
            tgt = (m.get("object") or {}).get("target") or {}
            now_ = (cur.get("object") or {}).get("current") or {}
            if tgt.get("averageValue") is not None:
                out.append(f"{now_.get('averageValue', '<unknown>')}/{tgt['averageValue']} (avg)")
            else:
                out.append(f"{now_.get('value', '<unknown>')}/{tgt.get('value')}")
        elif kind == "External":
            tgt = (m.get("external") or {}).get("target") or {}
            out.append(f"<unknown>/{tgt.get('averageValue') or tgt.get('value')}"
                       + (" (avg)" if tgt.get("averageValue") else ""))
        else:
            out.append("<unknown type>")
    more = len(out) - 2
    return ", ".join(out[:2]) + (f" + {more} more..." if more > 0 else "")


def hpa_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    spec, st = _spec(o), _status(o)
    ref = spec.get("scaleTargetRef") or {}
    lo = spec.get("minReplicas")
    return [_md(o).get("name", ""), f"{ref.get('kind')}/{ref.get('name')}", hpa_targets(spec, st),
            "<unset>" if lo is None else str(lo), str(spec.get("maxReplicas", "")), str(st.get("currentReplicas", 0)),
            age(o, now)]


def ksvc_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    """The Knative Service CRD's printer columns (config/core/300-resources/service.yaml):
    URL, LATESTCREATED, LATESTREADY, READY, REASON."""
    st = _status(o)
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    return [_md(o).get("name", ""), st.get("url", ""), st.get("latestCreatedRevisionName", ""),
            st.get("latestReadyRevisionName", ""), ready.get("status", ""), ready.get("reason", "")]


def generic_row(o: Obj, wide: bool, now: float | None = None, **_: Any) -> Row:
    """kubectl's default for kinds without a printer of their own (and custom resources): name and age."""
    return [_md(o)["name"], age(o, now)]


COLUMNS.update({
    "ConfigMap": (["NAME", "DATA", "AGE"], [], configmap_row),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], [], secret_row),
    "ServiceAccount": (["NAME", "SECRETS", "AGE"], [], serviceaccount_row),
    "Ingress": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], [], ingress_row),
    "PodDisruptionBudget": (["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], [],
                            pdb_row),
    "CustomResourceDefinition": (["NAME", "CREATED AT"], [], crd_row),
    "HorizontalPodAutoscaler": (["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], [],
                                hpa_row),
    "KnativeService": (["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"], [], ksvc_row),
})
GENERIC_COLUMNS = (["NAME", "AGE"], [], generic_row)


def table(kind: str, objects: Sequence[Obj], *, wide: bool = False, all_namespaces: bool = False,
          now: float | None = None, endpoints: Mapping[str, list[str]] | None = None) -> tuple[list[str], list[Row]]:
    """Header and rows for `objects` of `kind` (NAMESPACE first with -A, as kubectl)."""
    base, extra, fn = COLUMNS.get(kind, GENERIC_COLUMNS)
    header = (["NAMESPACE"] if all_namespaces else []) + base + (extra if wide else [])
    rows = []
    for o in objects:
        row = fn(o, wide, now=now, endpoints=endpoints)
        if all_namespaces:
            row = [_md(o).get("namespace", "")] + row
        rows.append(row)
    return header, rows


def render_table(header: Sequence[str], rows: Sequence[Row]) -> str:
    """Plain, column-aligned text like kubectl's (three spaces between columns)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    lines = ["   ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [list(header), *rows]]
    return "\n".join(lines)
