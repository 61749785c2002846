"""The record shape of a trace: one `Hop` per thing that happened to the packet, simulated or observed.

Vocabulary follows Antrea Traceflow observations (component + action, docs/reference/tracing.md
section 1) with Hubble's one-line presentation in mind: a hop says on which node (and netns) it happened,
which component acted (Routing, LB, NAT, NetworkPolicy, Forwarding, Tunnel, Delivery, Firewall), what it
did (Forwarded, Delivered, Dropped, Rejected, Encapsulated, Decapsulated, Translated, Replied), through
which interface, which netfilter chain and rule decided, and the NetworkPolicy / translation / tunnel
details when they apply. Pure data; `to_json` gives the documented JSON keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# actions
FORWARDED = "Forwarded"
DELIVERED = "Delivered"
DROPPED = "Dropped"
REJECTED = "Rejected"
ENCAPSULATED = "Encapsulated"
DECAPSULATED = "Decapsulated"
TRANSLATED = "Translated"
REPLIED = "Replied"
RECEIVED = "Received"

# components
ROUTING = "Routing"
LB = "LB"
NAT = "NAT"
POLICY = "NetworkPolicy"
FORWARDING = "Forwarding"
TUNNEL = "Tunnel"
DELIVERY = "Delivery"
FIREWALL = "Firewall"

# verdicts of a whole trace
VERDICT_DELIVERED = "delivered"
VERDICT_DROPPED = "dropped"
VERDICT_REJECTED = "rejected"
VERDICT_UNREACHABLE = "unreachable"


@dataclass
class Hop:
    """One observation. `node` is the node name (or `pod ns/name`, `host/NAME`, `fabric` for the
    namespaces that are not nodes); `direction` is "request" or "reply"."""

    node: str
    netns: str
    component: str
    action: str
    detail: str = ""
    interface: str | None = None  # in -> out, e.g. "calia1b2 -> vxlan.calico"
    chain: str | None = None
    rule: str | None = None
    policy: dict[str, Any] | None = None  # {namespace, name, rule, direction}
    translated: dict[str, str] | None = None  # {src, dst} after the translation
    tunnel: dict[str, Any] | None = None  # {src, dst, vni, port}
    endpoint: str | None = None  # the pod (ns/name) a Delivered hop reached, a LB hop chose
    direction: str = "request"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": self.node,
            "netns": self.netns,
            "component": self.component,
            "action": self.action,
            "detail": self.detail,
            "interface": self.interface,
            "chain": self.chain,
            "rule": self.rule,
            "policy": self.policy,
            "translated": self.translated,
            "tunnel": self.tunnel,
        }
        if self.endpoint:
            out["endpoint"] = self.endpoint
        if self.direction != "request":
            out["direction"] = self.direction
        return out

    def text(self) -> str:
        """`node  component  action  detail` in the spirit of `hubble observe` compact lines."""
        arrow = "<-" if self.direction == "reply" else "->"
        parts = [f"{arrow} [{self.node}]", f"{self.component}", f"{self.action}"]
        detail = self.detail
        if self.interface and self.interface not in detail:
            detail = f"{detail} (if {self.interface})".strip()
        if self.policy:
            p = self.policy
            what = f"policy {p.get('namespace')}/{p.get('name')} {p.get('direction', '')}".rstrip()
            if p.get("rule") is not None:
                what += f" rule {p['rule']}"
            if what not in detail:
                detail = f"{detail} ({what})".strip()
        if self.tunnel and "vni" not in detail:
            t = self.tunnel
            detail += f" [outer {t.get('src')} -> {t.get('dst')} udp/{t.get('port')} vni {t.get('vni')}]"
        if self.chain and self.chain not in detail:
            detail += f" [{self.chain}]"
        return f"{parts[0]:<20} {parts[1]:<13} {parts[2]:<13} {detail}".rstrip()


@dataclass
class Path:
    """One possible (simulated) or the actual (observed) fate of the packet."""

    hops: list[Hop] = field(default_factory=list)
    verdict: str = VERDICT_UNREACHABLE
    endpoint: str | None = None  # ns/name of the pod it reached or was aimed at after DNAT
    endpoint_ip: str | None = None
    policy: dict[str, Any] | None = None  # the policy that dropped it
    policies: list[str] = field(default_factory=list)  # every policy named on the way (ns/name)
    reason: str = ""
    probability: float = 1.0
    masquerade: bool = False
    tunnel: dict[str, Any] | None = None
    answered: str | None = None  # what the destination answers (e.g. "SYN-ACK", "RST", "reply")
    # Does the answer reach the source namespace? None: not delivered, or no answer is certain (UDP to a
    # node or host, SCTP). Simulated: the way back walked by routes and conntrack (trace/reply.py);
    # observed: a copy of the answer arriving in the source namespace.
    returned: bool | None = None
    snat: list[tuple[str, str, str]] = field(default_factory=list)  # simulated: (node, src before, after)
    notes: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)  # observed: every netfilter rule that acted

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "endpoint": self.endpoint,
            "endpointIP": self.endpoint_ip,
            "policy": self.policy,
            "policies": self.policies,
            "reason": self.reason,
            "probability": round(self.probability, 6),
            "masquerade": self.masquerade,
            "tunnel": self.tunnel,
            "answered": self.answered,
            "returned": self.returned,
            "notes": self.notes,
            "rules": self.rules,
            "hops": [h.to_json() for h in self.hops],
        }


def policy_ref(namespace: str, name: str, direction: str, rule: int | None = None) -> dict[str, Any]:
    return {"namespace": namespace, "name": name, "rule": rule, "direction": direction}


def policy_key(ref: dict[str, Any] | None) -> str | None:
    return f"{ref['namespace']}/{ref['name']}" if ref else None
