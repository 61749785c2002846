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
# namespace -> [(selector, numeric target ports)] of the Services with a selector
ServiceIndex = dict[str, list[tuple[dict[str, str], tuple[PortKey, ...]]]]


def index_services(services: Iterable[Service]) -> ServiceIndex:
    """The numeric targetPorts of every Service that selects pods, by namespace (typed Services, from the
    parse cache). A port without targetPort targets its own port number (the API server defaults
    targetPort to port, as the typed ServicePort holds it)."""
    out: ServiceIndex = {}
    for svc in services:
        if not svc.selector or svc.type == "ExternalName":
            continue
        ports = []
        for p in svc.ports:
            target = p.target_port
            if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
                ports.append((int(target), p.protocol))
        if ports:
            out.setdefault(svc.meta.namespace or "default", []).append((dict(svc.selector), tuple(ports)))
    return out


def target_ports_for(pod: Pod, index: ServiceIndex) -> list[PortKey]:
    """The numeric targetPorts of the Services in the pod's namespace whose selector matches its labels."""
    labels = pod.meta.labels
    out: set[PortKey] = set()
    for selector, ports in index.get(pod.meta.namespace or "default", ()):
        if all(labels.get(k) == v for k, v in selector.items()):
            out.update(ports)
    return sorted(out)
