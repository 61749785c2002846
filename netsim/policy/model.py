"""The expected truth table: a pure evaluator of Kubernetes NetworkPolicy semantics.

Given namespaces, pods and NetworkPolicies, `PolicyModel.verdict()` says whether a connection from a source
(a pod, a node, an external IP) to a destination (a pod after any Service DNAT, or an IP) on a port and
protocol is allowed, and why: for each side (egress of the source pod, ingress of the destination pod) which
policies isolate it and which policy/rule/peer/port allowed it. The verifier diffs this against probes.

Semantics, from the Kubernetes NetworkPolicy concepts page and API reference
(kubernetes/website content/en/docs/concepts/services-networking/network-policies.md), with calico's choices
where the spec leaves room (we emulate calico; docs/reference/calico.md section 5 and 7):

- A pod is isolated for ingress (egress) when at least one policy in its namespace selects it and has
  Ingress (Egress) in policyTypes. An isolated pod only accepts what some selecting policy's rule allows
  (the union of all of them); a non-isolated pod accepts everything (calico: the kns.<ns> profile allows all).
- A connection needs both sides: the source's egress and the destination's ingress. Replies are always
  allowed (conntrack), so only the initiating direction is judged.
- Rule: empty `from`/`to` = every peer; empty `ports` = every port. Peer: podSelector alone = pods of the
  policy's namespace, namespaceSelector alone = every pod of those namespaces (empty selector = all),
  both = AND. Selector peers only ever match pods.
- ipBlock matches any IP, pod IPs included. The spec says ipBlock is meant for cluster-external IPs and
  that pod IPs "may or may not" match; upstream e2e tests assume external semantics, but calico renders
  ipBlock as plain `-s/-d` CIDR matches (libcalico-go conversion.go k8sPeerToCalicoFields), so pod IPs
  match. We follow calico because that is what the data plane we emulate does.
- Ports: protocol defaults to TCP (done by the parser); numeric with optional endPort range; a named port is
  resolved against the *destination* pod's containerPorts (name and protocol must match), so it never
  matches a non-pod destination.
- Traffic from a node to a pod on the same node is always allowed (spec: "the pod's node"; calico:
  cali-OUTPUT returns for `-o cali+`, host->local pod is never policed). From a node to a pod elsewhere the
  packet is a normal ingress packet whose source is the IP the caller passes (a tunnel IP when it crossed an
  overlay, the node IP otherwise) - only ipBlock peers can match it.
- hostNetwork pods share their node's IP and have no workload endpoint, so neither k8s CNI plugins nor
  calico police them: pass them as NodeEndpoint, not PodInfo (selectors never match them).
- A pod talking to itself directly (loopback inside the pod) is always allowed; via a Service VIP the packet
  hairpins through the host and both chains apply (`via_service=True`).
- The namespace label `kubernetes.io/metadata.name=<ns>` is added when missing, as the API server does
  (NamespaceDefaultLabelName, since v1.21), so selectors on it work.

Policies are considered in calico's order within tier `default` (all order 1000, then by name and
namespace), so the reported allowing policy is the one whose chain the kernel accepts the packet in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.model.networkpolicy import NetworkPolicy, Peer, PolicyPort
from netsim.model.podview import NamedPort, PodView

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
INGRESS = "ingress"
EGRESS = "egress"


# ------------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def effective_labels(self) -> dict[str, str]:
        """Labels as the API server stores them: with `kubernetes.io/metadata.name` set."""
        out = dict(self.labels)
        out.setdefault(NAMESPACE_NAME_LABEL, self.name)
        return out


# A pod as policy sees it is the one pod view of the model (netsim.model.podview); the old names stay.
ContainerPort = NamedPort
PodInfo = PodView


@dataclass(frozen=True)
class NodeEndpoint:
    """A node as a traffic source (or destination IP). `ip` is the source address the packet carries."""

    name: str
    ip: str

    @property
    def key(self) -> str:
        return f"node/{self.name}"


@dataclass(frozen=True)
class ExternalEndpoint:
    """Anything that is not a pod or a node: an external host, an arbitrary IP."""

    ip: str
    name: str | None = None

    @property
    def key(self) -> str:
        return f"host/{self.name}" if self.name else self.ip


Endpoint = PodInfo | NodeEndpoint | ExternalEndpoint


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class RuleRef:
    """Which rule allowed a packet: policy `ns/name`, rule index, peer index (None = rule has no peers,
    i.e. all), port index (None = rule has no ports)."""

    policy: str
    direction: str
    rule: int
    peer: int | None
    port: int | None

    def describe(self) -> str:
        where = f"{self.policy} {self.direction}[{self.rule}]"
        where += " from/to any" if self.peer is None else f" peer[{self.peer}]"
        where += " any port" if self.port is None else f" ports[{self.port}]"
        return where

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "direction": self.direction, "rule": self.rule,
                "peer": self.peer, "port": self.port}


# reasons for SideVerdict.reason
NOT_A_POD = "not-a-pod"  # that end is a node or external IP: no policy of this direction applies
NOT_ISOLATED = "not-isolated"  # pod selected by no policy of this direction
ALLOWED_BY_POLICY = "allowed-by-policy"
NO_RULE_MATCHED = "no-rule-matched"  # isolated, and no selecting policy allows it: dropped
HOST_TO_LOCAL_POD = "host-to-local-pod"  # node -> pod on the same node, never policed
LOOPBACK = "loopback"  # pod -> itself without a Service


@dataclass(frozen=True)
class SideVerdict:
    direction: str
    allowed: bool
    reason: str
    isolated_by: tuple[str, ...] = ()  # policies selecting the pod for this direction, in evaluation order
    match: RuleRef | None = None

    def describe(self) -> str:
        if self.reason == ALLOWED_BY_POLICY and self.match:
            return f"{self.direction}: allowed by {self.match.describe()}"
        if self.reason == NO_RULE_MATCHED:
            return f"{self.direction}: denied, isolated by {', '.join(self.isolated_by)} and no rule matched"
        return f"{self.direction}: allowed ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "allowed": self.allowed, "reason": self.reason,
                "isolatedBy": list(self.isolated_by), "match": self.match.to_dict() if self.match else None}


@dataclass(frozen=True)
class Verdict:
    source: str
    destination: str
    port: int
    protocol: str
    egress: SideVerdict
    ingress: SideVerdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def denied_by(self) -> tuple[str, ...]:
        """The policies that isolate the side that dropped the packet (egress first, as the kernel sees)."""
        if not self.egress.allowed:
            return self.egress.isolated_by
        if not self.ingress.allowed:
            return self.ingress.isolated_by
        return ()

    def explain(self) -> str:
        head = f"{self.source} -> {self.destination}:{self.port}/{self.protocol}: "
        head += "allowed" if self.allowed else "denied"
        return f"{head}\n  {self.egress.describe()}\n  {self.ingress.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.destination, "port": self.port, "protocol": self.protocol,
                "allowed": self.allowed, "egress": self.egress.to_dict(), "ingress": self.ingress.to_dict()}


# ------------------------------------------------------------------------------------------------ evaluator


def policy_order_key(policy: NetworkPolicy) -> tuple[str, str]:
    """Calico's order inside tier `default`: all k8s policies have order 1000, ties broken by name then
    namespace (felix/calc/policy_sorter.go). The felix renderer uses the same key."""
    return (policy.name, policy.namespace)


def port_matches(pp: PolicyPort, port: int, protocol: str, dst: Endpoint) -> bool:
    """Does one NetworkPolicyPort match (port, protocol) at destination `dst`?"""
    if pp.protocol != protocol:
        return False
    if pp.port is None:
        return True
    if isinstance(pp.port, str):
        return isinstance(dst, PodInfo) and dst.named_port(pp.port, protocol) == port
    if pp.end_port is not None:
        return pp.port <= port <= pp.end_port
    return pp.port == port


class PolicyModel:
    """Namespaces, pods and policies frozen together; answers verdict queries."""

    def __init__(self, namespaces: Iterable[NamespaceInfo], pods: Iterable[PodInfo],
                 policies: Iterable[NetworkPolicy]):
        self.namespaces: dict[str, NamespaceInfo] = {n.name: n for n in namespaces}
        self.pods: list[PodInfo] = list(pods)
        self.policies: list[NetworkPolicy] = sorted(policies, key=policy_order_key)
        for p in self.pods:
            self.namespaces.setdefault(p.namespace, NamespaceInfo(p.namespace))
        self._ns_labels = {n: ns.effective_labels() for n, ns in self.namespaces.items()}

    # -- selection ------------------------------------------------------------------------------
    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return self._ns_labels.get(namespace) or NamespaceInfo(namespace).effective_labels()

    def selecting(self, pod: PodInfo, direction: str) -> list[NetworkPolicy]:
        """Policies that select `pod` and govern `direction`, in evaluation order."""
        want = "Ingress" if direction == INGRESS else "Egress"
        return [p for p in self.policies if want in p.policy_types and p.selects(pod.namespace, pod.labels)]

    def peer_matches(self, policy: NetworkPolicy, peer: Peer, other: Endpoint) -> bool:
        """Does `peer` (of `policy`) match the other end of the connection?"""
        if peer.ip_block is not None:
            return bool(other.ip) and _contains(peer.ip_block.contains, other.ip)
        if not isinstance(other, PodInfo):
            return False
        if peer.namespace_selector is None:
            if other.namespace != policy.namespace:
                return False
        elif not peer.namespace_selector.matches(self.namespace_labels(other.namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(other.labels)

    # -- one side -------------------------------------------------------------------------------
    def _side(self, direction: str, pod: PodInfo, other: Endpoint, port: int, protocol: str,
              dst: Endpoint) -> SideVerdict:
        policies = self.selecting(pod, direction)
        if not policies:
            return SideVerdict(direction, True, NOT_ISOLATED)
        keys = tuple(p.key for p in policies)
        for policy in policies:
            rules = policy.ingress if direction == INGRESS else policy.egress
            for ri, rule in enumerate(rules):
                port_idx = _first_port(rule.ports, port, protocol, dst)
                if port_idx is False:
                    continue
                if not rule.peers:
                    return SideVerdict(direction, True, ALLOWED_BY_POLICY, keys,
                                       RuleRef(policy.key, direction, ri, None, port_idx))
                for pi, peer in enumerate(rule.peers):
                    if self.peer_matches(policy, peer, other):
                        return SideVerdict(direction, True, ALLOWED_BY_POLICY, keys,
                                           RuleRef(policy.key, direction, ri, pi, port_idx))
        return SideVerdict(direction, False, NO_RULE_MATCHED, keys)

    # -- queries --------------------------------------------------------------------------------
    def verdict(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP", *,
                via_service: bool = False) -> Verdict:
        """Is a new connection src -> dst:port/protocol allowed? `dst` is the pod after Service DNAT."""
        protocol = protocol.upper()
        if isinstance(src, PodInfo) and isinstance(dst, PodInfo) and src.key == dst.key and not via_service:
            e = SideVerdict(EGRESS, True, LOOPBACK)
            i = SideVerdict(INGRESS, True, LOOPBACK)
        elif isinstance(src, NodeEndpoint) and isinstance(dst, PodInfo) and dst.node == src.name:
            e = SideVerdict(EGRESS, True, NOT_A_POD)
            i = SideVerdict(INGRESS, True, HOST_TO_LOCAL_POD)
        else:
            e = (self._side(EGRESS, src, dst, port, protocol, dst) if isinstance(src, PodInfo)
                 else SideVerdict(EGRESS, True, NOT_A_POD))
            i = (self._side(INGRESS, dst, src, port, protocol, dst) if isinstance(dst, PodInfo)
                 else SideVerdict(INGRESS, True, NOT_A_POD))
        return Verdict(src.key, dst.key, port, protocol, e, i)

    def truth_table(self, ports: Sequence[int], protocols: Sequence[str] = ("TCP",), *,
                    sources: Sequence[Endpoint] | None = None,
                    destinations: Sequence[Endpoint] | None = None) -> list[Verdict]:
        """Every (source, destination, port, protocol) verdict; sources/destinations default to all pods.
        A pod's loopback to itself is skipped (it is always allowed and not probed)."""
        srcs = list(sources) if sources is not None else self.pods
        dsts = list(destinations) if destinations is not None else self.pods
        out = []
        for s in srcs:
            for d in dsts:
                if isinstance(s, PodInfo) and isinstance(d, PodInfo) and s.key == d.key:
                    continue
                for proto in protocols:
                    for port in ports:
                        out.append(self.verdict(s, d, port, proto))
        return out


def truth_table(namespaces: Iterable[NamespaceInfo], pods: Iterable[PodInfo], policies: Iterable[NetworkPolicy],
                ports: Sequence[int], protocols: Sequence[str] = ("TCP",)) -> dict[tuple[str, str, int, str], bool]:
    """Pod-to-pod reachability matrix: (src key, dst key, port, protocol) -> allowed."""
    model = PolicyModel(namespaces, pods, policies)
    return {(v.source, v.destination, v.port, v.protocol): v.allowed for v in model.truth_table(ports, protocols)}


def _contains(test: Any, ip: str) -> bool:
    """ipBlock membership that treats an unparsable address as "no match" rather than an error."""
    try:
        return bool(test(ip))
    except ValueError:
        return False


def _first_port(ports: Sequence[PolicyPort], port: int, protocol: str, dst: Endpoint) -> int | None | bool:
    """Index of the first matching port, None if the rule has no ports (all match), False if none match."""
    if not ports:
        return None
    for i, pp in enumerate(ports):
        if port_matches(pp, port, protocol, dst):
            return i
    return False
