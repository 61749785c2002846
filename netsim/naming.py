"""Names of everything a cluster makes, in one place.

All namespaces are `netsim-<cluster>-<role>...` so leftovers of a crashed run can be found by name; all
files live under /run/netsim/<cluster>/. Interface names fit the kernel's 15 characters.
"""

from __future__ import annotations

import os

PREFIX = "netsim-"
STATE_ROOT = os.environ.get("NETSIM_STATE_ROOT", "/run/netsim")
UNDERLAY_BRIDGE = "underlay"
UPLINK = "eth0"


def cluster_prefix(cluster: str) -> str:
    return f"{PREFIX}{cluster}-"


def fabric_ns(cluster: str) -> str:
    return f"{PREFIX}{cluster}-fabric"


def node_ns(cluster: str, node: str) -> str:
    return f"{PREFIX}{cluster}-node-{node}"


def host_ns(cluster: str, host: str) -> str:
    return f"{PREFIX}{cluster}-host-{host}"


def pod_ns(cluster: str, namespace: str, pod: str) -> str:
    return f"{PREFIX}{cluster}-pod-{namespace}-{pod}"


def fabric_port_for_node(index: int) -> str:
    """The fabric end of node `index`'s uplink (n0, n1, ...)."""
    return f"n{index}"


def fabric_port_for_host(index: int) -> str:
    return f"h{index}"


def state_dir(cluster: str) -> str:
    return os.path.join(STATE_ROOT, cluster)


def node_state_dir(cluster: str, node: str) -> str:
    return os.path.join(state_dir(cluster), "nodes", node)


def owned_by(cluster: str, netns_name: str, other_clusters: list[str]) -> bool:
    """Whether `netns_name` belongs to `cluster` and not to another cluster whose name extends it
    (cluster `demo` vs `demo-2`: `netsim-demo-2-node-a` is demo-2's)."""
    if not netns_name.startswith(cluster_prefix(cluster)):
        return False
    return not any(o != cluster and o.startswith(cluster + "-") and netns_name.startswith(cluster_prefix(o))
                   for o in other_clusters)
