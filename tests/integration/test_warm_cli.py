"""The warm CLI process on a real cluster built by `netsim up`: commands handed to it print, read stdin and
exit exactly as the same commands run cold; signals reach them; `down` removes it; it leaves by itself when
its socket is no longer its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from netsim import daemonproc, naming
from netsim.cli import thin, warm
from tests.conftest import NETSIM, run_netsim, unique_name

pytestmark = pytest.mark.root

GOOD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {colour: blue}
"""
BAD = """\
apiVersion: v1
kind: Service
metadata: {name: broken}
spec:
  ports: [{port: 70000}]
"""


def _log_lines(name: str) -> list[str]:
    try:
        with open(os.path.join(naming.state_dir(name), "cli.log")) as f:
            return [line for line in f if "`netsim " in line]
    except FileNotFoundError:
        return []


def _warm_pids(name: str) -> list[int]:
    """The warm process and its children (the spare, commands): they share its marker."""
    return sorted(pid for pid, (role, _) in daemonproc.find_all(name).items() if role == "cli")


def _servers(name: str) -> list[int]:
    """The warm processes proper: those whose parent is not one."""
    pids = _warm_pids(name)
    return [p for p in pids if _ppid(p) not in pids]


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):  # gone (ENOENT, or ESRCH while it is being reaped)
        return 0


def _command_child(name: str, client: int) -> int | None:
    """The warm child running `client`'s command: the one whose stdout is the client's."""
    try:
        theirs = os.readlink(f"/proc/{client}/fd/1")
    except OSError:
        return None
    for pid in _warm_pids(name):
        try:
            if os.readlink(f"/proc/{pid}/fd/1") == theirs:
                return pid
        except OSError:
            continue
    return None


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or _zombie(pid)


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def cluster(kernel):
    from netsim import lifecycle
    name = unique_name("wc")
    try:
        run_netsim("up", "--name", name, "--timeout", "90", timeout=150)
        assert _wait_for(lambda: warm.running(name), 30), "no warm CLI process after `netsim up`"
        yield name
    finally:
        lifecycle.down(kernel, name)


def _both(name: str, *args: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess, ...]:
    """The command handed to the warm process, then run cold; asserts the warm process did take it."""
    before = len(_log_lines(name))
    hot = subprocess.run([*NETSIM, *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert len(_log_lines(name)) == before + 1, f"the warm process did not run `netsim {' '.join(args)}`"
    cold = subprocess.run([*NETSIM, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, thin.NO_WARM_ENV: "1"})
    assert len(_log_lines(name)) == before + 1
    return hot, cold


def test_up_starts_one_warm_process_of_the_cluster(cluster):
    assert len(_servers(cluster)) == 1
    assert os.stat(thin.socket_path(cluster)).st_mode & 0o777 == 0o600


def test_commands_print_read_stdin_and_exit_as_they_do_cold(cluster):
    c = ("--cluster", cluster)
    run_netsim("apply", "-f", "-", *c, input=GOOD)
    for args, stdin in [
        (("apply", "-f", "-", *c), GOOD),                                   # unchanged, from stdin
        (("apply", "-f", "-", *c), BAD),                                    # refused: exit 2, named field
        (("apply", "-f", "/nonexistent/x.yaml", *c), None),                 # no such file
        (("get", "configmap", "settings", "-o", "jsonpath={.data.colour}", *c), None),
        (("get", "configmap", "nothere", *c), None),                        # NotFound
        (("get", "nodes", "-o", "name", *c), None),
        (("describe", "configmap", "settings", *c), None),
        (("get", "pods", "--bogus-flag", *c), None),                        # click's usage error
    ]:
        hot, cold = _both(cluster, *args, stdin=stdin)
        assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr), args
    hot, _ = _both(cluster, "apply", "-f", "-", *c, stdin=BAD)
    assert hot.returncode == 2 and "70000" in hot.stderr


def test_a_relative_path_is_read_from_the_callers_directory(cluster, tmp_path):
    (tmp_path / "cm.yaml").write_text(GOOD)
    before = len(_log_lines(cluster))
    out = subprocess.run([*NETSIM, "apply", "-f", "cm.yaml", "--cluster", cluster, "--no-wait"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "configmap/settings" in out.stdout
    assert len(_log_lines(cluster)) == before + 1


def test_another_locale_runs_the_command_cold(cluster):
    before = len(_log_lines(cluster))
    out = subprocess.run([*NETSIM, "get", "nodes", "-o", "name", "--cluster", cluster], capture_output=True,
                         text=True, timeout=60,
                         env={**os.environ, "LC_ALL": "POSIX" if os.environ.get("LC_ALL") else "C.UTF-8"})
    assert out.returncode == 0 and out.stdout.startswith("node/")
    assert len(_log_lines(cluster)) == before


def _waiting(cluster: str) -> tuple[subprocess.Popen, int]:
    """A command that waits (for a ConfigMap that never comes) until it is stopped, started warm; with the
    pid of the warm child running it."""
    proc = subprocess.Popen([*NETSIM, "wait", "configmap/never", "--for=create", "--timeout", "60s",
                             "--cluster", cluster], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: _command_child(cluster, proc.pid) is not None), "the command did not start warm"
    return proc, _command_child(cluster, proc.pid) or 0


def test_ctrl_c_reaches_the_command(cluster):
    proc, child = _waiting(cluster)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted" in err
    assert _wait_for(lambda: _gone(child))


def test_sigterm_ends_the_command_and_the_client_by_that_signal(cluster):
    proc, child = _waiting(cluster)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM
    assert _wait_for(lambda: _gone(child))


def test_a_killed_client_takes_its_command_with_it(cluster):
    proc, child = _waiting(cluster)
    proc.kill()
    proc.wait(timeout=10)
    assert _wait_for(lambda: _gone(child)), "the command outlived its client"


def test_a_second_warm_process_takes_the_socket_and_the_first_leaves(cluster):
    first = _servers(cluster)
    second = subprocess.Popen(warm.argv(cluster), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    # The first leaves, and its spare with it.
    assert _wait_for(lambda: _servers(cluster) == [second.pid] and all(_ppid(p) == second.pid for p in
                                                                       _warm_pids(cluster) if p != second.pid), 20)
    assert first != [second.pid]
    out = run_netsim("get", "nodes", "-o", "name", "--cluster", cluster)
    assert out.stdout.startswith("node/")


def test_down_removes_the_warm_process_with_the_cluster(kernel):
    name = unique_name("wd")
    try:
        run_netsim("up", "--name", name, "--no-daemon", timeout=120)
        assert _wait_for(lambda: warm.running(name), 30)
        assert _wait_for(lambda: len(_warm_pids(name)) == 2)  # the warm process and its spare
        pids = _warm_pids(name)
        report = json.loads(run_netsim("down", "--name", name, "-o", "json").stdout)[0]
        assert report["processes"] >= 2
        assert all(_gone(p) for p in pids)
    finally:
        from netsim import lifecycle
        lifecycle.down(kernel, name)


def test_a_warm_process_whose_cluster_is_gone_leaves_by_itself(tmp_path):
    root = tmp_path / "state"
    (root / "ghost").mkdir(parents=True)
    env = {**os.environ, "NETSIM_STATE_ROOT": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "netsim.cli.warm", "ghost"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: (root / "ghost" / "cli.sock").exists(), 30)
        os.unlink(root / "ghost" / "cli.sock")
        assert proc.wait(timeout=10) == 0
        assert "its socket is gone" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:  # gone (ENOENT, or ESRCH while it is being reaped)
        return True
