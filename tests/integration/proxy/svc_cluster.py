"""Helpers for the kube-proxy tests on whole clusters (root), imported by the test modules here.

A cluster here is two nodes and one external host (`client`, 203.0.113.10, routed through the fabric),
built with `netsim.api.Cluster.up` and removed by the fixture finaliser whatever the test did. Cluster
names are `h12<hex>` so their namespaces (`netsim-h12...-`) are recognisably ours.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator

from tests.conftest import live_cluster

HOST_IP = "203.0.113.10"

# (plugin, backend): every data path netsim builds. The full test set runs on FULL, a core on all.
COMBOS: tuple[tuple[str, str], ...] = (
    ("flannel", "vxlan"), ("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"), ("canal", "vxlan"),
)
FULL = COMBOS[0]


def combo_id(combo: tuple[str, str]) -> str:
    return f"{combo[0]}-{combo[1]}"


def cluster_spec(plugin: str, backend: str) -> dict:
    # One zone per node (topology.kubernetes.io/zone), for trafficDistribution: PreferClose.
    return {"nodes": [{"name": f"node-{i}", "labels": {"topology.kubernetes.io/zone": f"zone-{i}"}}
                      for i in (1, 2)],
            "network": {"plugin": plugin, "backend": backend},
            "externalHosts": [{"name": "client", "ip": HOST_IP}]}


@contextlib.contextmanager
def running_cluster(plugin: str, backend: str) -> Iterator:
    """A fresh two-node cluster; always torn down (also when `up` half-fails or the test fails)."""
    with live_cluster(None, "h12", cluster_spec(plugin, backend), timeout=90) as c:
        yield c


def node_addresses(c, node: str) -> set[str]:
    """Every IPv4 address held in a node's namespace (eth0, cni0, flannel.1, vxlan.calico, ...)."""
    rec = c.state.node(node)
    out = c.kernel.run(rec["netns"], ["ip", "-4", "-o", "addr", "show"]).stdout
    addrs = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            addrs.add(str(ipaddress.ip_interface(parts[parts.index("inet") + 1]).ip))
    return addrs


def node_ip(c, node: str) -> str:
    return c.state.node(node)["ip"]


def node_port(c, svc: str, namespace: str = "default") -> int:
    return int(c.service(namespace, svc)["spec"]["ports"][0]["nodePort"])


def served(results) -> list[str | None]:
    return [r.served_by for r in results]


def describe(results) -> str:
    """Short text of probe outcomes for assertion messages."""
    return "; ".join(f"{r.outcome} by={r.served_by} client={r.client_ip} err={r.error}" for r in results)

