"""The README tour's policy commands on a real cluster: `explain` through a Service with a named
targetPort, `verify` from nodes and external hosts, and `verify --diff` that never leaves the live
cluster changed (also when the command is killed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim import lifecycle
from netsim.api import Cluster
from tests.conftest import run_netsim, unique_name

pytestmark = [pytest.mark.root]

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "scenarios"


@pytest.fixture(scope="module")
def tour(kernel):
    """scenarios/clusters/three-node-calico.yaml + manifests/web.yaml + deny-all.yaml, as the tour does."""
    name = unique_name("vt")
    c = None
    try:
        c = Cluster.up(SCENARIOS / "clusters" / "three-node-calico.yaml", name=name, timeout=60)
        c.apply([str(SCENARIOS / "manifests" / "web.yaml"), str(SCENARIOS / "manifests" / "deny-all.yaml")],
                timeout=90)
        yield c
    finally:
        if c is not None:
            c.close()
        lifecycle.down(kernel, name)


def test_explain_service_with_named_target_port(tour: Cluster) -> None:
    """web's Service has `targetPort: http`: explain resolves it per endpoint (it crashed with a TypeError)."""
    proc = run_netsim("explain", "default/intruder", "svc/default/web:80", "--cluster", tour.name, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "svc/default/web:80 -> 3 endpoint(s)" in proc.stdout
    assert proc.stdout.count(":8080/TCP: denied") == 3, proc.stdout
    assert "isolated by default/deny-all" in proc.stdout
    assert "kernel: timeout" in proc.stdout
