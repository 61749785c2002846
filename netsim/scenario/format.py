"""The Scenario document (`apiVersion: netsim/v1alpha1`, `kind: Scenario`): parsed and validated in full
before anything is built.

Everything a run will need is checked here: the cluster spec, every manifest (through the same loader
`netsim apply` uses), every step and its expectations, selectors, durations, node and host names against
the cluster. Errors name the file, the scenario and the field path, e.g.
`quickstart.yaml: Scenario quickstart: field steps[3].probe.expect: 'maybe' is not one of allow, deny`.
Files named in the scenario (cluster, manifests, apply/delete) are resolved relative to the scenario file.

Shape (see docs/architecture.md "Scenario"):

    apiVersion: netsim/v1alpha1
    kind: Scenario
    metadata: {name: quickstart}
    description: ...
    cluster: {file: cluster.yaml}        # or an inline Cluster document, or just its `spec` fields
    manifests: [{file: web.yaml}, {apiVersion: v1, kind: Pod, ...}, "<YAML text>"]
    timeouts: {build: 300s, settle: 120s}  # optional: convergence after the build, after each mutating step
    steps:
      - probe: {from: default/client, to: svc/default/web, port: 80, expect: allow}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netsim.model import targets as sel
from netsim.model.cluster import API_VERSION, ClusterSpec, default_cluster, load_cluster_file, parse_cluster
from netsim.model.errors import Source, SpecError, SpecErrors
from netsim.model.limits import MAX_REPLICAS
from netsim.model.loader import iter_raw_documents, manifest_files, object_key, object_ref, parse_sources
from netsim.model.meta import DNS1123_SUBDOMAIN, Fields
from netsim.model.registry import kind_alias
from netsim.model.selectors import parse_selector
from netsim.scenario.steps import (
    ANY,
    CHECK_STEPS,
    DNS_RCODES,
    DNS_TYPES,
    LOAD_EXPECT,
    STEP_TYPES,
    TRACE_VERDICTS,
    ApplyStep,
    CompactExpectation,
    DeleteStep,
    DnsStep,
    ExecStep,
    KillStep,
    LoadStep,
    MatrixExpectation,
    NodeStep,
    ObjectRef,
    ProbeStep,
    ReachabilityStep,
    ReachRule,
    RepeatStep,
    RolloutStep,
    ScaleStep,
    SpreadStep,
    Step,
    TraceStep,
    WaitStep,
)

KIND = "Scenario"
PROTOCOLS = ("TCP", "UDP", "SCTP")
SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")
ROLLOUT_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
WAIT_CONDITIONS = ("Ready", "Available", "Complete", "Deleted", "RolledOut")
_SCENARIO_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Scenario:
    name: str
    file: str
    cluster: ClusterSpec
    manifests: tuple[Any, ...]
    steps: tuple[Step, ...]
    description: str = ""
    base_dir: str = "."
    build_timeout: float | None = None  # timeouts.build: the runner's default when None
    settle_timeout: float | None = None  # timeouts.settle


# ------------------------------------------------------------------------------------------ entry points


def load_scenario(path: str | Path, *, cluster_name: str | None = None) -> Scenario:
    """Read and validate a scenario file; raise SpecError/SpecErrors naming file and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read: {getattr(e, 'strerror', None) or e}", source=Source(str(path))) from None
    return load_scenario_text(text, str(path), base_dir=str(p.parent), cluster_name=cluster_name)


def load_scenario_text(text: str, file: str = "<inline>", *, base_dir: str = ".",
                       cluster_name: str | None = None) -> Scenario:
    docs = [d for _, d in iter_raw_documents(text, file) if d is not None]
    if len(docs) != 1:
        raise SpecError(f"a scenario file holds exactly one document, found {len(docs)}", source=Source(file))
    return parse_scenario(docs[0], file, base_dir=base_dir, cluster_name=cluster_name)


def parse_scenario(doc: Any, file: str = "<inline>", *, base_dir: str = ".",
                   cluster_name: str | None = None) -> Scenario:
    """Validate a Scenario mapping. `cluster_name` overrides the cluster's name (e.g. `netsim run --name`)."""
    source = Source(file)
    if not isinstance(doc, Mapping):
        raise SpecError("a Scenario must be a YAML mapping", source=source)
    top = Fields(doc, source=source, obj=KIND)
    md = top.map("metadata")
    raw_name = md.data.get("name") if md else None
    if isinstance(raw_name, str):
        top.obj = f"{KIND} {raw_name}"
    api = top.str("apiVersion", required=True)
    if api != API_VERSION:
        raise top.error("apiVersion", f"must be {API_VERSION}, got {api!r}")
    kind = top.str("kind", required=True)
    if kind != KIND:
        raise top.error("kind", f"must be {KIND}, got {kind!r}")
    top.reject_unknown({"apiVersion", "kind", "metadata", "description", "cluster", "manifests", "timeouts",
                        "steps"})
    if md is None:
        raise top.error("metadata", "is required (metadata.name names the scenario)")
    md.obj = top.obj
    md.reject_unknown({"name", "labels", "annotations"})
    name = md.str("name", required=True)
    if len(name) > 63 or not _SCENARIO_NAME_RE.match(name):
        raise md.error("name", f"{name!r} must be a lowercase RFC 1123 label")
    description = top.str("description", "")
    ctx = _Ctx(source=source, obj=top.obj, base=Path(base_dir))
    cluster = _parse_cluster(top, ctx, name, cluster_name)
    ctx.cluster = cluster
    manifests = _parse_manifests(top, ctx)
    raw_steps = top.list("steps", required=True)
    if not raw_steps:
        raise top.error("steps", "must list at least one step")
    steps = tuple(_parse_step(top.sub(item, f"steps[{i}]"), ctx, i) for i, item in enumerate(raw_steps))
    build_timeout = settle_timeout = None
    if top.data.get("timeouts") is not None:
        tf = top.map("timeouts")
        tf.reject_unknown({"build", "settle"})
        build_timeout, settle_timeout = _duration(tf, "build"), _duration(tf, "settle")
    return Scenario(name=name, description=description, file=file, cluster=cluster, manifests=manifests,
                    steps=steps, base_dir=str(base_dir), build_timeout=build_timeout,
                    settle_timeout=settle_timeout)


# ------------------------------------------------------------------------------------------ helpers


@dataclass
class _Ctx:
    source: Source
    obj: str
    base: Path
    cluster: ClusterSpec | None = None

    def resolve(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.base / p


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|s|m|h)")
_UNITS = {"ms": 1e-3, "us": 1e-6, "µs": 1e-6, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Seconds from `2s`, `100ms`, `1m30s` (Go's time.ParseDuration units) or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"must be a duration such as 2s or 100ms, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a duration such as 2s or 100ms, got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{value!r} is not a duration; use e.g. 2s, 100ms, 1m30s")
    return total


def _duration(f: Fields, key: str, default: float | None = None, *, required: bool = False,
              positive: bool = True) -> float | None:
    v = f.data.get(key)
    if v is None:
        if required:
            raise f.error(key, "is required")
        return default
    try:
        d = parse_duration(v)
    except ValueError as e:
        raise f.error(key, str(e)) from None
    if positive and d <= 0:
        raise f.error(key, f"must be longer than zero, got {v!r}")
    return d


def _selector(f: Fields, key: str, parser: Callable[[object], sel.Selector], ctx: _Ctx, *,
              required: bool = True) -> sel.Selector | None:
    v = f.data.get(key)
    if v is None:
        if required:
            raise f.error(key, "is required")
        return None
    return _check_selector(f, key, v, parser, ctx)


def _check_selector(f: Fields, key: str, value: Any, parser: Callable[[object], sel.Selector],
                    ctx: _Ctx) -> sel.Selector:
    try:
        s = parser(value)
    except sel.SelectorError as e:
        raise f.error(key, str(e)) from None
    cluster = ctx.cluster
    if cluster is not None:
        if s.kind == sel.NODE and s.name not in {n.name for n in cluster.nodes}:
            raise f.error(key, f"{s.text}: no node {s.name!r} in cluster {cluster.name} "
                               f"(nodes: {', '.join(n.name for n in cluster.nodes)})")
        if s.kind == sel.HOST and s.name not in {h.name for h in cluster.external_hosts}:
            known = ", ".join(h.name for h in cluster.external_hosts) or "none"
            raise f.error(key, f"{s.text}: no external host {s.name!r} in cluster {cluster.name} "
                               f"(hosts: {known})")
    return s


def _selectors(f: Fields, key: str, parser: Callable[[object], sel.Selector], ctx: _Ctx, *,
               required: bool = True) -> tuple[sel.Selector, ...]:
    v = f.data.get(key)
    if v is None:
        if required:
            raise f.error(key, "is required")
        return ()
    items = v if isinstance(v, list) else [v]
    if not items:
        raise f.error(key, "must name at least one selector")
    return tuple(_check_selector(f, f"{key}[{i}]" if isinstance(v, list) else key, item, parser, ctx)
                 for i, item in enumerate(items))


def _port(f: Fields, key: str = "port", *, required: bool = False) -> int | None:
    return f.int(key, required=required, minimum=1, maximum=65535)


def _protocol(f: Fields, key: str = "protocol", default: str | None = "TCP") -> str | None:
    return f.str(key, default, choices=PROTOCOLS)


def _strings(f: Fields, key: str) -> tuple[str, ...]:
    """A string or a list of strings."""
    v = f.data.get(key)
    if v is None:
        return ()
    items = v if isinstance(v, list) else [v]
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise f.error(f"{key}[{i}]" if isinstance(v, list) else key,
                          f"must be a string, got {type(item).__name__} {item!r}")
    return tuple(items)


def _namespace(f: Fields, key: str = "namespace") -> str:
    ns = f.str(key, "default")
    if not sel.DNS1123_LABEL.match(ns) or len(ns) > 63:
        raise f.error(key, f"{ns!r} must be a lowercase RFC 1123 label")
    return ns


def _object_name(f: Fields, key: str = "name") -> str:
    name = f.str(key, required=True)
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        raise f.error(key, f"{name!r} must be a lowercase RFC 1123 subdomain")
    return name


def _kind(f: Fields, key: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = f.str(key, default)
    kind = kind_alias(raw)
    if kind not in allowed:
        raise f.error(key, f"{raw!r} is not one of {', '.join(allowed)}")
    return kind


# ------------------------------------------------------------------------------------------ cluster


def _rewrap(e: SpecError, prefix: str, source: Source, obj: str | None) -> SpecError:
    return SpecError(e.message, source=source, obj=obj,
                     field=f"{prefix}.{e.field}" if e.field else prefix)


def _parse_cluster(top: Fields, ctx: _Ctx, scenario_name: str, name_override: str | None) -> ClusterSpec:
    raw = top.data.get("cluster")
    if raw is None:
        return default_cluster(name_override or _cluster_name_for(scenario_name))
    cf = top.map("cluster")
    if "file" in cf.data:
        cf.reject_unknown({"file", "name"})
        rel = cf.str("file", required=True)
        path = ctx.resolve(rel)
        if not path.is_file():
            raise cf.error("file", f"no such file: {rel} (resolved to {path})")
        # Errors inside the cluster file name that file and its own field path.
        return load_cluster_file(str(path), name_override=name_override or cf.str("name"))
    if "kind" in cf.data or "apiVersion" in cf.data:
        doc = dict(cf.data)
    else:  # just the spec's fields, with an optional name
        body = dict(cf.data)
        cname = body.pop("name", None) or _cluster_name_for(scenario_name)
        doc = {"apiVersion": API_VERSION, "kind": "Cluster", "metadata": {"name": cname}, "spec": body}
    try:
        return parse_cluster(doc, ctx.source, name_override=name_override)
    except SpecError as e:
        raise _rewrap(e, "cluster", ctx.source, ctx.obj) from None


def _cluster_name_for(scenario_name: str) -> str:
    """Cluster names are short (they prefix namespace names): the scenario's, cut to fit."""
    return scenario_name[:20].rstrip("-") or "netsim"


# ------------------------------------------------------------------------------------------ manifests


def _inline_docs(value: Any, f: Fields, key: str) -> list[tuple[str, Any]]:
    """(field path, raw document) pairs from a mapping, a list of mappings or a YAML text."""
    path = f._p(key)
    if isinstance(value, str):
        try:
            docs = [d for _, d in iter_raw_documents(value, f.source.file) if d is not None]
        except SpecError as e:
            raise f.error(key, e.message) from None
        return [(f"{path}[{i}]", d) for i, d in enumerate(docs)]
    if isinstance(value, Mapping):
        return [(path, value)]
    if isinstance(value, list):
        if not value:
            raise f.error(key, "must hold at least one document")
        return [(f"{path}[{i}]", d) for i, d in enumerate(value)]
    raise f.error(key, f"must be a document, a list of documents or YAML text, got {type(value).__name__}")


def _file_docs(f: Fields, key: str, ctx: _Ctx, errors: list[SpecError]) -> tuple[list[tuple[Source, Any]],
                                                                                  tuple[str, ...]]:
    """Raw documents of the file(s) named at `key` (a path or a list; directories recursively)."""
    rels = _strings(f, key)
    if not rels:
        raise f.error(key, "must name a file")
    docs: list[tuple[Source, Any]] = []
    for i, rel in enumerate(rels):
        path = ctx.resolve(rel)
        fkey = f"{key}[{i}]" if isinstance(f.data.get(key), list) else key
        if path.is_dir():
            files = manifest_files(path)
        elif path.is_file():
            files = [path]
        else:
            raise f.error(fkey, f"no such file or directory: {rel} (resolved to {path})")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
                docs.extend(iter_raw_documents(text, str(file)))
            except (OSError, UnicodeDecodeError) as e:
                errors.append(SpecError(f"cannot read: {e}", source=Source(str(file))))
            except SpecError as e:
                errors.append(e)
    return docs, rels


def _parse_docs(f: Fields, ctx: _Ctx, *, allow_keys: set[str]) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """Objects of a `{file: ...}` or `{inline: ...}` mapping, all or nothing (SpecErrors)."""
    f.reject_unknown(allow_keys | {"file", "inline"})
    if f.has("file") == f.has("inline"):
        raise f.error(None, "needs exactly one of file or inline")
    errors: list[SpecError] = []
    objects: list[Any] = []
    files: tuple[str, ...] = ()
    if f.has("file"):
        docs, files = _file_docs(f, "file", ctx, errors)
        parsed, errs = parse_sources(docs)
        errors.extend(errs)
        objects.extend(o for _, o in parsed)
    else:
        objects.extend(o for _, o in _parse_inline(_inline_docs(f.data["inline"], f, "inline"), ctx, errors))
    if errors:
        raise SpecErrors([f.error(None, f"{len(errors)} invalid manifest document(s)"), *errors])
    return tuple(objects), files


def _parse_inline(items: list[tuple[str, Any]], ctx: _Ctx, errors: list[SpecError]) -> list[tuple[str, Any]]:
    """(path, object) for each inline document that parses; errors (field prefixed by the path) appended."""
    objects = []
    for path, doc in items:
        parsed, errs = parse_sources([(ctx.source, doc)])
        errors.extend(_rewrap(e, path, ctx.source, e.obj or ctx.obj) for e in errs)
        objects.extend((path, o) for _, o in parsed)
    return objects


def _parse_manifests(top: Fields, ctx: _Ctx) -> tuple[Any, ...]:
    errors: list[SpecError] = []
    objects: list[tuple[str, Any]] = []  # (where, object)
    for i, item in enumerate(top.list("manifests")):
        path = f"manifests[{i}]"
        if isinstance(item, Mapping) and "file" in item and "kind" not in item:
            mf = Fields(item, source=ctx.source, obj=ctx.obj, path=path)
            mf.reject_unknown({"file"})
            docs, _ = _file_docs(mf, "file", ctx, errors)
            parsed, errs = parse_sources(docs)
            errors.extend(errs)
            objects.extend((s.describe(), o) for s, o in parsed)
        elif isinstance(item, (Mapping, str)):
            holder = Fields({"x": item}, source=ctx.source, obj=ctx.obj)
            docs = [(path + p[1:], d) for p, d in _inline_docs(item, holder, "x")]
            objects.extend((f"{ctx.source.file} {p}", o) for p, o in _parse_inline(docs, ctx, errors))
        else:
            errors.append(SpecError(f"must be {{file: PATH}}, a Kubernetes document or YAML text, got "
                                    f"{type(item).__name__}", source=ctx.source, obj=ctx.obj, field=path))
    seen: dict[tuple, str] = {}
    for where, obj in objects:
        key = object_key(obj)
        if key in seen:
            errors.append(SpecError(f"duplicate object: {object_ref(obj)} is defined in {seen[key]} and {where}",
                                    source=ctx.source, obj=ctx.obj, field="manifests"))
        seen.setdefault(key, where)
    if errors:
        raise SpecErrors(errors)
    return tuple(o for _, o in objects)


# ------------------------------------------------------------------------------------------ steps


def _parse_step(f: Fields, ctx: _Ctx, index: int, *, nested_in: str | None = None) -> Step:
    data = f.data
    if len(data) != 1:
        keys = ", ".join(map(str, data)) or "none"
        raise f.error(None, f"a step is a single-key mapping such as {{probe: {{...}}}}, got keys: {keys}")
    stype = next(iter(data))
    if stype not in STEP_TYPES:
        raise f.error(None, f"unknown step type {stype!r}; expected one of {', '.join(STEP_TYPES)}")
    if nested_in == "repeat.step" and stype not in CHECK_STEPS:
        raise f.error(stype, f"repeat can only repeat a check step ({', '.join(CHECK_STEPS)}), not {stype}")
    if nested_in == "repeat.during" and stype == "repeat":
        raise f.error(stype, "repeat cannot run during another repeat")
    if nested_in in ("repeat.during", "repeat.step", "load.during") and stype == "load" or \
            nested_in == "load.during" and stype == "repeat":
        raise f.error(stype, f"{stype} cannot run inside {nested_in.split('.')[0]}")
    value = data[stype]
    if stype == "wait" and not isinstance(value, Mapping):  # shorthand: `wait: converged` / `wait: 2s`
        value = {"for": value} if value == "converged" else {"duration": value}
    sf = Fields(value if value is not None else {}, source=f.source, obj=f.obj, path=f._p(stype))
    params = _PARSERS[stype](sf, ctx)
    return Step(index=index, type=stype, path=f.path, params=params, raw={stype: value})


def _apply(f: Fields, ctx: _Ctx) -> ApplyStep:
    objects, files = _parse_docs(f, ctx, allow_keys=set())
    return ApplyStep(objects=objects, files=files)


def _delete(f: Fields, ctx: _Ctx) -> DeleteStep:
    if f.has("file") or f.has("inline"):
        objects, files = _parse_docs(f, ctx, allow_keys=set())
        return DeleteStep(refs=tuple(ObjectRef(o.kind, o.meta.namespace, o.meta.name) for o in objects),
                          files=files)
    f.reject_unknown({"kind", "name", "namespace"})
    if not f.has("kind"):
        raise f.error("kind", "is required (or give file or inline)")
    raw_kind = f.str("kind", required=True)
    kind = kind_alias(raw_kind)
    if kind is None:
        raise f.error("kind", f"unknown kind {raw_kind!r}")
    name = _object_name(f)
    namespace = None if kind == "Namespace" else _namespace(f)
    return DeleteStep(refs=(ObjectRef(kind, namespace, name),))


def _scale(f: Fields, ctx: _Ctx) -> ScaleStep:
    f.reject_unknown({"kind", "name", "namespace", "replicas"})
    return ScaleStep(kind=_kind(f, "kind", "Deployment", SCALABLE), namespace=_namespace(f),
                     name=_object_name(f), replicas=f.int("replicas", required=True, minimum=0, maximum=MAX_REPLICAS))


def _rollout(f: Fields, ctx: _Ctx) -> RolloutStep:
    f.reject_unknown({"action", "kind", "name", "namespace", "image", "container", "env", "toRevision",
                      "timeout"})
    action = f.str("action", required=True, choices=("update", "undo", "status"))
    kind = _kind(f, "kind", "Deployment", ROLLOUT_KINDS)
    namespace, name = _namespace(f), _object_name(f)
    image, container = f.str("image"), f.str("container")
    env_f = f.map("env")
    env: tuple[tuple[str, str], ...] = ()
    if env_f:
        for k, v in env_f.data.items():
            if not isinstance(k, str) or not re.match(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", k):
                raise env_f.error(str(k), f"{k!r} is not a valid environment variable name")
            if not isinstance(v, str):
                raise env_f.error(k, f"must be a string (quote numbers and booleans), got {v!r}")
            env += ((k, v),)
    to_rev = f.int("toRevision", minimum=1)
    if action == "update" and not (image or env):
        raise f.error("image", "rollout update needs an image or env change")
    if action != "update":
        for key in ("image", "env", "container"):
            if f.has(key):
                raise f.error(key, f"only rollout update takes {key}, not {action}")
    if to_rev is not None and action != "undo":
        raise f.error("toRevision", f"only rollout undo takes toRevision, not {action}")
    return RolloutStep(action=action, kind=kind, namespace=namespace, name=name, image=image,
                       container=container, env=env, to_revision=to_rev,
                       timeout=_duration(f, "timeout", 60.0))


def _kill(f: Fields, ctx: _Ctx) -> KillStep:
    f.reject_unknown({"pod", "selector", "namespace"})
    if f.has("pod") == f.has("selector"):
        raise f.error(None, "needs exactly one of pod (ns/name) or selector (with namespace)")
    if f.has("pod"):
        if f.has("namespace"):
            raise f.error("namespace", "pod is ns/name already; namespace goes with selector")
        s = _selector(f, "pod", sel.parse_pod, ctx)
        return KillStep(namespace=s.namespace, name=s.name)
    raw = f.data["selector"]
    if isinstance(raw, str):  # `app=web,tier=front`
        labels = {}
        for part in raw.split(","):
            k, eq, v = part.partition("=")
            if not eq or not k.strip():
                raise f.error("selector", f"{raw!r}: use key=value[,key=value] or a matchLabels mapping")
            labels[k.strip()] = v.strip()
        raw = {"matchLabels": labels}
    selector = parse_selector(raw, source=f.source, obj=f.obj, path=f._p("selector"))
    return KillStep(namespace=_namespace(f), selector=selector)


def _node(f: Fields, ctx: _Ctx) -> NodeStep:
    f.reject_unknown({"action", "name"})
    action = f.str("action", required=True, choices=("fail", "restore"))
    name = f.str("name", required=True)
    if ctx.cluster and name not in {n.name for n in ctx.cluster.nodes}:
        raise f.error("name", f"no node {name!r} in cluster {ctx.cluster.name} "
                              f"(nodes: {', '.join(n.name for n in ctx.cluster.nodes)})")
    return NodeStep(action=action, name=name)


def _wait(f: Fields, ctx: _Ctx) -> WaitStep:
    f.reject_unknown({"for", "duration", "timeout"})
    if f.has("for") == f.has("duration"):
        raise f.error(None, "needs exactly one of for (converged or a condition) or duration")
    timeout = _duration(f, "timeout", 60.0)
    if f.has("duration"):
        if f.has("timeout"):
            raise f.error("timeout", "a duration wait has no timeout")
        return WaitStep(mode="duration", duration=_duration(f, "duration", required=True, positive=False))
    target = f.data["for"]
    if target == "converged":
        return WaitStep(mode="converged", timeout=timeout)
    if not isinstance(target, Mapping):
        raise f.error("for", f"must be converged or a condition mapping {{kind, name, namespace, condition}}, "
                             f"got {target!r}")
    cf = f.map("for")
    cf.reject_unknown({"kind", "name", "namespace", "condition", "replicas"})
    raw_kind = cf.str("kind", required=True)
    # Nodes are not manifests netsim loads, but they have conditions (Ready) worth waiting for.
    kind = "Node" if raw_kind.lower() in ("node", "nodes", "no") else kind_alias(raw_kind)
    if kind is None:
        raise cf.error("kind", f"unknown kind {raw_kind!r}")
    cond = {"kind": kind, "namespace": None if kind in ("Namespace", "Node") else _namespace(cf),
            "name": _object_name(cf), "condition": cf.str("condition", "Ready", choices=WAIT_CONDITIONS)}
    if cf.has("replicas"):
        # `kubectl wait --for=jsonpath='{.status.replicas}'=N`: a workload scaled to N (e.g. to zero)
        if cf.has("condition"):
            raise cf.error("replicas", "give condition or replicas, not both")
        if kind not in ("Deployment", "ReplicaSet", "StatefulSet"):
            raise cf.error("replicas", f"only a Deployment, ReplicaSet or StatefulSet has replicas, not {kind}")
        cond["condition"] = f"Replicas={cf.int('replicas', minimum=0)}"
    return WaitStep(mode="condition", timeout=timeout, condition=cond)


def _via(f: Fields, target: sel.Selector) -> str:
    default = "service" if target.is_service_like else "pod"
    via = f.str("via", default, choices=("pod", "service"))
    if via == "service" and not target.is_service_like:
        raise f.error("via", f"via service needs a Service, VIP or IP:PORT target, not {target.text}")
    return via


def _target_port(f: Fields, target: sel.Selector, *, required: bool = True) -> int | None:
    port = _port(f)
    if target.kind == sel.IP_PORT:
        if port is not None and port != target.port:
            raise f.error("port", f"conflicts with the port in {target.text}")
        return None
    if port is None and required:
        raise f.error("port", f"is required for target {target.text}")
    return port


def _probe(f: Fields, ctx: _Ctx) -> ProbeStep:
    f.reject_unknown({"from", "to", "port", "protocol", "via", "count", "timeout", "expect", "expectServedBy",
                      "expectClientIP"})
    source = _selector(f, "from", sel.parse_source, ctx)
    target = _selector(f, "to", sel.parse_target, ctx)
    port = _target_port(f, target)
    served = _selectors(f, "expectServedBy", sel.parse_target, ctx, required=False)
    client = None
    if f.has("expectClientIP"):
        raw = f.data["expectClientIP"]
        try:
            client = ipaddress.IPv4Network(str(raw), strict=True)
        except ValueError as e:
            raise f.error("expectClientIP", f"{raw!r} is not an IPv4 address or CIDR ({e})") from None
    expect = f.str("expect", "allow", choices=("allow", "deny"))
    if expect == "deny" and (served or client):
        raise f.error("expectServedBy" if served else "expectClientIP",
                      "a probe expected to be denied has no server or client IP to check")
    return ProbeStep(source=source, target=target, port=port, protocol=_protocol(f), via=_via(f, target),
                     count=f.int("count", 1, minimum=1, maximum=10000), timeout=_duration(f, "timeout", 1.0),
                     expect=expect, expect_served_by=served, expect_client_ip=client)


_MARKS = {".": True, "X": False, "x": False, "?": ANY, "-": ANY}


def parse_matrix(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[bool | str, ...], ...]]:
    """Rows, columns and cells of a truth-table block; ValueError names the line and what is wrong.

    The first non-empty line is the header: an optional `-` corner, then destination names. Each next line
    is a source name followed by one mark per destination. `|`, `+---` borders (tablewriter style) and
    `#` comments are ignored, so a table pasted from cyclonus output works.
    """
    lines = []
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped or set(stripped) <= set("+-|= "):
            continue
        tokens = [t for t in stripped.replace("|", " ").split() if t]
        lines.append((n, tokens))
    if len(lines) < 2:
        raise ValueError("a matrix needs a header line of destinations and at least one source row")
    header_n, header = lines[0]
    cols = header[1:] if header[0] in ("-", "*", "from\\to", "from/to") else header
    if not cols:
        raise ValueError(f"matrix line {header_n}: the header names no destinations")
    rows, cells = [], []
    for n, tokens in lines[1:]:
        name, marks = tokens[0], tokens[1:]
        if len(marks) == 1 and len(cols) > 1 and all(ch in _MARKS for ch in marks[0]):
            marks = list(marks[0])  # `x/a  .X.` compact rows
        if len(marks) != len(cols):
            raise ValueError(f"matrix line {n}: row {name} has {len(marks)} mark(s) for {len(cols)} destination(s)")
        row = []
        for col, mark in zip(cols, marks):
            if mark not in _MARKS:
                raise ValueError(f"matrix line {n}: {name} -> {col}: unknown mark {mark!r}; use '.' (allowed), "
                                 f"'X' (blocked) or '?' (either)")
            row.append(_MARKS[mark])
        rows.append(name)
        cells.append(tuple(row))
    return tuple(rows), tuple(cols), tuple(cells)


def _matrix(f: Fields, key: str, text: str, ctx: _Ctx) -> MatrixExpectation:
    try:
        rows, cols, cells = parse_matrix(text)
    except ValueError as e:
        raise f.error(key, str(e)) from None
    row_sels = tuple(_check_selector(f, key, r, sel.parse_source, ctx) for r in rows)
    col_sels = tuple(_check_selector(f, key, c, sel.parse_target, ctx) for c in cols)
    for what, names in (("source", rows), ("destination", cols)):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise f.error(key, f"{what} {dup[0]} appears twice in the matrix")
    return MatrixExpectation(rows=row_sels, cols=col_sels, cells=cells)


def _compact(f: Fields, ctx: _Ctx) -> CompactExpectation:
    f.reject_unknown({"default", "exceptions"})
    default = f.str("default", required=True, choices=("allow", "deny")) == "allow"
    rules = []
    for i, item in enumerate(f.list("exceptions")):
        ef = f.sub(item, f".exceptions[{i}]")
        ef.reject_unknown({"from", "to", "port", "protocol", "expect"})
        rules.append(ReachRule(source=_selector(ef, "from", sel.parse_source, ctx),
                               target=_selector(ef, "to", sel.parse_target, ctx), port=_port(ef),
                               protocol=_protocol(ef, default=None),
                               allowed=ef.str("expect", required=True, choices=("allow", "deny")) == "allow"))
    return CompactExpectation(default=default, exceptions=tuple(rules))


def _reachability(f: Fields, ctx: _Ctx) -> ReachabilityStep:
    f.reject_unknown({"from", "to", "ports", "protocols", "via", "count", "timeout", "expect"})
    raw_expect = f.data.get("expect")
    if raw_expect is None:
        raise f.error("expect", "is required: {default: allow|deny, exceptions: [...]} or a matrix text block")
    if isinstance(raw_expect, str):
        expectation: CompactExpectation | MatrixExpectation = _matrix(f, "expect", raw_expect, ctx)
    else:
        expectation = _compact(f.map("expect"), ctx)
    if isinstance(expectation, MatrixExpectation):  # rows and columns stand in for from/to when omitted
        sources = _selectors(f, "from", sel.parse_source, ctx, required=False) or expectation.rows
        targets = _selectors(f, "to", sel.parse_target, ctx, required=False) or expectation.cols
    else:
        sources = _selectors(f, "from", sel.parse_source, ctx)
        targets = _selectors(f, "to", sel.parse_target, ctx)
    raw_ports = f.data.get("ports", [80])
    port_list = raw_ports if isinstance(raw_ports, list) else [raw_ports]
    if not port_list:
        raise f.error("ports", "must list at least one port")
    ports = []
    for i, p in enumerate(port_list):
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise f.error(f"ports[{i}]" if isinstance(raw_ports, list) else "ports", f"must be a port number between 1 and 65535, got {p!r}")
        ports.append(p)
    protocols = _strings(f, "protocols") or ("TCP",)
    for i, p in enumerate(protocols):
        if p not in PROTOCOLS:
            raise f.error(f"protocols[{i}]", f"{p!r} is not one of {', '.join(PROTOCOLS)}")
    service_like = [t for t in targets if t.is_service_like]
    via = f.str("via", "service" if service_like and len(service_like) == len(targets) else "pod",
                choices=("pod", "service"))
    if via == "service" and len(service_like) != len(targets):
        raise f.error("via", "via service needs every target to be a Service, VIP or IP:PORT")
    return ReachabilityStep(sources=sources, targets=targets, ports=tuple(ports), protocols=tuple(protocols),
                            expectation=expectation, via=via, count=f.int("count", 1, minimum=1, maximum=100),
                            timeout=_duration(f, "timeout", 1.0))


def _trace(f: Fields, ctx: _Ctx) -> TraceStep:
    f.reject_unknown({"from", "to", "port", "protocol", "expect"})
    source = _selector(f, "from", sel.parse_source, ctx)
    if source.is_wildcard:
        raise f.error("from", f"a trace starts at one endpoint, not {source.text}")
    raw_to = f.data.get("to")
    if raw_to is None:
        raise f.error("to", "is required")
    try:  # `dst[:port]`: the port is the destination port, also after a VIP or a node IP
        head, port_in_to = sel.split_port(raw_to)
    except sel.SelectorError as e:
        raise f.error("to", str(e)) from None
    target = _check_selector(f, "to", head, sel.parse_target, ctx)
    if target.is_wildcard:
        raise f.error("to", f"a trace goes to one destination, not {target.text}")
    port = _port(f)
    if port is not None and port_in_to is not None and port != port_in_to:
        raise f.error("port", f"conflicts with the port in {raw_to!r}")
    port = port if port is not None else port_in_to
    protocol = _protocol(f)
    ef = f.map("expect") or f.sub({}, ".expect")
    ef.reject_unknown({"verdict", "policy", "hops", "contains", "agree"})
    policy = ef.str("policy")
    if policy is not None and not re.match(r"^[a-z0-9][-a-z0-9]*/[a-z0-9][-a-z0-9.]*$", policy):
        raise ef.error("policy", f"{policy!r} must name a NetworkPolicy as namespace/name")
    return TraceStep(source=source, target=target, port=port, protocol=protocol,
                     verdict=ef.str("verdict", choices=TRACE_VERDICTS), policy=policy,
                     hops=_strings(ef, "hops"), contains=_strings(ef, "contains"), agree=ef.bool("agree"))


def _spread(f: Fields, ctx: _Ctx) -> SpreadStep:
    f.reject_unknown({"from", "to", "port", "protocol", "count", "timeout", "expect"})
    source = _selector(f, "from", sel.parse_source, ctx)
    target = _selector(f, "to", sel.parse_target, ctx)
    if not target.is_service_like:
        raise f.error("to", f"spread measures a Service's load balancing: use svc/NS/NAME, a VIP or IP:PORT, "
                            f"not {target.text}")
    port = _target_port(f, target)
    ef = f.map("expect", required=True)
    ef.reject_unknown({"endpoints", "uniform", "pValue"})
    endpoints = ef.int("endpoints", minimum=1)
    uniform = ef.bool("uniform", False)
    p_raw = ef.get("pValue", 0.001)
    if isinstance(p_raw, bool) or not isinstance(p_raw, (int, float)) or not 0 < p_raw < 1:
        raise ef.error("pValue", f"must be a probability between 0 and 1 (exclusive), got {p_raw!r}")
    if endpoints is None and not uniform:
        raise ef.error(None, "needs endpoints: N and/or uniform: true")
    if uniform and endpoints == 1:
        raise ef.error("uniform", "uniformity needs at least two endpoints")
    count = f.int("count", 100, minimum=1, maximum=100000)
    if uniform and count < 5 * (endpoints or 2):
        raise f.error("count", f"{count} requests are too few for a chi-square test over "
                               f"{endpoints or 2} endpoints; send at least {5 * (endpoints or 2)}")
    return SpreadStep(source=source, target=target, port=port, protocol=_protocol(f), count=count,
                      timeout=_duration(f, "timeout", 1.0), endpoints=endpoints, uniform=uniform,
                      p_value=float(p_raw))


def _dns(f: Fields, ctx: _Ctx) -> DnsStep:
    f.reject_unknown({"from", "name", "type", "server", "timeout", "expect"})
    source = _selector(f, "from", sel.parse_pod, ctx)
    name = f.str("name", required=True)
    if not re.match(r"^([A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?\.?)+$", name) or len(name) > 253:
        raise f.error("name", f"{name!r} is not a DNS name")
    server = f.str("server")
    if server is not None:
        try:
            ipaddress.IPv4Address(server)
        except ValueError:
            raise f.error("server", f"{server!r} is not an IPv4 address") from None
    ef = f.map("expect", required=True)
    ef.reject_unknown({"addresses", "rcode"})
    addresses = None
    if ef.has("addresses"):
        addresses = _strings(ef, "addresses")
        for i, a in enumerate(addresses):
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ef.error(f"addresses[{i}]", f"{a!r} is not an IP address") from None
    rcode = ef.str("rcode", choices=DNS_RCODES)
    if addresses is None and rcode is None:
        raise ef.error(None, "needs addresses and/or rcode")
    if addresses and rcode not in (None, "NOERROR"):
        raise ef.error("addresses", f"an answer with rcode {rcode} carries no addresses")
    return DnsStep(source=source, name=name, qtype=f.str("type", "A", choices=DNS_TYPES), server=server,
                   timeout=_duration(f, "timeout", 2.0), addresses=addresses, rcode=rcode)


def _exec(f: Fields, ctx: _Ctx) -> ExecStep:
    f.reject_unknown({"in", "command", "timeout", "expect"})
    where = _selector(f, "in", sel.parse_source, ctx)
    if where.is_wildcard:
        raise f.error("in", f"exec runs in one pod, node or host, not {where.text}")
    command = f.list("command", required=True)
    if not command:
        raise f.error("command", "must not be empty")
    for i, arg in enumerate(command):
        if not isinstance(arg, (str, int, float)) or isinstance(arg, bool):
            raise f.error(f"command[{i}]", f"must be a string, got {arg!r}")
    ef = f.map("expect") or f.sub({}, ".expect")
    ef.reject_unknown({"exitCode", "stdoutContains", "stderrContains"})
    return ExecStep(where=where, command=tuple(str(a) for a in command), timeout=_duration(f, "timeout", 10.0),
                    exit_code=ef.int("exitCode", 0, minimum=0, maximum=255),
                    stdout_contains=_strings(ef, "stdoutContains"), stderr_contains=_strings(ef, "stderrContains"))


def _repeat(f: Fields, ctx: _Ctx) -> RepeatStep:
    f.reject_unknown({"every", "for", "during", "step", "expect"})
    every = _duration(f, "every", required=True)
    if f.has("for") == f.has("during"):
        raise f.error(None, "needs exactly one of for (a duration) or during (a step to run meanwhile)")
    duration = _duration(f, "for") if f.has("for") else None
    if duration is not None and duration < every:
        raise f.error("for", f"is shorter than every ({every:g}s)")
    during = None
    if f.has("during"):
        during = _parse_step(f.map("during"), ctx, -1, nested_in="repeat.during")
    inner = f.map("step", required=True)
    step = _parse_step(inner, ctx, -1, nested_in="repeat.step")
    ef = f.map("expect") or f.sub({}, ".expect")
    ef.reject_unknown({"maxFailures"})
    return RepeatStep(every=every, step=step, duration=duration, during=during,
                      max_failures=ef.int("maxFailures", 0, minimum=0))


def _load(f: Fields, ctx: _Ctx) -> LoadStep:
    f.reject_unknown({"from", "to", "port", "protocol", "rate", "connections", "duration", "timeout", "during",
                      "after", "expect"})
    source = _selector(f, "from", sel.parse_source, ctx)
    target = _selector(f, "to", sel.parse_target, ctx)
    port = _target_port(f, target, required=False)
    protocol = f.str("protocol", "TCP", choices=("TCP", "UDP"))
    rate = f.get("rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 100000):
        raise f.error("rate", f"must be a number of requests per second in (0, 100000], got {rate!r}")
    connections = f.int("connections", None, minimum=1, maximum=10000)
    if rate is None and connections is None:
        raise f.error(None, "needs rate (open loop, requests per second) or connections (closed loop)")
    duration = _duration(f, "duration", 10.0)
    during = _parse_step(f.map("during"), ctx, -1, nested_in="load.during") if f.has("during") else None
    after = _duration(f, "after", 0.0, positive=False)
    if during is None and f.has("after"):
        raise f.error("after", "only means something with during")
    if after is not None and duration is not None and after >= duration:
        raise f.error("after", f"must be shorter than the load's duration ({duration:g}s)")
    ef = f.map("expect") or f.sub({}, ".expect")
    ef.reject_unknown(set(LOAD_EXPECT))
    expect = []
    for key in LOAD_EXPECT:
        v = ef.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ef.error(key, f"must be a number at least 0, got {v!r}")
        expect.append((key, float(v)))
    return LoadStep(source=source, target=target, port=port, protocol=protocol or "TCP",
                    rate=float(rate) if rate is not None else None, connections=connections,
                    duration=duration or 10.0, timeout=_duration(f, "timeout", 1.0) or 1.0, during=during,
                    after=after or 0.0, expect=tuple(expect))


_PARSERS: dict[str, Callable[[Fields, _Ctx], Any]] = {
    "apply": _apply, "delete": _delete, "scale": _scale, "rollout": _rollout, "kill": _kill, "node": _node,
    "wait": _wait, "probe": _probe, "reachability": _reachability, "trace": _trace, "spread": _spread,
    "dns": _dns, "exec": _exec, "repeat": _repeat, "load": _load,
}
