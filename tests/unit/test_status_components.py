"""`netsim status` reports the daemon's components from its health record and exits 1 when one is dead."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from netsim import daemonproc, naming, state
from netsim.cli.main import cli
from netsim.daemon import health_path
from netsim.model.cluster import default_cluster

HEALTHY = {"dns": {"state": "running", "error": None, "handlerErrors": 0},
           "workload": {"state": "running", "error": None, "handlerErrors": 0},
           "reconcile": {"state": "running", "error": None},
           "kube-proxy/node-1": {"state": "running", "error": None}}


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path))
    os.mkdir(naming.state_dir("demo"))
    # the daemon pid: this process, which is alive (and found as the cluster's daemon, as by its command line)
    monkeypatch.setattr(daemonproc, "find", lambda c: [os.getpid()] if c == "demo" else [])
    state.save(state.ClusterState("demo", "ready", default_cluster("demo").to_dict(), extra={"daemonPid": os.getpid()}))
    return "demo"


def _health(cluster: str, comps: dict) -> None:
    with open(health_path(cluster), "w") as f:
        json.dump({"pid": os.getpid(), "time": 0, "components": comps}, f)


def test_healthy_components_are_listed_and_exit_0(cluster):
    _health(cluster, HEALTHY)
    r = CliRunner().invoke(cli, ["status", "--cluster", cluster])
    assert r.exit_code == 0, r.output
    assert "components: 4/4 running" in r.output
    r = CliRunner().invoke(cli, ["status", "--cluster", cluster, "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["daemon"]["components"] == HEALTHY


def test_a_dead_component_is_named_and_status_exits_1(cluster):
    _health(cluster, {**HEALTHY, "dns": {"state": "dead", "error": "DNSLabelError: Domain label too long"},
                      "felix/node-2": {"state": "failing", "error": "KernelError: x"}})
    r = CliRunner().invoke(cli, ["status", "--cluster", cluster])
    assert r.exit_code == 1, r.output
    assert "dns: DEAD (DNSLabelError: Domain label too long)" in r.output
    assert "felix/node-2: failing" in r.output and "components: 3/5 running" in r.output
    r = CliRunner().invoke(cli, ["status", "--cluster", cluster, "-o", "json"])
    assert r.exit_code == 1 and json.loads(r.output)["daemon"]["components"]["dns"]["state"] == "dead"
