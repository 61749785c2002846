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

from collections.abc import Iterable, Mapping
from typing import Any

PortKey = tuple[int, str]
# namespace -> [(selector, numeric target ports)] of the Services with a selector
ServiceIndex = dict[str, list[tuple[dict[str, str], tuple[PortKey, ...]]]]


def index_services(services: Iterable[Mapping[str, Any]]) -> ServiceIndex:
    """The numeric targetPorts of every Service that selects pods, by namespace. A port without
    targetPort targets its own port number (the API server defaults targetPort to port)."""
    out: ServiceIndex = {}
    for svc in services:
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or spec.get("type") == "ExternalName":
            continue
        ports = []
        for p in spec.get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
                ports.append((int(target), str(p.get("protocol", "TCP"))))
        if ports:
            ns = (svc.get("metadata") or {}).get("namespace") or "default"
            out.setdefault(ns, []).append((dict(selector), tuple(ports)))
    return out


def target_ports_for(pod: Mapping[str, Any], index: ServiceIndex) -> list[PortKey]:
    """The numeric targetPorts of the Services in the pod's namespace whose selector matches its labels."""
    md = pod.get("metadata") or {}
    labels = md.get("labels") or {}
    out: set[PortKey] = set()
    for selector, ports in index.get(md.get("namespace") or "default", ()):
        if all(labels.get(k) == v for k, v in selector.items()):
            out.update(ports)
    return sorted(out)
