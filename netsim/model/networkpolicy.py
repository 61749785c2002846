"""Kubernetes NetworkPolicy (networking.k8s.io/v1): parsing, validation and API defaulting.

Validation follows kubernetes `pkg/apis/networking/validation/validation.go`
(ValidateNetworkPolicySpec, ValidateNetworkPolicyPort, ValidateIPBlock) and defaulting follows
`pkg/apis/networking/v1/defaults.go` (SetDefaults_NetworkPolicy: policyTypes absent -> [Ingress], plus
Egress when egress rules are present; SetDefaults_NetworkPolicyPort: protocol TCP). The objects are
frozen; `to_dict()` gives the normalised, defaulted manifest (what `kubectl get -o yaml` would show).

Semantics kept in the types (evaluated by netsim.policy.model):
- a rule with no peers (`from`/`to` absent or empty) matches every peer; no ports matches every port;
- a peer with both podSelector and namespaceSelector is their AND; podSelector alone means pods of the
  policy's namespace; namespaceSelector alone means all pods of the selected namespaces;
- an ipBlock is exclusive with the selectors, its `except` entries are strict subsets of `cidr`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.model.errors import Source
from netsim.model.meta import Fields, ObjectMeta, object_name, parse_metadata
from netsim.model.selectors import LabelSelector, parse_selector

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")

# IANA_SVC_NAME (apimachinery validation.IsValidPortName): 1-15 chars of [a-z0-9-], at least one letter,
# no leading/trailing '-', no '--'.
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_PORT_NAME_LETTER = re.compile(r"[a-z]")


def port_name_problem(name: str) -> str | None:
    """Why `name` is not an IANA_SVC_NAME, or None if it is one."""
    if len(name) > 15:
        return f"port name {name!r} must be at most 15 characters"
    if not _PORT_NAME_CHARS.match(name):
        return f"port name {name!r} must contain only lowercase alphanumerics and '-'"
    if not _PORT_NAME_LETTER.search(name):
        return f"port name {name!r} must contain at least one letter"
    if "--" in name:
        return f"port name {name!r} must not contain consecutive '-'"
    if name.startswith("-") or name.endswith("-"):
        return f"port name {name!r} must not begin or end with '-'"
    return None


@dataclass(frozen=True)
class IPBlock:
    """`cidr` and `except` normalised to network form (as calico's conversion does with ipNet.String())."""

    cidr: str
    except_: tuple[str, ...] = ()

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)

    def contains(self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        addr = ipaddress.ip_address(ip)
        net = self.network
        if addr.version != net.version or addr not in net:
            return False
        return not any(addr in ipaddress.ip_network(e) for e in self.except_)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cidr": self.cidr}
        if self.except_:
            out["except"] = list(self.except_)
        return out


@dataclass(frozen=True)
class Peer:
    """One NetworkPolicyPeer. Selectors are None when absent (absent != empty, see module docstring)."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pod_selector is not None:
            out["podSelector"] = self.pod_selector.to_dict()
        if self.namespace_selector is not None:
            out["namespaceSelector"] = self.namespace_selector.to_dict()
        if self.ip_block is not None:
            out["ipBlock"] = self.ip_block.to_dict()
        return out

    def describe(self) -> str:
        if self.ip_block is not None:
            exc = f" except {','.join(self.ip_block.except_)}" if self.ip_block.except_ else ""
            return f"ipBlock {self.ip_block.cidr}{exc}"
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaces({self.namespace_selector.describe()})")
        if self.pod_selector is not None:
            parts.append(f"pods({self.pod_selector.describe()})")
        return " and ".join(parts)


@dataclass(frozen=True)
class PolicyPort:
    """One NetworkPolicyPort; `port` None = all ports of the protocol, str = a named container port."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    @property
    def named(self) -> bool:
        return isinstance(self.port, str)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol}
        if self.port is not None:
            out["port"] = self.port
        if self.end_port is not None:
            out["endPort"] = self.end_port
        return out

    def describe(self) -> str:
        if self.port is None:
            return f"{self.protocol}/*"
        if self.end_port is not None:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule: `peers` from `from`/`to` (empty = all), `ports` (empty = all)."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()

    def to_dict(self, peers_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ports:
            out["ports"] = [p.to_dict() for p in self.ports]
        if self.peers:
            out[peers_key] = [p.to_dict() for p in self.peers]
        return out


@dataclass(frozen=True)
class NetworkPolicy:
    meta: ObjectMeta
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    source: Source = field(default_factory=Source, compare=False)

    kind = KIND

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace or "default"

    @property
    def key(self) -> str:
        """`ns/name`, how reports name the policy."""
        return f"{self.namespace}/{self.name}"

    @property
    def affects_ingress(self) -> bool:
        return "Ingress" in self.policy_types

    @property
    def affects_egress(self) -> bool:
        return "Egress" in self.policy_types

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether this policy applies to a pod (same namespace and podSelector matches)."""
        return namespace == self.namespace and self.pod_selector.matches(labels)

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"podSelector": self.pod_selector.to_dict()}
        if self.ingress:
            spec["ingress"] = [r.to_dict("from") for r in self.ingress]
        if self.egress:
            spec["egress"] = [r.to_dict("to") for r in self.egress]
        spec["policyTypes"] = list(self.policy_types)
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": self.meta.to_dict(), "spec": spec}


# ------------------------------------------------------------------------------------------------ parsing


def parse_networkpolicy(doc: Mapping, source: Source) -> NetworkPolicy:
    """Parse and validate one NetworkPolicy document, applying the API server's defaults."""
    meta = parse_metadata(doc, source=source, kind=KIND, namespaced=True)
    obj = object_name(KIND, meta)
    top = Fields(doc, source=source, obj=obj)
    api = top.str("apiVersion", required=True)
    if api != API_VERSION:
        raise top.error("apiVersion", f"{api!r} is not supported for NetworkPolicy; use {API_VERSION}")
    kind = top.str("kind", required=True)
    if kind != KIND:
        raise top.error("kind", f"expected {KIND}, got {kind!r}")
    top.reject_unknown({"apiVersion", "kind", "metadata", "spec", "status"})
    spec = top.map("spec", required=True)
    assert spec is not None
    spec.reject_unknown({"podSelector", "policyTypes", "ingress", "egress"})

    if "podSelector" not in spec.data:
        raise spec.error("podSelector", "is required (use {} to select every pod in the namespace)")
    pod_selector = parse_selector(spec.data["podSelector"], source=source, obj=obj, path="spec.podSelector")

    ingress = tuple(_parse_rule(spec, "ingress", i, r, "from") for i, r in enumerate(spec.list("ingress")))
    egress = tuple(_parse_rule(spec, "egress", i, r, "to") for i, r in enumerate(spec.list("egress")))

    raw_types = spec.list("policyTypes")
    if raw_types:
        if len(raw_types) > 2:
            raise spec.error("policyTypes", "may not have more than 2 entries")
        seen: list[str] = []
        for i, t in enumerate(raw_types):
            if t not in POLICY_TYPES:
                raise spec.error(f"policyTypes[{i}]", f"unsupported value {t!r}: must be Ingress or Egress")
            if t in seen:
                raise spec.error(f"policyTypes[{i}]", f"duplicate value {t!r}")
            seen.append(t)
        policy_types = tuple(seen)
    else:
        # SetDefaults_NetworkPolicy: Ingress always, Egress only when egress rules exist.
        policy_types = ("Ingress", "Egress") if egress else ("Ingress",)

    return NetworkPolicy(meta=meta, pod_selector=pod_selector, policy_types=policy_types,
                         ingress=ingress, egress=egress, source=source)


def _parse_rule(spec: Fields, key: str, index: int, raw: Any, peers_key: str) -> PolicyRule:
    rule = spec.sub(raw, f".{key}[{index}]") if raw is not None else spec.sub({}, f".{key}[{index}]")
    rule.reject_unknown({"ports", peers_key})
    ports = tuple(_parse_port(rule.sub(p, f".ports[{j}]")) for j, p in enumerate(rule.list("ports")))
    peers = tuple(_parse_peer(rule.sub(p, f".{peers_key}[{j}]")) for j, p in enumerate(rule.list(peers_key)))
    return PolicyRule(peers=peers, ports=ports)


def _parse_port(f: Fields) -> PolicyPort:
    f.reject_unknown({"protocol", "port", "endPort"})
    protocol = f.str("protocol", "TCP", choices=PROTOCOLS)
    assert protocol is not None
    raw = f.data.get("port")
    port: int | str | None
    if raw is None:
        port = None
    elif isinstance(raw, bool):
        raise f.error("port", f"must be a port number or name, got {raw!r}")
    elif isinstance(raw, int):
        if not 1 <= raw <= 65535:
            raise f.error("port", f"must be between 1 and 65535, got {raw}")
        port = raw
    elif isinstance(raw, str):
        problem = port_name_problem(raw)
        if problem:
            raise f.error("port", problem)
        port = raw
    else:
        raise f.error("port", f"must be a port number or name, got {type(raw).__name__}")
    end_port = f.int("endPort")
    if end_port is not None:
        if port is None:
            raise f.error("endPort", "may not be specified when port is not specified")
        if isinstance(port, str):
            raise f.error("endPort", "may not be specified when port is a named port")
        if end_port > 65535:
            raise f.error("endPort", f"must be between 1 and 65535, got {end_port}")
        if end_port < port:
            raise f.error("endPort", f"must be greater than or equal to port {port}, got {end_port}")
    return PolicyPort(protocol=protocol, port=port, end_port=end_port)


def _parse_peer(f: Fields) -> Peer:
    f.reject_unknown({"podSelector", "namespaceSelector", "ipBlock"})
    has_pod = "podSelector" in f.data and f.data["podSelector"] is not None
    has_ns = "namespaceSelector" in f.data and f.data["namespaceSelector"] is not None
    has_ip = f.has("ipBlock")
    if not (has_pod or has_ns or has_ip):
        raise f.error(None, "must specify a peer: podSelector, namespaceSelector or ipBlock")
    if has_ip and (has_pod or has_ns):
        raise f.error("ipBlock", "may not be combined with podSelector or namespaceSelector")
    pod = parse_selector(f.data["podSelector"], source=f.source, obj=f.obj, path=f._p("podSelector")) \
        if has_pod else None
    ns = parse_selector(f.data["namespaceSelector"], source=f.source, obj=f.obj,
                        path=f._p("namespaceSelector")) if has_ns else None
    ip_block = _parse_ip_block(f.map("ipBlock")) if has_ip else None
    return Peer(pod_selector=pod, namespace_selector=ns, ip_block=ip_block)


def _parse_ip_block(f: Fields | None) -> IPBlock:
    assert f is not None
    f.reject_unknown({"cidr", "except"})
    cidr_text = f.str("cidr", required=True)
    assert cidr_text is not None
    try:
        net = ipaddress.ip_network(cidr_text, strict=False)
    except ValueError:
        raise f.error("cidr", f"{cidr_text!r} is not a valid CIDR (e.g. 10.0.0.0/16)") from None
    if "/" not in cidr_text:
        raise f.error("cidr", f"{cidr_text!r} must be a CIDR with a prefix length (e.g. {cidr_text}/32)")
    excepts: list[str] = []
    for i, e in enumerate(f.list("except")):
        key = f"except[{i}]"
        if not isinstance(e, str):
            raise f.error(key, f"must be a CIDR string, got {e!r}")
        try:
            enet = ipaddress.ip_network(e, strict=False)
        except ValueError:
            raise f.error(key, f"{e!r} is not a valid CIDR") from None
        if "/" not in e:
            raise f.error(key, f"{e!r} must be a CIDR with a prefix length")
        # ValidateIPBlock: must be a strict subset of cidr (inside it and a longer prefix).
        if enet.version != net.version or not enet.subnet_of(net) or enet.prefixlen <= net.prefixlen:  # type: ignore[arg-type]
            raise f.error(key, f"{e!r} must be a strict subset of cidr {net}")
        excepts.append(str(enet))
    return IPBlock(cidr=str(net), except_=tuple(excepts))
