"""The cluster's Kubernetes API endpoint (HTTPS on a loopback port, served by the daemon).

certs.py (the PKI made at `up`), kubeconfig.py (the user's kubeconfig), endpoint.py (port and files),
server.py (transport, authentication, routing), handlers.py (the verbs), watch.py, patch.py,
discovery.py, openapi.py, tables.py, errors.py (Status). See docs/architecture.md, "The API endpoint".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from netsim.apiserver.server import ApiServer
    from netsim.model.cluster import ClusterSpec

log = logging.getLogger("netsim.apiserver")


def serve(cluster: str, spec: ClusterSpec, store_path: str) -> ApiServer | None:
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
