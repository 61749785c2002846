"""The scenario library on a 3-host, 9-node cluster: scenarios of scenarios/ run unchanged except for
their cluster, which gets `spec.hosts` (three emulated hosts) and nine nodes dealt round-robin over them,
so every cross-node path of a scenario (node-1 -> node-2 and so on) crosses hosts over the hosts' VXLAN.
Expectations that name node IPs still hold: nodes keep their addresses whatever host they run on.
This file: networking, Services and DNS (policy and self-healing: test_hosts_scenarios_policy.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostcluster import run_library_scenario_on_three_hosts

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.mark.parametrize("scenario", ["three-networks", "services", "dns"])
def test_library_scenario_on_three_hosts(tmp_path: Path, scenario: str) -> None:
    run_library_scenario_on_three_hosts(scenario, tmp_path)
