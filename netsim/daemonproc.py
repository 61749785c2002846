"""Finding a cluster's daemon by what it is, not only by the pid `up` recorded.

The daemon runs as `python -m netsim.daemon <cluster>`: that command line is the cluster's marker. `up` is
killable at any instant, also between starting the daemon and recording its pid, so `down`, `status` and
`daemon restart` look for the marker in /proc as well; a daemon is never orphaned nor started twice.

The cluster's other processes carry the same marker followed by their role: a host's node agents
(`netsim agent`: `... netsim.daemon <cluster> --role agent --host H`) and standby control planes (`netsim
controlplane`: `... --role controlplane`). `find` sees the daemon alone; `find_all` every process of the
cluster, which `down` kills, also after a crash.
"""

from __future__ import annotations

import os
import sys

MODULE = "netsim.daemon"
# The cluster's warm CLI process (netsim.cli.warm, `python -m netsim.cli.warm <cluster>`) and the children it
# forks for commands carry this marker: role "cli". Named here, not imported (it is the CLI's layer).
WARM_CLI_MODULE = "netsim.cli.warm"
# The workload shards a node agent starts when its own descriptors cannot hold every pod's listeners
# (netsim.workload.shards): `python -m netsim.workload.shard <cluster>`, role "workload".
WORKLOAD_SHARD_MODULE = "netsim.workload.shard"


def argv(cluster: str, role: str = "daemon", host: str | None = None) -> list[str]:
    """The command line of one of the cluster's processes (role: daemon | controlplane | agent)."""
    extra = [] if role == "daemon" else ["--role", role] + (["--host", host] if host else [])
    return [sys.executable, "-m", MODULE, cluster, *extra]


def role_of(cmdline: list[str], cluster: str) -> tuple[str, str | None] | None:
    """(role, host) of a process of `cluster` by its command line (`argv`'s shapes, the warm CLI's: role
    "cli", and a workload shard's: role "workload"), else None."""
    for i in range(len(cmdline) - 2):
        if cmdline[i:i + 3] == ["-m", WARM_CLI_MODULE, cluster] and i + 3 == len(cmdline):
            return ("cli", None)
        if cmdline[i:i + 3] == ["-m", WORKLOAD_SHARD_MODULE, cluster] and i + 3 == len(cmdline):
            return ("workload", None)
        if cmdline[i:i + 3] == ["-m", MODULE, cluster]:
            rest = cmdline[i + 3:]
            if not rest:
                return ("daemon", None)
            if len(rest) == 2 and rest[0] == "--role" and rest[1] == "controlplane":
                return ("controlplane", None)
            if len(rest) == 4 and rest[0] == "--role" and rest[1] == "agent" and rest[2] == "--host":
                return ("agent", rest[3])
            return None
    return None


def find_all(cluster: str) -> dict[int, tuple[str, str | None]]:
    """Every live process of `cluster` (daemon, host agents, control planes, the warm CLI and its commands):
    pid -> (role, host)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (role := role_of(_cmdline(entry), cluster)) is not None and _alive(int(entry)):
            out[int(entry)] = role
    return dict(sorted(out.items()))


def exited(pid: int, cluster: str) -> bool:
    """`pid`, just started as one of `cluster`'s processes, is no longer one: gone, a zombie, or running
    another program. A live process whose command line reads empty is not taken for gone: the kernel
    sets a new program's argv (create_elf_tables) after the close-on-exec that lets `subprocess.Popen`
    return, so right after `Popen` the child's /proc/PID/cmdline can read empty (seen under load: "the
    agent of host host-c exited" for an agent that was starting)."""
    if not _alive(pid):
        return True
    cmdline = _cmdline(pid)
    return bool(cmdline) and role_of(cmdline, cluster) is None


def is_process_of(pid: int, cluster: str) -> bool:
    """`pid` is a live process of `cluster` in any role."""
    return role_of(_cmdline(pid), cluster) is not None and _alive(pid)


def _is_daemon_of(cmdline: list[str], cluster: str) -> bool:
    return len(cmdline) >= 4 and cmdline[-3:] == ["-m", MODULE, cluster]


def _cmdline(pid: int | str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace").split("\0")
    except OSError:
        return []
    return cmdline[:-1] if cmdline and cmdline[-1] == "" else cmdline


def is_daemon(pid: int, cluster: str) -> bool:
    """`pid` is a live daemon of `cluster` (pids are reused: the command line must say so)."""
    return _is_daemon_of(_cmdline(pid), cluster) and _alive(pid)


def find(cluster: str) -> list[int]:
    """Pids of live daemons of `cluster` (normally none or one)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        if _is_daemon_of(_cmdline(entry), cluster) and _alive(int(entry)):
            out.append(int(entry))
    return sorted(out)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
