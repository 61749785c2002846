"""Finding a cluster's daemon by its command line, and the kill hooks the root tests use."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from netsim import daemonproc, pidstate, testhooks


def test_marker_matches_only_that_cluster():
    assert daemonproc._is_daemon_of(daemonproc.argv("demo"), "demo")
    assert not daemonproc._is_daemon_of(daemonproc.argv("demo-2"), "demo")
    assert not daemonproc._is_daemon_of(daemonproc.argv("demo"), "demo-2")
    assert not daemonproc._is_daemon_of(["python", "-m", "netsim.cli.main", "demo"], "demo")


def test_find_sees_a_process_with_the_marker_and_not_after_it_ends():
    # A stand-in with the daemon's command-line shape: `python -c ... -m netsim.daemon NAME` ends the same.
    name = "unit-daemonproc-x"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", daemonproc.MODULE, name])
    try:
        deadline = time.monotonic() + 10
        while daemonproc.find(name) != [proc.pid] and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child has exec'd (its command line is the parent's until then)
        assert daemonproc.find(name) == [proc.pid] and daemonproc.is_daemon(proc.pid, name)
        assert not daemonproc.find(name + "-2")
    finally:
        proc.kill()
        proc.wait()
    assert daemonproc.find(name) == [] and not daemonproc.is_daemon(proc.pid, name)


def test_checkpoint_kills_on_the_named_point_and_pass():
    code = ("from netsim import testhooks\nfor i in range(5):\n    testhooks.checkpoint('p')\n"
            "    print(i, flush=True)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"NETSIM_TEST_HOOK": "kill:p@3", "PATH": "/usr/bin:/bin"})
    assert r.returncode == -9 and r.stdout.split() == ["0", "1"]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"NETSIM_TEST_HOOK": "kill:other", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.split() == ["0", "1", "2", "3", "4"]
    testhooks.checkpoint("p")  # unset here: nothing happens


def test_roles_of_the_clusters_processes_by_their_command_line():
    assert daemonproc.role_of(daemonproc.argv("demo"), "demo") == ("daemon", None)
    assert daemonproc.role_of(daemonproc.argv("demo", "controlplane"), "demo") == ("controlplane", None)
    assert daemonproc.role_of(daemonproc.argv("demo", "agent", "h1"), "demo") == ("agent", "h1")
    assert daemonproc.role_of(daemonproc.argv("demo", "agent", "h1"), "demo-2") is None
    assert daemonproc.role_of(daemonproc.argv("demo-2", "controlplane"), "demo") is None
    assert daemonproc.role_of([*daemonproc.argv("demo"), "--bogus"], "demo") is None
    # `find` (the daemon) never counts an agent or a control plane; `find_all` sees them all
    assert not daemonproc._is_daemon_of(daemonproc.argv("demo", "agent", "h1"), "demo")


def test_find_all_sees_agents_and_control_planes():
    name = "unit-daemonproc-y"
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *daemonproc.argv(name, *r)[1:]])
             for r in (("agent", "h1"), ("controlplane",))]
    try:
        deadline = time.monotonic() + 10
        while len(daemonproc.find_all(name)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert daemonproc.find_all(name) == {procs[0].pid: ("agent", "h1"), procs[1].pid: ("controlplane", None)}
        assert daemonproc.find(name) == [] and daemonproc.is_process_of(procs[0].pid, name)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert daemonproc.find_all(name) == {}


STATUS = "Name:\tpython3\nState:\t{state}\nTgid:\t42\nSigQ:\t0/63\nSigPnd:\t{sig}\nShdPnd:\t{shd}\nSigBlk:\t0\n"


@pytest.mark.parametrize("state,sig,shd,dead", [
    ("S (sleeping)", "0000000000000000", "0000000000000000", False),
    ("R (running)", "0000000000004000", "0000000000000000", False),  # SIGTERM pending: it may still run
    ("D (disk sleep)", "0000000000000100", "0000000000000000", True),  # SIGKILL pending, stuck in the kernel
    ("D (disk sleep)", "0000000000000000", "0000000000000100", True),  # on the thread group
    ("Z (zombie)", "0000000000000000", "0000000000000000", True),
    ("X (dead)", "0000000000000000", "0000000000000000", True),
])
def test_a_killed_process_counts_as_dying_before_it_leaves_the_kernel(state, sig, shd, dead):
    assert pidstate.killed(STATUS.format(state=state, sig=sig, shd=shd)) is dead


def test_dying_on_real_processes():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not pidstate.dying(proc.pid)
        proc.kill()
        deadline = time.monotonic() + 10
        while not pidstate.dying(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pidstate.dying(proc.pid)  # a zombie: not yet reaped
    finally:
        proc.kill()
        proc.wait()
    assert pidstate.dying(proc.pid)  # reaped: gone


def test_a_starting_process_whose_command_line_reads_empty_has_not_exited(monkeypatch):
    # Right after Popen the kernel may not have set the new program's argv yet: /proc/PID/cmdline reads
    # empty. That is a process starting, not one gone (daemonctl's wait for the host agents).
    proc = subprocess.Popen(["sleep", "30"])
    try:
        monkeypatch.setattr(daemonproc, "_cmdline", lambda pid: [])
        assert not daemonproc.exited(proc.pid, "zz9")
        monkeypatch.setattr(daemonproc, "_cmdline", lambda pid: ["sleep", "30"])
        assert daemonproc.exited(proc.pid, "zz9")  # another program
        monkeypatch.setattr(daemonproc, "_cmdline", lambda pid: daemonproc.argv("zz9", "agent", "h"))
        assert not daemonproc.exited(proc.pid, "zz9")
    finally:
        proc.kill()
        proc.wait()
    assert daemonproc.exited(proc.pid, "zz9")  # gone


def test_thread_stats_reads_each_threads_state_and_is_none_for_a_gone_process():
    import signal

    from netsim import pidstate
    child = subprocess.Popen([sys.executable, "-c",
                              "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); "
                              "print('up', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        running = pidstate.thread_stats(child.pid)
        assert running is not None and len(running) == 2 and all(s in ("S", "R") for s, _ in running)
        child.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not all(s == "T" for s, _ in pidstate.thread_stats(child.pid) or []):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert pidstate.thread_stats(child.pid) is None
