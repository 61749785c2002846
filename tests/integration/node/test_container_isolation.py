"""Who a container `command` runs as, and what it can reach: securityContext, the cluster's default user,
runAsNonRoot, capabilities, a private mount namespace that hides every cluster's state, and the state's
own file modes. One small cluster for the module."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netsim import lifecycle, naming
from netsim.api import Cluster
from netsim.model.security import CAP_NUMBER
from netsim.node.security import DEFAULT_CAPS
from tests.conftest import unique_name

pytestmark = pytest.mark.root

PROBE = ("echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); "
         "if cat /run/netsim/*/store.db >/dev/null 2>&1; then echo store=readable; else echo store=hidden; fi; "
         "echo clusters=$(ls /run/netsim | wc -l); grep CapEff /proc/self/status; "
         "echo host=$(hostname); grep -c 'nameserver 10.96.0.10' /etc/resolv.conf; "
         # setns() into any network namespace, even its own, needs CAP_SYS_ADMIN (pid 1's may be unopenable)
         "if nsenter --net=/proc/self/ns/net true 2>/dev/null; then echo enter=yes; else echo enter=no; fi; "
         "python3 -c 'import socket; s = socket.socket(); s.bind((\"0.0.0.0\", 80)); print(\"bound=80\")'; "
         "echo done; sleep 600")

def _pod(name: str, pod_sc: dict | None = None, sc: dict | None = None, command: list[str] | None = None) -> dict:
    container = {"name": "c", "image": "x", "command": command or ["sh", "-c", PROBE],
                 **({"securityContext": sc} if sc else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], **({"securityContext": pod_sc} if pod_sc else {})}}


MANIFEST = [
    _pod("plain"),
    _pod("chosen", {"runAsUser": 1234, "runAsGroup": 2345, "supplementalGroups": [3456]}, {"runAsUser": 4321}),
    _pod("root", None, {"runAsUser": 0, "runAsGroup": 0}),
    _pod("refused", {"runAsNonRoot": True}, {"runAsUser": 0}, ["sleep", "600"]),
]


@pytest.fixture(scope="module")
def cluster(kernel) -> Iterator[Cluster]:
    name = unique_name("sec")
    try:
        c = Cluster.up({"spec": {"nodes": 1}}, name=name)
        c.apply(MANIFEST, wait=False)
        yield c
        c.close()
    finally:
        lifecycle.down(kernel, name)


def _log(c: Cluster, pod: str, timeout: float = 30.0) -> dict[str, str]:
    path = Path(naming.state_dir(c.name)) / "logs" / f"default_{pod}_c.log"
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if "done" in text:
            break
        time.sleep(0.1)
    assert "done" in text, f"{pod}: {text!r}"
    out = {}
    for line in text.splitlines():
        key, sep, value = line.replace(":\t", "=").partition("=")
        if sep:
            out[key.strip()] = value.strip()
        elif line.strip().isdigit():
            out["resolv"] = line.strip()
    return out


def _caps(names: tuple[str, ...]) -> int:
    return sum(1 << CAP_NUMBER[n] for n in names)


def test_a_container_without_a_user_runs_as_nobody_and_cannot_see_the_state(cluster):
    seen = _log(cluster, "plain")
    assert seen["uid"] == "65534" and seen["gid"] == "65534", seen
    assert seen["store"] == "hidden" and seen["clusters"] == "0", seen  # /run/netsim is masked
    assert seen["enter"] == "no", seen  # no capabilities: no other namespace
    assert int(seen["CapEff"], 16) == 0, seen
    assert seen["host"] == "plain" and seen["resolv"] == "1", seen  # its own UTS name and resolv.conf
    assert seen["bound"] == "80", seen  # ip_unprivileged_port_start=0 in the pod's netns, as containerd


def test_security_context_users_container_over_pod(cluster):
    seen = _log(cluster, "chosen")
    assert seen["uid"] == "4321" and seen["gid"] == "2345", seen
    assert seen["groups"].split() == ["2345", "3456"], seen
    assert seen["store"] == "hidden" and int(seen["CapEff"], 16) == 0, seen


def test_a_root_container_keeps_only_the_runtime_default_capabilities(cluster):
    seen = _log(cluster, "root")
    assert seen["uid"] == "0", seen
    assert int(seen["CapEff"], 16) == _caps(DEFAULT_CAPS), seen  # no CAP_SYS_ADMIN: cannot unmask
    assert seen["store"] == "hidden" and seen["clusters"] == "0", seen
    assert seen["enter"] == "no", seen  # nor enter the host's (or any other) network namespace


def test_run_as_non_root_refuses_uid_0_as_the_kubelet_does(cluster):
    deadline = time.monotonic() + 30
    state: dict = {}
    while time.monotonic() < deadline:
        pod = cluster.store.get("Pod", "default", "refused") or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        state = statuses[0].get("state", {}) if statuses else {}
        if "waiting" in state:
            break
        time.sleep(0.1)
    waiting = state.get("waiting") or {}
    assert waiting.get("reason") == "CreateContainerConfigError", state
    assert waiting["message"].startswith("container's runAsUser breaks non-root policy (pod: \"refused_default("), state
    assert pod["status"]["phase"] == "Pending"


def test_state_files_are_0600_in_0700_directories(cluster):
    _log(cluster, "plain")  # the daemon has written its logs, records and store by now
    root = naming.state_dir(cluster.name)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        if os.path.basename(dirpath) == "volumes" and os.path.basename(os.path.dirname(os.path.dirname(dirpath))) \
                == "pods":
            # A pod's volumes are the container's to read (the kubelet's atomic writer: 0755 directories, files
            # per defaultMode), as its own user; behind this 0700 directory no other host user reaches them.
            dirnames.clear()
            continue
        for f in filenames:
            path = os.path.join(dirpath, f)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                assert stat.S_IMODE(mode) == 0o600, path
                seen += 1
    assert seen >= 5  # cluster.json, store.db(-wal, -shm), daemon.log, converged.json, a log, records


def _verbs() -> list[list[str]]:
    """Every leaf command of the CLI, with its required arguments filled in."""
    import click

    from netsim.cli.main import cli

    out: list[list[str]] = []

    def walk(group: click.Group, path: list[str]) -> None:
        for name, cmd in sorted(group.commands.items()):
            if isinstance(cmd, click.Group):
                walk(cmd, [*path, name])
                continue
            argv = [*path, name]
            for p in cmd.params:
                if isinstance(p, click.Option) and p.required:
                    argv += [p.opts[0], "1"]
            for p in cmd.params:
                if isinstance(p, click.Argument) and p.required:
                    argv += ["default/x", "--", "true"] if name == "exec" else ["x"]
            out.append(argv)
    walk(cli, [])
    return out


_AS_NOBODY = """
import json, sys
from click.testing import CliRunner
from netsim.cli.main import cli
out = []
for argv in json.loads(sys.argv[1]):
    r = CliRunner().invoke(cli, argv, prog_name="netsim")
    out.append([argv, r.exit_code, r.stderr, repr(r.exception) if not isinstance(r.exception, SystemExit) else ""])
print(json.dumps(out))
"""


def test_a_non_root_user_gets_one_line_and_exit_2_from_every_verb(cluster):
    """As `nobody` (a real uid, in one process that walks every verb in turn): every verb says that it
    needs root in one line on stderr, exit 2, never a traceback."""
    import json
    import subprocess
    import sys

    verbs = _verbs()
    assert len(verbs) >= 20
    env = {"PATH": os.environ.get("PATH", ""), "NETSIM_CLUSTER": cluster.name}
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                           _AS_NOBODY, json.dumps(verbs)], capture_output=True, text=True, timeout=120, env=env,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(verbs)
    for argv, code, stderr, exc in results:
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and not exc and "Traceback" not in stderr, (argv, code, stderr, exc)
        assert "must run as root" in lines[0], (argv, lines)
