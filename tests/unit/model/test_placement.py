"""Which process runs which node's agents (netsim.model.placement, netsim.hostagent.Role)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from netsim.hostagent import Role, RoleError, holder_gone
from netsim.model import placement
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source


@dataclass(frozen=True)
class N:
    name: str
    host: str | None = None


@dataclass(frozen=True)
class H:
    name: str


@dataclass(frozen=True)
class S:
    name: str
    nodes: tuple
    hosts: tuple = ()


def test_without_hosts_every_node_is_local_and_the_daemon_runs_them_all():
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "x"},
                          "spec": {"nodes": 3}}, Source("c.yaml"))
    assert placement.host_names(spec) == ["local"] and not placement.multi_host(spec)
    assert placement.nodes_of_host(spec, "local") == ["node-1", "node-2", "node-3"]
    d = Role.daemon(spec)
    assert d.control and d.nodes == {"node-1", "node-2", "node-3"}
    a = Role.parse(spec, "agent", "local")
    assert not a.control and a.nodes == d.nodes
    assert Role.parse(spec, "controlplane", None).nodes == frozenset()
    with pytest.raises(RoleError, match="no host 'h9' in spec.hosts \\(hosts: local\\)"):
        Role.parse(spec, "agent", "h9")


def test_with_hosts_each_agent_runs_its_hosts_nodes_and_the_daemon_none():
    spec = S("x", (N("n1", "a"), N("n2", "b"), N("n3", "a"), N("n4")), (H("a"), H("b"), H("c")))
    assert placement.placement(spec) == {"a": ["n1", "n3", "n4"], "b": ["n2"], "c": []}
    assert Role.parse(spec, "agent", "b").nodes == {"n2"}
    assert Role.daemon(spec).nodes == frozenset() and Role.daemon(spec).control


def test_a_lease_holder_is_gone_only_when_it_is_a_dead_process_of_this_machine():
    import os
    import socket
    gone = holder_gone("nosuch-cluster")
    assert gone(f"{socket.gethostname()}_controlplane_999999999")
    assert gone(f"{socket.gethostname()}_daemon_{os.getpid()}")  # alive, but no process of that cluster
    assert not gone("other-machine_controlplane_1")
    assert not gone("garbage")
