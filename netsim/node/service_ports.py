"""Ports that real images listen on without declaring them, found through the Services that select a pod.

Images are not run: a container without `command` is played by the workload server, which serves what the
pod spec says (declared containerPorts, probe ports). A real image also listens on ports it never
declares, and a Service's numeric `targetPort` is exactly such a port (kube-proxy DNATs to pod IP:targetPort
whether or not a container declares it: pkg/proxy/iptables/proxier.go uses the EndpointSlice port, which
the EndpointSlice controller takes from the Service's numeric targetPort as is; only a *named* targetPort is
looked up in the container ports, pkg/api/v1/pod FindPort). So a pod whose containers are all played also
serves the numeric targetPorts of the Services that select it. Named targetPorts resolve to declared
containerPorts, which are served anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from netsim.model.pod import Pod
from netsim.model.service import Service

PortKey = tuple[int, str]
# One Service's share: its selector (sorted (key, value) pairs) and numeric target ports. Hashable, so that
# the Services that changed are a set difference.
Entry = tuple[tuple[tuple[str, str], ...], tuple[PortKey, ...]]


class ServiceIndex:
    """The numeric targetPorts of the Services with a selector, by namespace, each entry filed under the
    rarest (key, value) pair of its selector: a pod's Services are found among the entries filed under one
    of its own labels, not by matching every Service's selector (10,000 Services made each of 1,000 pods'
    resync match 10,000 selectors: the idle daemon spent 10 s of every minute on it)."""

    def __init__(self, entries: dict[str, frozenset[Entry]] | None = None):
        self.entries: dict[str, frozenset[Entry]] = entries or {}
        self._by_label: dict[str, dict[tuple[str, str], list[Entry]]] = {}
        for ns, items in self.entries.items():
            # Each entry under its selector's rarest pair: `app=web` on every Service would otherwise file
            # them all together.
            seen: dict[tuple[str, str], int] = {}
            for selector, _ in items:
                for pair in selector:
                    seen[pair] = seen.get(pair, 0) + 1
            filed = self._by_label.setdefault(ns, {})
            for entry in items:
                filed.setdefault(min(entry[0], key=lambda pair: (seen[pair], pair)), []).append(entry)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def matching(self, namespace: str, labels: dict[str, str]) -> list[Entry]:
        """The entries of `namespace` whose selector matches `labels`."""
        filed = self._by_label.get(namespace)
        if not filed:
            return []
        out = []
        for pair in labels.items():
            for entry in filed.get(pair, ()):
                if all(labels.get(k) == v for k, v in entry[0]):
                    out.append(entry)
        return out

    def changed(self, other: ServiceIndex) -> ServiceIndex:
        """The entries in one of the two indexes and not the other: the Services that were added, removed
        or changed their selector or target ports."""
        out = {}
        for ns in set(self.entries) | set(other.entries):
            diff = self.entries.get(ns, frozenset()) ^ other.entries.get(ns, frozenset())
            if diff:
                out[ns] = diff
        return ServiceIndex(out)


def index_services(services: Iterable[Service]) -> ServiceIndex:
    """The numeric targetPorts of every Service that selects pods, by namespace (typed Services, from the
    parse cache). A port without targetPort targets its own port number (the API server defaults
    targetPort to port, as the typed ServicePort holds it)."""
    out: dict[str, set[Entry]] = {}
    for svc in services:
        if not svc.selector or svc.type == "ExternalName":
            continue
        ports = []
        for p in svc.ports:
            target = p.target_port
            if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
                ports.append((int(target), p.protocol))
        if ports:
            out.setdefault(svc.meta.namespace or "default", set()).add(
                (tuple(sorted(svc.selector.items())), tuple(ports)))
    return ServiceIndex({ns: frozenset(entries) for ns, entries in out.items()})


def target_ports_for(pod: Pod, index: ServiceIndex) -> list[PortKey]:
    """The numeric targetPorts of the Services in the pod's namespace whose selector matches its labels."""
    out: set[PortKey] = set()
    for _, ports in index.matching(pod.meta.namespace or "default", pod.meta.labels):
        out.update(ports)
    return sorted(out)
