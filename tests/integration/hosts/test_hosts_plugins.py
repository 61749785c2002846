"""Every plugin and backend over three emulated hosts: pod traffic, Services, NodePorts and NetworkPolicy
work across hosts as within one (flannel vxlan is test_emulated_hosts.py's)."""

from __future__ import annotations

import pytest
from hostcluster import APP, check_traffic, spec

from tests.conftest import live_cluster

pytestmark = pytest.mark.root

COMBOS = [("flannel", "host-gw"), ("calico", "vxlan"), ("calico", "direct"), ("canal", "vxlan"), ("canal", "host-gw")]


@pytest.mark.parametrize("plugin,backend", COMBOS, ids=[f"{p}-{b}" for p, b in COMBOS])
def test_every_plugin_and_backend_across_hosts(kernel, plugin, backend):
    with live_cluster(kernel, "hp", spec(plugin, backend), manifests=APP, timeout=120) as c:
        c.wait_converged(timeout=120)
        check_traffic(c, policy=plugin != "flannel")
