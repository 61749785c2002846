"""The files a cluster's daemon keeps in the state directory, and the annotation it marks failed pods with.

Their names live here, not in netsim.daemon, because the readers (the CLI, netsim.Cluster, daemonctl) must
not import the daemon's whole wiring (every agent, the DNS and workload servers) to learn a file name: a
`netsim apply` pays that import on every call.
"""

from __future__ import annotations

import os

from netsim import naming

FAILED_ANNOTATION = "netsim.io/failed"
CONVERGED_FILE = "converged.json"
HEALTH_FILE = "health.json"
METRICS_FILE = "metrics.json"


def converged_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), CONVERGED_FILE)


def health_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), HEALTH_FILE)


def metrics_path(cluster: str) -> str:
    """Pod usage the daemon samples (netsim.model.metrics.MetricsView as JSON), read by `netsim top`."""
    return os.path.join(naming.state_dir(cluster), METRICS_FILE)


def agent_metrics_path(cluster: str, host: str) -> str:
    """The pod usage one host agent's kubelets report (its part of metrics.json; netsim.agents.metrics)."""
    return os.path.join(naming.state_dir(cluster), f"agent-{host}.{METRICS_FILE}")


def agent_metrics_paths(cluster: str) -> list[str]:
    """Every host agent's metrics file there is."""
    d = naming.state_dir(cluster)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return [os.path.join(d, n) for n in sorted(names) if n.startswith("agent-") and n.endswith(f".{METRICS_FILE}")]
