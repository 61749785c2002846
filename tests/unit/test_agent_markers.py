"""`apply` and `up` wait on the leader's convergence marker joined with those of the running host agents
(netsim.daemonctl.read_marker): a host's kube-proxy and felix are part of "the data plane matches"."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from netsim import daemonctl, daemonproc, naming
from netsim.hostagent import write_first_marker


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path))
    name = "unit-markers"
    (tmp_path / name).mkdir()
    return name


def fake_agent(cluster: str, host: str) -> subprocess.Popen:
    """A process with an agent's command line (what read_marker checks a marker's pid against)."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                          *daemonproc.argv(cluster, "agent", host)[1:]])
    deadline = time.monotonic() + 10
    while not daemonproc.is_process_of(p.pid, cluster) and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


def write(path, data) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


def test_the_leaders_marker_is_joined_with_the_running_agents(cluster):
    d = naming.state_dir(cluster)
    write(f"{d}/converged.json", {"rv": 50, "converged": True, "pending": [], "blockers": [], "pid": 1})
    assert daemonctl.read_marker(cluster)["rv"] == 50  # no agents: the leader's alone
    a, b = fake_agent(cluster, "h1"), fake_agent(cluster, "h2")
    try:
        write_first_marker(cluster, "h1", a.pid)
        write_first_marker(cluster, "h2", b.pid)
        m = daemonctl.read_marker(cluster)
        assert m["rv"] == 0 and not m["converged"]  # started agents count before their first pass
        write(f"{d}/agent-h1.converged.json", {"rv": 48, "blockers": [], "pid": a.pid})
        write(f"{d}/agent-h2.converged.json", {"rv": 60, "blockers": ["kube-proxy on node-2: held"], "pid": b.pid})
        m = daemonctl.read_marker(cluster)
        assert m["rv"] == 48 and not m["converged"]
        assert m["blockers"] == ["agent of host h1: catching up with rv 50",
                                 "host h2: kube-proxy on node-2: held"] == m["pending"]
        write(f"{d}/agent-h2.converged.json", {"rv": 60, "blockers": [], "pid": b.pid})
        # h1 has not read as far as the leader: what the leader wrote after its last pass (an EndpointSlice
        # for a pod that turned Ready) may not be in h1's kube-proxy and CoreDNS yet
        m = daemonctl.read_marker(cluster)
        assert not m["converged"] and m["blockers"] == ["agent of host h1: catching up with rv 50"]
        write(f"{d}/agent-h1.converged.json", {"rv": 50, "blockers": [], "pid": a.pid})
        assert daemonctl.read_marker(cluster)["converged"]
        b.kill()
        b.wait()
        # a dead agent's marker no longer counts (its nodes go NotReady; their pods are not waited for)
        write(f"{d}/agent-h1.converged.json", {"rv": 55, "blockers": [], "pid": a.pid})
        assert daemonctl.read_marker(cluster)["rv"] == 50
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_up_waits_for_every_node_to_register_and_names_an_agent_that_died(cluster):
    """`up` on several hosts starts the host agents first and waits until each has registered its nodes
    (daemonctl._wait_registered): an agent that exits before registering fails `up` with its log's tail,
    at once, not after the timeout."""
    from netsim.hostagent import log_path
    from netsim.storefactory import open_store

    node = lambda n: {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}  # noqa: E731
    store = open_store(cluster)
    a, b = fake_agent(cluster, "h1"), fake_agent(cluster, "h2")
    try:
        store.create(node("node-1"))
        store.create(node("node-2"))
        daemonctl._wait_registered(cluster, ["node-1", "node-2"], {"h1": a.pid, "h2": b.pid}, 5)
        with open(log_path(cluster, "h2"), "w") as f:
            f.write("Traceback (most recent call last):\nOSError: no such host address\n")
        b.kill()
        b.wait()
        started = time.monotonic()
        with pytest.raises(daemonctl.DaemonError) as e:
            daemonctl._wait_registered(cluster, ["node-1", "node-2", "node-3"], {"h1": a.pid, "h2": b.pid}, 30)
        assert time.monotonic() - started < 10
        assert "nodes node-3 not registered: the agent of host h2 exited" in str(e.value)
        assert "OSError: no such host address" in str(e.value)
        with pytest.raises(daemonctl.DaemonError, match=r"nodes node-3 not registered: not within 0s"):
            daemonctl._wait_registered(cluster, ["node-1", "node-3"], {"h1": a.pid}, 0.2)
    finally:
        store.close()
        for p in (a, b):
            p.kill()
            p.wait()
