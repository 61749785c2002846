"""Workload shards on the real kernel: past a process's descriptor limit, pods' ports are served from shard
processes started on demand, which answer as the agent's own server does, are found by `down` by their
command line, and never outlive the agent."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netsim import daemonproc
from netsim.kernel import netns as netns_mod

pytestmark = pytest.mark.root

CHILD = Path(__file__).resolve().parent / "shards_child.py"


@pytest.fixture
def tag():
    """A fresh tag; at teardown the shards of its cluster are killed and its namespaces removed (a failed
    child must leave nothing behind)."""
    tag = secrets.token_hex(3)
    yield tag
    for pid in daemonproc.find_all(f"twlshard{tag}"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for name in netns_mod.list_names(f"netsim-twl{tag}-"):
        netns_mod.remove(name)


def run_child(tag: str, mode: str) -> dict:
    proc = subprocess.run([sys.executable, str(CHILD), f"twlshard{tag}", tag, mode], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pods_past_the_descriptor_limit_are_served_by_shards_that_answer_as_the_agent_does(tag):
    out = run_child(tag, "story")
    assert out["served"] == [True, True, True]
    # The agent's own server takes the first pod; each next one fills a shard of its own.
    assert out["placement"] == [None, 1, 2]
    assert out["ready"] == [True, True, True]
    assert out["answers"] == [["d/p0", "d/p0"], ["d/p1", "d/p1"], ["d/p2", "d/p2"]]
    assert out["counts"] == {"d/p0": 2, "d/p1": 2, "d/p2": 2}
    assert out["health_shards"] == [[1, "running", 1], [2, "running", 1]]
    # A shard killed takes its pod's listeners; the pod is served again at once by a new shard (the other
    # shard is full), with no call from the kubelet.
    assert out["replacement"] == 3 and out["reserved"] is True
    assert out["killed_health"] == [[1, "dead"], [2, "running"], [3, "running"]]
    assert out["answer_again"]["pod"] == "d/p1"
    assert out["unserved"] is True and out["after_unserve"] == "ECONNREFUSED"
    assert out["pods"] == ["d/p0", "d/p1"]
    assert out["local_again"] == [True, None, "d/p0b"]
    assert out["exited"] == [True, True, True]


def test_a_shard_is_a_process_of_its_cluster_and_never_outlives_the_agent(tag):
    cluster = f"twlshard{tag}"
    out = run_child(tag, "orphan")
    (pid,) = out["shard_pids"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid in daemonproc.find_all(cluster):
        time.sleep(0.05)
    assert pid not in daemonproc.find_all(cluster)


def test_a_shard_command_line_has_the_workload_role():
    line = [sys.executable, "-m", "netsim.workload.shard", "abc"]
    assert daemonproc.role_of(line, "abc") == ("workload", None)
    assert daemonproc.role_of(line, "ab") is None
    assert daemonproc.role_of([*line, "x"], "abc") is None
