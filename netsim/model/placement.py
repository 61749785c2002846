"""Which host runs which node's agents: the placement of nodes on hosts.

A cluster spread over several hosts (issue #17) runs one `netsim agent --cluster C --host H` per host, each
running the node agents (kubelet, kube-proxy, felix, flanneld, DNS responders, speaker) of the nodes placed
on it, as each Kubernetes node runs its own kubelet and kube-proxy. A node's host is its spec's `host:`
(`spec.hosts` names the hosts); a cluster whose spec names no hosts has one host, `LOCAL_HOST`, running all
of its nodes in the daemon itself, as netsim always did.

The spec fields are read with getattr so that this module is the one place that knows how placement is
spelled: everything else (the daemon, the agent process, `up`) asks here.
"""

from __future__ import annotations

from typing import Any

LOCAL_HOST = "local"


def host_names(spec: Any) -> list[str]:
    """The hosts of a cluster, in spec order: `spec.hosts`' names, or [LOCAL_HOST] without any."""
    hosts = [getattr(h, "name", h) for h in (getattr(spec, "hosts", None) or ())]
    return [str(h) for h in hosts] or [LOCAL_HOST]


def multi_host(spec: Any) -> bool:
    """The spec names hosts: node agents run in one `netsim agent` process per host, not in the daemon."""
    return bool(getattr(spec, "hosts", None))


def host_of(spec: Any, node: Any) -> str:
    """The host a node (a NodeSpec) is placed on: its `host:`, else the spec's first host."""
    return str(getattr(node, "host", None) or host_names(spec)[0])


def nodes_of_host(spec: Any, host: str) -> list[str]:
    """Names of the nodes whose agents run on `host` (every node on LOCAL_HOST when the spec names no hosts)."""
    return [n.name for n in spec.nodes if host_of(spec, n) == host]


def placement(spec: Any) -> dict[str, list[str]]:
    """host -> its nodes, every host of the spec listed (a host may have none)."""
    out: dict[str, list[str]] = {h: [] for h in host_names(spec)}
    for n in spec.nodes:
        out.setdefault(host_of(spec, n), []).append(n.name)
    return out
