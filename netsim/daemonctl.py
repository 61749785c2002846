"""Starting, finding and waiting on a cluster's daemon (from the CLI or the Python API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from netsim import naming, state
from netsim.daemon import converged_path, health_path
from netsim.model.errors import NetsimError


class DaemonError(NetsimError):
    exit_code = 1


def log_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), "daemon.log")


def log_tail(cluster: str, lines: int = 20) -> str:
    try:
        with open(log_path(cluster), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def start(cluster: str, timeout: float = 60.0) -> int:
    """Start the daemon detached (its own session, log under the state dir); wait for its first
    convergence (cluster DNS running). Returns its pid."""
    st = state.load(cluster)
    if st is None:
        raise DaemonError(f"no cluster {cluster}")
    with state.open_private(log_path(cluster), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "netsim.daemon", cluster], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, close_fds=True)
    st.extra["daemonPid"] = proc.pid
    state.save(st)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonError(f"the daemon of cluster {cluster} exited ({proc.returncode}):\n{log_tail(cluster)}")
        marker = read_marker(cluster)
        if marker and marker.get("pid") == proc.pid and marker.get("converged"):
            return proc.pid
        time.sleep(0.05)
    raise DaemonError(f"the daemon of cluster {cluster} did not become ready within {timeout:.0f}s; "
                      f"pending: {', '.join((read_marker(cluster) or {}).get('pending', [])) or '?'}\n"
                      f"{log_tail(cluster)}")


def read_marker(cluster: str) -> dict | None:
    try:
        with open(converged_path(cluster)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_health(cluster: str) -> dict:
    """The daemon's components and their state ({} when there is no record yet)."""
    try:
        with open(health_path(cluster)) as f:
            return json.load(f).get("components") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def dead_components(components: dict) -> list[str]:
    return [name for name, c in components.items() if (c or {}).get("state") == "dead"]


def alive(cluster: str) -> bool:
    st = state.load(cluster)
    pid = (st.extra.get("daemonPid") if st else None) or 0
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_converged(cluster: str, after_rv: int, timeout: float = 60.0) -> dict:
    """Block until the daemon has caught up with `after_rv` and nothing is pending; raise with what is
    still pending on timeout."""
    deadline = time.monotonic() + timeout
    marker: dict | None = None
    while time.monotonic() < deadline:
        marker = read_marker(cluster)
        if marker and marker.get("rv", 0) >= after_rv and marker.get("converged"):
            return marker
        if not alive(cluster):
            raise DaemonError(f"the daemon of cluster {cluster} is not running:\n{log_tail(cluster)}")
        time.sleep(0.03)
    pending = (marker or {}).get("pending", [])
    raise DaemonError(f"cluster {cluster} did not converge within {timeout:.0f}s; still pending: "
                      f"{', '.join(pending) or 'the daemon has not caught up'}")
