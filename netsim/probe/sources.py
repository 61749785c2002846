"""Where a probe starts: the netns behind a source label ("ns/pod", "node/NAME", "host/NAME").

Labels are the ones docs/architecture.md gives `netsim probe --from`; `node/` and `host/` win over a
Kubernetes namespace of that name, as they do on the command line.
"""

from __future__ import annotations

from netsim import naming
from netsim.model.errors import UsageError


def source_netns(cluster: str, label: str) -> str:
    """The namespace a probe from `label` is sent from (a pod's sandbox, a node, an external host)."""
    kind, sep, name = label.partition("/")
    if not sep or not kind or not name or "/" in name:
        raise UsageError(f"probe source {label!r}: expected ns/pod, node/NAME or host/NAME")
    if kind == "node":
        return naming.node_ns(cluster, name)
    if kind == "host":
        return naming.host_ns(cluster, name)
    return naming.pod_ns(cluster, kind, name)
