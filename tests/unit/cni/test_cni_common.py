"""Node context resolution, netns-name parsing, deterministic MACs."""

from __future__ import annotations

import os

import pytest

from cni_plugins.common import current_netns_name, local_mac, node_context, parse_node_netns
from cni_plugins.types import CniError


def test_parse_node_netns():
    assert parse_node_netns("netsim-demo.node.node-1") == ("demo", "node-1")
    assert parse_node_netns("netsim-demo-x.node.node-1") == ("demo-x", "node-1")
    assert parse_node_netns("netsim-demo.pod.default_web") is None
    assert parse_node_netns("netsim-demo-node-node-1") is None  # the old layout
    assert parse_node_netns("other") is None


def test_context_from_config_key():
    c = node_context({"netsim": {"cluster": "demo", "node": "n1"}})
    assert (c.node_ns, str(c.node_dir)) == ("netsim-demo.node.n1", "/run/netsim/demo/nodes/n1")
    c = node_context({"netsim": {"cluster": "demo", "node": "n1", "stateDir": "/tmp/x"}})
    assert str(c.node_dir) == "/tmp/x/nodes/n1"
    with pytest.raises(CniError) as exc:
        node_context({"netsim": "demo"})
    assert exc.value.code == 7


def test_context_falls_back_to_current_netns(tmp_path):
    # A /run/netns look-alike whose entry is our own namespace (same inode as /proc/self/ns/net).
    os.symlink("/proc/self/ns/net", tmp_path / "netsim-demo.node.n2")
    os.symlink("/proc/1/cmdline", tmp_path / "netsim-demo.node.zz")
    assert current_netns_name(str(tmp_path)) == "netsim-demo.node.n2"
    c = node_context({}, netns_dir=str(tmp_path))
    assert (c.cluster, c.node, c.state_dir) == ("demo", "n2", "/run/netsim/demo")
    with pytest.raises(CniError, match="cannot tell which netsim node"):
        node_context({}, netns_dir=str(tmp_path / "missing"))


def test_local_mac_is_stable_and_locally_administered():
    mac = local_mac("x")
    assert mac == local_mac("x") != local_mac("y")
    assert int(mac[:2], 16) & 0b11 == 0b10
