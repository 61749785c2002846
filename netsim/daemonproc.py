"""Finding a cluster's daemon by what it is, not only by the pid `up` recorded.

The daemon runs as `python -m netsim.daemon <cluster>`: that command line is the cluster's marker. `up` is
killable at any instant, also between starting the daemon and recording its pid, so `down`, `status` and
`daemon restart` look for the marker in /proc as well; a daemon is never orphaned nor started twice.
"""

from __future__ import annotations

import os
import sys

MODULE = "netsim.daemon"


def argv(cluster: str) -> list[str]:
    return [sys.executable, "-m", MODULE, cluster]


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
