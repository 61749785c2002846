"""Pod (core/v1), its containers, probes, scheduling constraints, and pod templates.

Defaulting follows kubernetes pkg/apis/core/v1/defaults.go: SetDefaults_PodSpec (restartPolicy Always,
dnsPolicy ClusterFirst, terminationGracePeriodSeconds 30, schedulerName default-scheduler), SetDefaults_Probe
(timeout 1, period 10, success 1, failure 3), SetDefaults_HTTPGetAction (path "/", scheme HTTP), port
protocol TCP, and SetDefaults_Pod's hostNetwork rule (hostPort defaults to containerPort) which applies to
Pods only, not to templates. Validation follows pkg/apis/core/validation (validateContainerPorts,
checkHostPortConflicts, validateProbe, validateTolerations, validateNodeSelectorTerm).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.errors import Source
from netsim.model.meta import Fields, ObjectMeta, checked_annotations
from netsim.model.pod_sources import (
    validate_container_restart_policy,
    validate_env_from,
    validate_value_from,
    validate_volume_mounts,
    validate_volumes,
)
from netsim.model.security import validate_container_security_context, validate_pod_security_context
from netsim.model.selectors import validate_labels
from netsim.model.specfields import object_fields  # re-exported: the kinds' parsers import it from here
from netsim.model.status import PodStatus, pod_status

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")

_CONTAINER_MODELLED = {"name", "image", "command", "args", "env", "ports", "readinessProbe", "livenessProbe",
                       "startupProbe"}
_CONTAINER_PASSTHROUGH = {"workingDir", "envFrom", "resources", "resizePolicy", "restartPolicy", "volumeMounts",
                          "volumeDevices", "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
                          "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"}
_PODSPEC_MODELLED = {"containers", "initContainers", "restartPolicy", "nodeName", "nodeSelector", "affinity",
                     "tolerations", "hostNetwork", "terminationGracePeriodSeconds", "dnsPolicy", "hostname",
                     "subdomain", "schedulerName"}
_PODSPEC_PASSTHROUGH = {"volumes", "ephemeralContainers", "activeDeadlineSeconds", "serviceAccountName",
                        "serviceAccount", "automountServiceAccountToken", "hostPID", "hostIPC",
                        "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostAliases",
                        "priorityClassName", "priority", "dnsConfig", "readinessGates", "runtimeClassName",
                        "enableServiceLinks", "preemptionPolicy", "overhead", "topologySpreadConstraints",
                        "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates", "resourceClaims", "resources"}
_PROBE_FIELDS = {"exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                 "successThreshold", "failureThreshold", "terminationGracePeriodSeconds"}


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"
    host_port: int | None = None
    host_ip: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return sf.drop_none({"name": self.name, "containerPort": self.container_port, "protocol": self.protocol,
                             "hostPort": self.host_port, "hostIP": self.host_ip})


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    value_from: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return sf.drop_none({"name": self.name, "value": self.value, "valueFrom": self.value_from})


@dataclass(frozen=True)
class Probe:
    """A readiness/liveness/startup probe. `action` is tcpSocket, httpGet, exec or grpc."""

    action: str
    port: int | str | None = None  # tcpSocket/httpGet/grpc: number or container port name
    host: str | None = None
    path: str | None = None  # httpGet, default "/"
    scheme: str | None = None  # httpGet, default HTTP
    http_headers: tuple[dict, ...] = ()
    command: tuple[str, ...] = ()  # exec
    initial_delay_seconds: int = 0
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3

    def to_dict(self) -> dict[str, Any]:
        if self.action == "exec":
            handler: dict[str, Any] = {"command": list(self.command)}
        elif self.action == "httpGet":
            handler = sf.drop_none({"port": self.port, "host": self.host, "path": self.path, "scheme": self.scheme,
                                    "httpHeaders": [dict(h) for h in self.http_headers]})
        else:
            handler = sf.drop_none({"port": self.port, "host": self.host})
        return {self.action: handler, "initialDelaySeconds": self.initial_delay_seconds,
                "timeoutSeconds": self.timeout_seconds, "periodSeconds": self.period_seconds,
                "successThreshold": self.success_threshold, "failureThreshold": self.failure_threshold}


@dataclass(frozen=True)
class Container:
    name: str
    image: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # known Kubernetes fields netsim does not model

    def port_by_name(self, name: str) -> ContainerPort | None:
        return next((p for p in self.ports if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out = sf.drop_none({
            "name": self.name, "image": self.image, "command": list(self.command), "args": list(self.args),
            "env": [e.to_dict() for e in self.env], "ports": [p.to_dict() for p in self.ports],
            "readinessProbe": self.readiness_probe.to_dict() if self.readiness_probe else None,
            "livenessProbe": self.liveness_probe.to_dict() if self.liveness_probe else None,
            "startupProbe": self.startup_probe.to_dict() if self.startup_probe else None,
        })
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str = "Equal"  # Equal | Exists
    value: str | None = None
    effect: str | None = None  # None (all effects) | NoSchedule | PreferNoSchedule | NoExecute
    toleration_seconds: int | None = None

    def tolerates(self, key: str, value: str | None, effect: str) -> bool:
        """Whether this toleration tolerates a taint (core/v1 helper Toleration.ToleratesTaint)."""
        if self.effect and self.effect != effect:
            return False
        if self.key and self.key != key:
            return False
        if self.operator == "Exists":
            return True
        return (self.value or "") == (value or "")

    def to_dict(self) -> dict[str, Any]:
        return sf.drop_none({"key": self.key, "operator": self.operator, "value": self.value,
                             "effect": self.effect, "tolerationSeconds": self.toleration_seconds})


@dataclass(frozen=True)
class NodeSelectorRequirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist | Gt | Lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.key)
        if self.operator == "In":
            return v is not None and v in self.values
        if self.operator == "NotIn":
            return v is None or v not in self.values
        if self.operator == "Exists":
            return v is not None
        if self.operator == "DoesNotExist":
            return v is None
        try:  # Gt / Lt compare integers; a non-integer label does not match
            lhs, rhs = int(v or ""), int(self.values[0])
        except ValueError:
            return False
        return lhs > rhs if self.operator == "Gt" else lhs < rhs


@dataclass(frozen=True)
class NodeSelectorTerm:
    """Requirements ANDed; a term with no requirements matches no node (core/v1 helper)."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()
    match_fields: tuple[NodeSelectorRequirement, ...] = ()  # only key metadata.name

    def matches(self, node_name: str, node_labels: dict[str, str]) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        fields = {"metadata.name": node_name}
        return all(r.matches(node_labels) for r in self.match_expressions) and all(
            r.matches(fields) for r in self.match_fields)


@dataclass(frozen=True)
class PodSpec:
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    restart_policy: str = "Always"
    node_name: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    affinity: dict[str, Any] = field(default_factory=dict)  # raw, for to_dict; node terms parsed below
    required_node_terms: tuple[NodeSelectorTerm, ...] | None = None  # None: no required node affinity
    tolerations: tuple[Toleration, ...] = ()
    host_network: bool = False
    termination_grace_period_seconds: int = 30
    dns_policy: str = "ClusterFirst"
    hostname: str | None = None
    subdomain: str | None = None
    scheduler_name: str = "default-scheduler"
    extra: dict[str, Any] = field(default_factory=dict)

    def all_ports(self) -> list[tuple[Container, ContainerPort]]:
        return [(c, p) for c in self.containers for p in c.ports]

    def resolve_port(self, port: int | str, protocol: str = "TCP") -> int | None:
        """A named port resolved to a number as Services' targetPort resolution does (first match)."""
        if isinstance(port, int):
            return port
        for _, p in self.all_ports():
            if p.name == port and p.protocol == protocol:
                return p.container_port
        return None

    def node_allowed(self, node_name: str, node_labels: dict[str, str]) -> bool:
        """nodeName, nodeSelector and required node affinity (terms ORed) all allow this node."""
        if self.node_name and self.node_name != node_name:
            return False
        if any(node_labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        if self.required_node_terms is not None:
            return any(t.matches(node_name, node_labels) for t in self.required_node_terms)
        return True

    def to_dict(self) -> dict[str, Any]:
        out = sf.drop_none({
            "containers": [c.to_dict() for c in self.containers],
            "initContainers": [c.to_dict() for c in self.init_containers],
            "restartPolicy": self.restart_policy,
            "nodeName": self.node_name,
            "nodeSelector": dict(self.node_selector),
            "affinity": self.affinity,
            "tolerations": [t.to_dict() for t in self.tolerations],
            "hostNetwork": self.host_network or None,
            "terminationGracePeriodSeconds": self.termination_grace_period_seconds,
            "dnsPolicy": self.dns_policy,
            "hostname": self.hostname,
            "subdomain": self.subdomain,
            "schedulerName": self.scheduler_name,
        })
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class PodTemplate:
    """spec.template of a workload: labels/annotations and a PodSpec (no name, no namespace)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    spec: PodSpec

    def to_dict(self) -> dict[str, Any]:
        md = sf.drop_none({"labels": dict(self.labels), "annotations": dict(self.annotations)})
        return {"metadata": md, "spec": self.spec.to_dict()}


@dataclass(frozen=True)
class Pod:
    kind: ClassVar[str] = "Pod"
    api_version: ClassVar[str] = "v1"
    meta: ObjectMeta
    spec: PodSpec
    status: PodStatus = PodStatus()  # the kubelet's report when decoded from the store (netsim.model.status)

    @property
    def metadata(self) -> ObjectMeta:
        return self.meta

    def to_dict(self) -> dict[str, Any]:
        """The manifest a client writes: without status, which the API server owns."""
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(),
                "spec": self.spec.to_dict()}


# ---------------------------------------------------------------------------------------------- parsers

def env_var_name_problem(name: str) -> str | None:
    """Why `name` is not an environment variable name the API server accepts, or None.

    apimachinery IsRelaxedEnvVarName (the RelaxedEnvironmentVariableValidation rule, on by default since
    Kubernetes 1.32): not empty, printable ASCII only, no '='. A '=' could not be passed to execve at all:
    the kubelet would fail to start the container on every attempt.
    """
    if not name:
        return "environment variable name must not be empty"
    if any(not " " <= ch <= "~" or ch == "=" for ch in name):
        return (f"{name!r}: a valid environment variable name must consist only of printable ASCII characters "
                "other than '='")
    return None


def _parse_probe(f: Fields, container_ports: tuple[ContainerPort, ...], *, liveness: bool) -> Probe:
    sf.check_fields(f, _PROBE_FIELDS)
    actions = [a for a in ("exec", "httpGet", "tcpSocket", "grpc") if f.has(a)]
    if len(actions) != 1:
        raise f.error(None, "must specify exactly one handler: exec, httpGet, tcpSocket or grpc")
    action = actions[0]
    h = f.map(action)
    kw: dict[str, Any] = {}
    if action == "exec":
        sf.check_fields(h, {"command"})
        kw["command"] = sf.str_list(h, "command")
        if not kw["command"]:
            raise h.error("command", "is required")
    else:
        allowed = {"port", "host"} | ({"path", "scheme", "httpHeaders"} if action == "httpGet" else set())
        sf.check_fields(h, allowed)
        if action == "grpc":
            kw["port"] = sf.port(h, "port", required=True)
        else:
            kw["port"] = sf.port_or_name(h, "port", required=True)
        if isinstance(kw["port"], str) and not any(p.name == kw["port"] for p in container_ports):
            # Kubernetes accepts this and the probe fails at run time; we reject the likely typo early.
            raise h.error("port", f"port name {kw['port']!r} is not the name of a port of this container")
        kw["host"] = h.str("host")
        if action == "httpGet":
            kw["path"] = h.str("path", "/")
            kw["scheme"] = h.str("scheme", "HTTP", choices=("HTTP", "HTTPS"))
            kw["http_headers"] = tuple(h.list("httpHeaders"))
    kw["initial_delay_seconds"] = f.int("initialDelaySeconds", 0, minimum=0)
    kw["timeout_seconds"] = f.int("timeoutSeconds", 1, minimum=1)
    kw["period_seconds"] = f.int("periodSeconds", 10, minimum=1)
    kw["success_threshold"] = f.int("successThreshold", 1, minimum=1)
    kw["failure_threshold"] = f.int("failureThreshold", 3, minimum=1)
    if liveness and kw["success_threshold"] != 1:
        raise f.error("successThreshold", "must be 1 for liveness and startup probes")
    return Probe(action=action, **kw)


def _parse_container(f: Fields, *, host_network: bool) -> Container:
    extra = sf.check_fields(f, _CONTAINER_MODELLED, _CONTAINER_PASSTHROUGH)
    name = sf.dns_label(f, "name", required=True, what="container name")
    validate_container_security_context(f.map("securityContext"))
    ports: list[ContainerPort] = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    for i, raw in enumerate(f.list("ports")):
        pf = f.sub(raw, f".ports[{i}]")
        sf.check_fields(pf, {"containerPort", "name", "protocol", "hostPort", "hostIP"})
        cp = sf.port(pf, "containerPort", required=True)
        pname = sf.port_name(pf, "name")
        if pname is not None:
            if pname in names:
                raise pf.error("name", f"duplicate port name {pname!r} in container {name!r}")
            names.add(pname)
        proto = sf.protocol(pf)
        if (cp, proto) in seen:
            raise pf.error("containerPort", f"duplicate port {cp}/{proto} in container {name!r}")
        seen.add((cp, proto))
        host_port = sf.port(pf, "hostPort")
        if host_network and host_port is not None and host_port != cp:
            raise pf.error("hostPort", f"must equal containerPort {cp} when hostNetwork is true")
        host_ip = sf.ip_address(pf, "hostIP", pf.data["hostIP"]) if pf.has("hostIP") else None
        ports.append(ContainerPort(cp, pname, proto, host_port, host_ip))
    env = []
    env_names: set[str] = set()
    for i, raw in enumerate(f.list("env")):
        ef = f.sub(raw, f".env[{i}]")
        sf.check_fields(ef, {"name", "value", "valueFrom"})
        ename = ef.str("name", required=True)
        problem = env_var_name_problem(ename)
        if problem:
            raise ef.error("name", problem)
        env_names.add(ename)
        validate_value_from(ef)
        vf = ef.get("valueFrom")
        env.append(EnvVar(ename, ef.str("value"), dict(vf) if vf is not None else None))
    validate_env_from(f)
    if f.has("workingDir") and not isinstance(f.get("workingDir"), str):
        raise f.error("workingDir", "must be a string")
    probes = {}
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        pf = f.map(key)
        probes[key] = _parse_probe(pf, tuple(ports), liveness=key != "readinessProbe") if pf else None
    return Container(name=name, image=f.str("image"), command=sf.str_list(f, "command"),
                     args=sf.str_list(f, "args"), env=tuple(env), ports=tuple(ports),
                     readiness_probe=probes["readinessProbe"], liveness_probe=probes["livenessProbe"],
                     startup_probe=probes["startupProbe"], extra=extra)


def _parse_tolerations(f: Fields) -> tuple[Toleration, ...]:
    out = []
    for i, raw in enumerate(f.list("tolerations")):
        tf = f.sub(raw, f".tolerations[{i}]")
        sf.check_fields(tf, {"key", "operator", "value", "effect", "tolerationSeconds"})
        key = tf.str("key") or None
        op = tf.str("operator", "Equal", choices=("Equal", "Exists"))
        value = tf.str("value") or None
        effect = tf.str("effect", choices=("NoSchedule", "PreferNoSchedule", "NoExecute")) or None
        secs = tf.int("tolerationSeconds")
        if key is None and op != "Exists":
            raise tf.error("operator", "must be Exists when key is empty")
        if op == "Exists" and value is not None:
            raise tf.error("value", "must be empty when operator is Exists")
        if secs is not None and effect != "NoExecute":
            raise tf.error("tolerationSeconds", "may only be set when effect is NoExecute")
        out.append(Toleration(key, op, value, effect, secs))
    return tuple(out)


def _parse_node_requirements(f: Fields, key: str, *, fields: bool) -> tuple[NodeSelectorRequirement, ...]:
    out = []
    for i, raw in enumerate(f.list(key)):
        rf = f.sub(raw, f".{key}[{i}]")
        sf.check_fields(rf, {"key", "operator", "values"})
        rkey = rf.str("key", required=True)
        if fields and rkey != "metadata.name":
            raise rf.error("key", f"{rkey!r} is not supported; matchFields only supports metadata.name")
        op = rf.str("operator", required=True,
                    choices=("In", "NotIn") if fields else ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"))
        values = sf.str_list(rf, "values")
        if op in ("In", "NotIn") and not values:
            raise rf.error("values", f"operator {op} needs a non-empty values list")
        if op in ("Exists", "DoesNotExist") and values:
            raise rf.error("values", f"operator {op} takes no values")
        if op in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
            raise rf.error("values", f"operator {op} needs exactly one integer value")
        out.append(NodeSelectorRequirement(rkey, op, values))
    return tuple(out)


def _parse_affinity(f: Fields) -> tuple[dict[str, Any], tuple[NodeSelectorTerm, ...] | None]:
    af = f.map("affinity")
    if af is None:
        return {}, None
    sf.check_fields(af, (), {"nodeAffinity", "podAffinity", "podAntiAffinity"})
    na = af.map("nodeAffinity")
    terms = None
    if na is not None:
        sf.check_fields(na, {"requiredDuringSchedulingIgnoredDuringExecution"},
                        {"preferredDuringSchedulingIgnoredDuringExecution"})
        req = na.map("requiredDuringSchedulingIgnoredDuringExecution")
        if req is not None:
            sf.check_fields(req, {"nodeSelectorTerms"})
            raw_terms = req.list("nodeSelectorTerms", required=True)
            if not raw_terms:
                raise req.error("nodeSelectorTerms", "must have at least one term")
            parsed = []
            for i, raw in enumerate(raw_terms):
                tf = req.sub(raw, f".nodeSelectorTerms[{i}]")
                sf.check_fields(tf, {"matchExpressions", "matchFields"})
                parsed.append(NodeSelectorTerm(_parse_node_requirements(tf, "matchExpressions", fields=False),
                                               _parse_node_requirements(tf, "matchFields", fields=True)))
            terms = tuple(parsed)
    return dict(af.data), terms


def parse_pod_spec(f: Fields, *, is_pod: bool = False) -> PodSpec:
    """Parse and default a PodSpec at `f` (a Pod's spec or a template's spec)."""
    extra = sf.check_fields(f, _PODSPEC_MODELLED, _PODSPEC_PASSTHROUGH)
    host_network = bool(f.bool("hostNetwork", False))
    validate_pod_security_context(f.map("securityContext"))
    raw = f.list("containers", required=True)
    if not raw:
        raise f.error("containers", "must have at least one container")
    containers = tuple(_parse_container(f.sub(c, f".containers[{i}]"), host_network=host_network)
                       for i, c in enumerate(raw))
    inits = tuple(_parse_container(f.sub(c, f".initContainers[{i}]"), host_network=host_network)
                  for i, c in enumerate(f.list("initContainers")))
    volumes = validate_volumes(f)
    for key in ("containers", "initContainers"):
        for i, raw_c in enumerate(f.list(key)):
            validate_volume_mounts(f.sub(raw_c, f".{key}[{i}]"), volumes)
            validate_container_restart_policy(f.sub(raw_c, f".{key}[{i}]"), init=key == "initContainers")
    seen: dict[str, str] = {}
    for i, c in enumerate(containers + inits):
        where = f"containers[{i}]" if i < len(containers) else f"initContainers[{i - len(containers)}]"
        if c.name in seen:
            raise f.error(f"{where}.name", f"duplicate container name {c.name!r}")
        seen[c.name] = where
    if is_pod and host_network:
        # SetDefaults_Pod: with host networking every container port is also a host port.
        containers = tuple(replace(c, ports=tuple(replace(p, host_port=p.host_port or p.container_port)
                                                  for p in c.ports)) for c in containers)
    host_ports: set[tuple[int, str, str]] = set()
    for i, c in enumerate(containers):
        for j, p in enumerate(c.ports):
            if p.host_port is None:
                continue
            hp = (p.host_port, p.protocol, p.host_ip or "0.0.0.0")
            if hp in host_ports:
                raise f.error(f"containers[{i}].ports[{j}].hostPort",
                              f"host port {p.host_port}/{p.protocol} is already used by another container port")
            host_ports.add(hp)
    node_selector = validate_labels(f.get("nodeSelector"), source=f.source, obj=f.obj,
                                    path=f._p("nodeSelector"))
    affinity, terms = _parse_affinity(f)
    return PodSpec(
        containers=containers,
        init_containers=inits,
        restart_policy=f.str("restartPolicy", "Always", choices=RESTART_POLICIES),
        node_name=sf.dns_subdomain(f, "nodeName", what="node name"),
        node_selector=node_selector,
        affinity=affinity,
        required_node_terms=terms,
        tolerations=_parse_tolerations(f),
        host_network=host_network,
        termination_grace_period_seconds=f.int("terminationGracePeriodSeconds", 30, minimum=0),
        dns_policy=f.str("dnsPolicy", "ClusterFirst", choices=DNS_POLICIES),
        hostname=sf.dns_label(f, "hostname", what="hostname"),
        subdomain=sf.dns_label(f, "subdomain", what="subdomain"),
        scheduler_name=f.str("schedulerName", "default-scheduler"),
        extra=extra,
    )


def parse_pod_template(f: Fields) -> PodTemplate:
    """Parse spec.template: metadata (labels, annotations) and spec."""
    sf.check_fields(f, {"metadata", "spec"})
    md = f.map("metadata") or f.sub({}, ".metadata")
    labels = validate_labels(md.get("labels"), source=f.source, obj=f.obj, path=md._p("labels"))
    annotations = checked_annotations(md, "annotations")
    spec = parse_pod_spec(f.map("spec", required=True))
    return PodTemplate(labels=labels, annotations=annotations, spec=spec)


def parse_pod(doc: Any, source: Source) -> Pod:
    meta, root = object_fields(doc, source, "Pod")
    return Pod(meta=meta, spec=parse_pod_spec(root.map("spec", required=True), is_pod=True),
               status=pod_status(doc.get("status")))
