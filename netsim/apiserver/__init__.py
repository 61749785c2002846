"""The cluster's Kubernetes API endpoint (HTTPS on a loopback port, served by the daemon).

certs.py (the PKI made at `up`), kubeconfig.py (the user's kubeconfig), endpoint.py (port and files),
server.py (transport, authentication, routing), handlers.py (the verbs), watch.py, patch.py,
discovery.py, openapi.py, tables.py, errors.py (Status), and the streaming subresources: execws.py,
streaming.py, spdy.py, portforward.py. See docs/architecture.md, "The API endpoint".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netsim.apiserver.server import ApiServer
    from netsim.kernel.api import Kernel
    from netsim.model.cluster import ClusterSpec

log = logging.getLogger("netsim.apiserver")


def serve(cluster: str, spec: ClusterSpec, store_path: Any) -> ApiServer | None:
    """Start the cluster's API server (the daemon's hook). None when the cluster has no endpoint record
    (made without one) or the port cannot be bound: the rest of the daemon runs on without it."""
    from netsim.apiserver import endpoint
    from netsim.apiserver.server import ApiServer
    ep = endpoint.load(cluster)
    if ep is None:
        log.warning("cluster %s has no API endpoint record; not serving the API", cluster)
        return None
    try:
        srv = ApiServer(ep, spec, store_path)
        srv.start()
    except OSError as e:
        log.error("cannot serve the API on %s: %s", ep.server, e)
        return None
    log.info("serving the Kubernetes API on %s", ep.server)
    return srv


def serve_in_cluster(srv: ApiServer | None, kernel: Kernel, netns: str, ip: str) -> None:
    """Serve the API to pods too (the daemon's second hook): a listening socket opened inside the first
    node's network namespace on <node IP>:6443, where the `kubernetes` Service's EndpointSlice points
    (kube-apiserver listens on its advertise address, --secure-port 6443). Pods reach it through the
    Service's ClusterIP and kube-proxy's DNAT, over the real data plane. Failing only logs: the host
    endpoint goes on."""
    import socket

    from netsim.apiserver.endpoint import IN_CLUSTER_PORT
    from netsim.kernel.api import KernelError
    from netsim.netns_sockets import open_in_netns
    if srv is None:
        return
    srv.kernel = kernel  # port-forward opens its sockets in pods' namespaces through it

    def setup(s: socket.socket) -> None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, IN_CLUSTER_PORT))
        s.listen(64)
    try:
        sock = open_in_netns(kernel, netns, socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC,
                             what=f"listen on {ip}:{IN_CLUSTER_PORT}", setup=setup)
        srv.serve_in_netns(sock)
    except (KernelError, OSError) as e:
        log.error("cannot serve the API inside the cluster on %s:%d: %s", ip, IN_CLUSTER_PORT, e)
        return
    log.info("serving the Kubernetes API to pods on %s:%d (%s)", ip, IN_CLUSTER_PORT, netns)
