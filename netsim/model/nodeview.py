"""The one node view: a Node as the agents and the scheduler read it, built from the typed Node.

kube-proxy wants the node's name (endpoint locality), its IPs, pod CIDR and zone (topology hints,
--detect-local-mode=NodeCIDR); the scheduler its labels, taints and cordon. Both used to have a `NodeInfo`
class of their own; this is the one class (`NodeView.from_node`). The pods a scheduler counts on a node
are not part of the node: that is the scheduler's `NodeUsage` (pkg/scheduler/framework NodeInfo), which
holds a NodeView.

Only what renders kernel state is in `proxy_key` (kube-proxy's rules do not depend on labels or taints, so a
relabelled node must not force a full re-render).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from netsim.model.cluster import Taint
from netsim.model.node import Node

ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class NodeView:
    """A node: its name, IPs (primary first), pod CIDR and zone, and its labels, taints and cordon.
    Positional order (name, ips, pod_cidr, zone) is kube-proxy's former NodeInfo's."""

    name: str
    ips: tuple[str, ...] = ()
    pod_cidr: str | None = None
    zone: str | None = None  # the topology.kubernetes.io/zone label, for topology hints
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ips", tuple(self.ips))
        object.__setattr__(self, "taints", tuple(t if isinstance(t, Taint) else
                                                 Taint(t["key"], t["effect"], t.get("value") or "")
                                                 for t in self.taints))

    @property
    def primary_ip(self) -> str | None:
        return self.ips[0] if self.ips else None

    @property
    def proxy_key(self) -> tuple[str, tuple[str, ...], str | None, str | None]:
        """What kube-proxy's rules depend on (its render state's fingerprint)."""
        return self.name, self.ips, self.pod_cidr, self.zone

    @classmethod
    def from_node(cls, node: Node) -> NodeView:
        """The view of the one Node class (netsim.model.node). IPs as component-helpers node/util
        GetNodeHostIPs picks them: InternalIP addresses before ExternalIP, the first of each IP family, the
        primary family first; the zone from the topology.kubernetes.io/zone label."""
        ips: list[str] = []
        families: set[int] = set()
        for kind in ("InternalIP", "ExternalIP"):
            for a in node.status.addresses:
                if a.type != kind:
                    continue
                try:
                    family = ipaddress.ip_address(a.address).version
                except ValueError:
                    continue
                if family not in families:
                    families.add(family)
                    ips.append(a.address)
        return cls(node.name, tuple(ips), node.spec.pod_cidr, node.labels.get(ZONE_LABEL), dict(node.labels),
                   node.spec.taints, node.spec.unschedulable)
