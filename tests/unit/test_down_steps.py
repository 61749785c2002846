"""The steps of `down` (issue #18: 100 nodes / 10,000 pods under 10 s): each follows the number of objects
with as little of netsim's own work per object as the kernel allows. Counted, never timed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from netsim import daemonproc, fanout, fsclean, lifecycle, naming
from netsim.kernel.fake import FakeKernel


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setattr(naming, "STATE_ROOT", str(tmp_path / "state"))
    monkeypatch.setattr(lifecycle, "ETC_NETNS", str(tmp_path / "etc-netns"))
    (tmp_path / "state").mkdir()
    (tmp_path / "etc-netns").mkdir()
    return tmp_path


def test_down_removes_the_directories_while_the_namespaces_go(root, monkeypatch):
    """The namespaces wait on RCU grace periods, the directories on the ext4 journal: in turn, a 1,000-pod
    `down` spent 1.0 + 1.1 + 0.8 s in the three sweeps. The pods' namespaces here are only removed once the
    /etc/netns sweep has started (a `down` that sweeps after the namespaces never gets there)."""
    pods = [naming.pod_ns("ovl", "default", f"p{i}") for i in range(20)]
    for n in pods:
        (root / "etc-netns" / n).mkdir()
        (root / "etc-netns" / n / "resolv.conf").write_text("nameserver 10.96.0.10\n")
    (root / "state" / "ovl" / "nodes" / "node-1").mkdir(parents=True)
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: list(pods))
    monkeypatch.setattr(lifecycle.netns_mod, "pids_in_all", lambda names: set())
    sweeping = threading.Event()
    real_rmtrees = fsclean.rmtrees

    def rmtrees(paths, *a, **kw):
        sweeping.set()
        return real_rmtrees(paths, *a, **kw)
    monkeypatch.setattr(fsclean, "rmtrees", rmtrees)
    k = FakeKernel()
    for n in pods:
        k.netns_create(n)
    seen = []
    real_many = k.netns_delete_many

    def delete_many(names):
        seen.append(sweeping.wait(10))
        real_many(names)
    monkeypatch.setattr(k, "netns_delete_many", delete_many)
    report = lifecycle.down(k, "ovl")
    assert seen == [True]
    assert k.netns_list() == [] and not os.listdir(root / "etc-netns") and not (root / "state" / "ovl").exists()
    assert {"daemons", "processes", "namespaces", "etc_netns", "state", "removal"} <= set(report.phases)


def test_many_directories_are_removed_without_a_future_each(tmp_path, monkeypatch):
    """A future per path cost the submitting thread ~0.1 ms each; the threads take the next path
    themselves (netsim.fanout)."""
    paths = [tmp_path / f"d{i}" for i in range(200)]
    for p in paths:
        (p / "x").mkdir(parents=True)
    submits = []
    real_submit = ThreadPoolExecutor.submit
    monkeypatch.setattr(ThreadPoolExecutor, "submit", lambda self, *a, **kw: submits.append(1) or real_submit(self, *a, **kw))
    fsclean.rmtrees(str(p) for p in paths)
    assert not os.listdir(tmp_path)
    assert len(submits) <= fsclean.WORKERS


def test_fanout_tries_every_item_and_raises_the_first_failure():
    done = []

    def fn(i):
        done.append(i)
        if i % 7 == 3:
            raise OSError(i, "boom")
    with pytest.raises(OSError):
        fanout.each(fn, range(50), 4)
    assert sorted(done) == list(range(50))
    with ThreadPoolExecutor(3) as ex:
        fanout.each(done.append, range(100, 130), 8, ex)
    assert sorted(done)[50:] == list(range(100, 130))


def test_kill_waits_for_every_process_on_its_pidfd_without_polling(monkeypatch):
    """Each process was polled every 10 ms until it was gone (a tick per process at least); a pidfd per
    process is readable once it has exited, and our own children are reaped."""
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(4)]
    sleeps = []
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: sleeps.append(s))
    try:
        assert lifecycle._kill({p.pid for p in procs}) == 4
        for p in procs:
            with pytest.raises(ProcessLookupError):  # dead and reaped: no zombie left
                os.kill(p.pid, 0)
        assert sleeps == []
    finally:
        monkeypatch.undo()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_down_walks_proc_once_to_find_the_clusters_processes(root, monkeypatch):
    """`daemonproc.find_all` finds the daemon too: one walk of /proc, not two (the etcd's own, by its data
    directory, aside)."""
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: [])
    monkeypatch.setattr(lifecycle.etcd_config, "teardown", lambda cluster: 0)
    walks = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p=".": (walks.append(1) if p == "/proc" else None) or real_listdir(p))
    lifecycle.down(FakeKernel(), "walk")
    assert len(walks) == 1
    assert daemonproc.find_all  # the walk that is left


def test_down_times_its_steps(root, monkeypatch):
    monkeypatch.setattr(lifecycle, "owned_netns", lambda name: [])
    t0 = time.monotonic()
    report = lifecycle.down(FakeKernel(), "steps")
    assert sum(v for k, v in report.phases.items() if k in ("daemons", "processes", "removal")) \
        <= time.monotonic() - t0 + 0.01


def test_down_goes_on_once_the_daemon_can_act_no_more_and_awaits_its_exit_last(root, monkeypatch):
    """A 10,000-pod daemon takes the kernel a while to free (1.4 GB, ~20,000 sockets); once every thread
    of it is in do_exit it changes nothing more, so the namespaces go meanwhile and its exit is awaited
    at the end; it is gone when `down` returns."""
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not lifecycle._stopped(daemon.pid)
        pods = [naming.pod_ns("early", "default", "p0")]
        monkeypatch.setattr(lifecycle.daemonproc, "find_all", lambda cluster: {daemon.pid: ("daemon", None)})
        monkeypatch.setattr(lifecycle, "owned_netns", lambda name: list(pods))
        monkeypatch.setattr(lifecycle.netns_mod, "pids_in_all", lambda names: set())
        events = []
        real_exited = lifecycle._Killing.wait_exited
        monkeypatch.setattr(lifecycle._Killing, "wait_exited",
                            lambda self, *a: (self.count and events.append("exited")) or real_exited(self, *a))
        k = FakeKernel()
        k.netns_create(pods[0])
        real_many = k.netns_delete_many
        monkeypatch.setattr(k, "netns_delete_many", lambda names: events.append(
            ("namespaces", lifecycle._stopped(daemon.pid))) or real_many(names))
        report = lifecycle.down(k, "early")
        assert events == [("namespaces", True), "exited"]
        assert report.processes == 1 and "daemons_exit" in report.phases
        with pytest.raises(ProcessLookupError):  # exited and reaped
            os.kill(daemon.pid, 0)
        assert lifecycle._stopped(daemon.pid)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
