"""The one pod view: a pod as the data plane sees it (NetworkPolicy, cluster DNS, trace's policy model).

Policy needs a pod's identity, labels, IP, node and named container ports (a NetworkPolicy port may name
one: the named port is resolved per pod, as calico's felix resolves it per endpoint); DNS its addresses and
hostname/subdomain (CoreDNS's endpoint names). Both used to have a `PodInfo` class of their own; this is the
one class, built from the typed Pod (`PodView.of`, with its status) or straight from a stored Pod dict
(`PodView.from_dict`, for agents that read the change log's dicts and must not pay a full parse per pod).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.model.pod import Pod


@dataclass(frozen=True)
class NamedPort:
    """A container port as policy resolves named ports: (name, port, protocol)."""

    name: str | None
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class PodView:
    """A pod as the data plane sees it. `ports` accepts NamedPort or (name|None, port, protocol) tuples;
    `ip` is the primary of `ips` (either given fills the other)."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""
    node: str = ""
    ports: tuple[Any, ...] = ()
    ips: tuple[str, ...] = ()
    hostname: str | None = None
    subdomain: str | None = None
    host_network: bool = False

    def __post_init__(self) -> None:
        norm = tuple(p if isinstance(p, NamedPort) else NamedPort(*p) for p in self.ports)
        object.__setattr__(self, "ports", norm)
        ips = tuple(self.ips)
        if not ips and self.ip:
            ips = (self.ip,)
        object.__setattr__(self, "ips", ips)
        if not self.ip and ips:
            object.__setattr__(self, "ip", ips[0])

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: str) -> int | None:
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None

    @classmethod
    def of(cls, pod: Pod) -> PodView:
        """From the typed Pod (its status gives the addresses)."""
        ports = tuple(NamedPort(cp.name, cp.container_port, cp.protocol)
                      for c in pod.spec.containers for cp in c.ports)
        return cls(pod.meta.namespace or "default", pod.meta.name, pod.meta.labels, "", pod.spec.node_name or "",
                   ports, pod.status.pod_ips, pod.spec.hostname, pod.spec.subdomain, pod.spec.host_network)

    @classmethod
    def from_pod(cls, pod: Pod, ips: Iterable[str]) -> PodView:
        """From the typed Pod with addresses known elsewhere (a sandbox's, before the status says so)."""
        return cls(pod.meta.namespace or "default", pod.meta.name, pod.meta.labels, "", pod.spec.node_name or "",
                   (), tuple(ips), pod.spec.hostname, pod.spec.subdomain, pod.spec.host_network)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, ports: bool = True) -> PodView:
        """From a Pod as the store holds it (status.podIPs, else status.podIP). Raises ValueError/KeyError/
        TypeError on container ports that do not read as numbers; `ports=False` (DNS, which names no
        ports of pods) leaves them out and never raises on them."""
        md, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
        if not ips and status.get("podIP"):
            ips = [status["podIP"]]
        named = tuple(NamedPort(cp.get("name"), int(cp["containerPort"]), cp.get("protocol", "TCP"))
                      for c in spec.get("containers") or [] for cp in c.get("ports") or []) if ports else ()
        return cls(md.get("namespace") or "default", md["name"], md.get("labels") or {}, "",
                   spec.get("nodeName") or "", named, tuple(ips), spec.get("hostname") or None,
                   spec.get("subdomain") or None, bool(spec.get("hostNetwork")))
