"""Starting, finding and waiting on a cluster's daemon (from the CLI or the Python API)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from netsim import daemonproc, naming, state, testhooks
from netsim.daemonfiles import converged_path, health_path
from netsim.model.errors import NetsimError

if TYPE_CHECKING:
    import subprocess


class DaemonError(NetsimError):
    exit_code = 1


EXIT_DAEMON_DOWN = 4


class DaemonDown(DaemonError):
    """The cluster's daemon is not running: nothing would act on the store (exit 4)."""

    exit_code = EXIT_DAEMON_DOWN


def down_message(cluster: str) -> str:
    """One line: which cluster, what is down, how to bring it back."""
    st = state.load(cluster)
    pid = (st.extra.get("daemonPid") if st else None) or 0
    what = f"its daemon (pid {pid}) is not running" if pid else "its daemon was never started"
    return (f"cluster {cluster}: {what}, so no controller or kubelet acts on it (log {log_path(cluster)}); "
            f"restart it with `netsim daemon restart --cluster {cluster}` or `netsim up --name {cluster}`")


def require(cluster: str) -> None:
    """Raise DaemonDown before a command that needs the daemon changes anything."""
    if not alive(cluster):
        raise DaemonDown(down_message(cluster))


def log_path(cluster: str) -> str:
    return os.path.join(naming.state_dir(cluster), "daemon.log")


def log_tail(cluster: str, lines: int = 20) -> str:
    return _tail(log_path(cluster), lines)


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def start(cluster: str, timeout: float = 60.0) -> int:
    """Start the daemon detached (its own session, log under the state dir); wait for its first
    convergence (cluster DNS running). Returns its pid. A daemon of the cluster that is already running
    (found by its command line, recorded or not) is adopted instead of started twice."""
    st = state.load(cluster)
    if st is None:
        raise DaemonError(f"no cluster {cluster}")
    running = daemonproc.find(cluster)
    if running:
        pid = running[0]
        _record(cluster, pid)
        _start_agents(cluster)
        return _wait_first_convergence(cluster, pid, None, timeout)
    from netsim.etcd import config as etcd_config  # only to start: waits and checks need no etcd
    etcd_config.ensure_running(cluster)  # a cluster's private etcd that died (with the daemon) comes back first
    _start_agents(cluster, wait_registered=timeout)
    with state.open_private(log_path(cluster), "ab") as log:
        import subprocess  # to start a daemon only: a wait or a check starts no process
        proc = subprocess.Popen(daemonproc.argv(cluster), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    testhooks.checkpoint("daemon-spawned")
    _record(cluster, proc.pid)
    testhooks.checkpoint("daemon-recorded")
    _start_agents(cluster)
    return _wait_first_convergence(cluster, proc.pid, proc, timeout)


def _start_agents(cluster: str, wait_registered: float | None = None) -> None:
    """A cluster whose spec places nodes on hosts: each host's `netsim agent`, started detached here, where
    the (emulated) hosts live (netsim.hostagent.start_agents); none for a single-host cluster.

    With `wait_registered` (a new daemon is about to start: `up`, or a restart after a crash), wait that
    long at most until every node of the spec is registered. Each agent registers its own nodes, so a
    control plane started first would schedule the cluster's first pods (CoreDNS) onto whichever host's
    nodes came first; waiting makes the cluster's first placement the one it has on a single host."""
    from netsim.hostagent import start_agents
    from netsim.model.cluster import parse_cluster
    from netsim.model.errors import Source
    st = state.load(cluster)
    if st is None:
        return
    spec = parse_cluster(st.spec, Source(state.state_file(cluster)))
    agents = start_agents(cluster, spec)
    if agents and wait_registered:
        _wait_registered(cluster, [n.name for n in spec.nodes], agents, wait_registered)


def _wait_registered(cluster: str, nodes: list[str], agents: dict[str, int], timeout: float) -> None:
    from netsim.hostagent import log_path as agent_log
    from netsim.storefactory import open_store
    store = open_store(cluster)
    try:
        deadline = time.monotonic() + timeout
        while True:
            registered = {(n.get("metadata") or {}).get("name") for n in store.list("Node")}
            missing = [n for n in nodes if n not in registered]
            if not missing:
                return
            dead = [h for h, pid in agents.items() if daemonproc.exited(pid, cluster)]
            if dead or time.monotonic() >= deadline:
                why = f"the agent of host {dead[0]} exited" if dead else f"not within {timeout:.0f}s"
                tail = _tail(agent_log(cluster, dead[0])) if dead else ""
                raise DaemonError(f"cluster {cluster}: nodes {', '.join(missing)} not registered: {why}"
                                  + (f"\n{tail}" if tail else ""))
            time.sleep(0.05)
    finally:
        store.close()


def _record(cluster: str, pid: int) -> None:
    st = state.load(cluster)
    if st is None:
        raise DaemonError(f"cluster {cluster} was removed while its daemon started")
    st.extra["daemonPid"] = pid
    st.extra["daemon"] = True
    state.save(st)


def _wait_first_convergence(cluster: str, pid: int, proc: subprocess.Popen | None, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (proc.poll() is not None) if proc is not None else not daemonproc.find(cluster):
            code = proc.returncode if proc is not None else "?"
            raise DaemonError(f"the daemon of cluster {cluster} exited ({code}):\n{log_tail(cluster)}")
        marker = read_marker(cluster)
        if marker and marker.get("pid") == pid and marker.get("converged"):
            return pid
        time.sleep(0.05)
    raise DaemonError(f"the daemon of cluster {cluster} did not become ready within {timeout:.0f}s; "
                      f"pending: {', '.join((read_marker(cluster) or {}).get('pending', [])) or '?'}\n"
                      f"{log_tail(cluster)}")


def read_marker(cluster: str) -> dict | None:
    """The leader's convergence marker, joined with those of the running host agents (netsim.hostagent):
    their nodes' kube-proxy, felix and CoreDNS are part of "the data plane matches the store". The joined
    `rv` is the least any of them has read (an agent with no marker yet, or one of an earlier process, has
    read nothing), its `blockers` and `pending` include the agents' blockers, and an agent that has not read
    as far as the leader's marker blocks convergence until it has."""
    marker = _read_json(converged_path(cluster))
    if marker is None:
        return None
    agents = _running_agents(cluster)
    if not agents:
        return marker
    from netsim.hostagent import Role
    rv, blockers = marker.get("rv", 0), list(marker.get("blockers") or [])
    for host, pid in agents.items():
        am = _read_json(Role("agent", frozenset(), False, host).marker_path(cluster)) or {}
        if am.get("pid") != pid:
            rv = 0
            blockers.append(f"agent of host {host}: not caught up yet")
            continue
        rv = min(rv, am.get("rv", 0))
        blockers += [f"host {host}: {b}" for b in am.get("blockers") or []]
        if am.get("rv", 0) < marker.get("rv", 0):
            # The leader's quiet pass may have written in answer to what the agents did (an EndpointSlice
            # once a pod turned Ready) after the agent's last marker: that agent's kube-proxy and CoreDNS
            # have not read it yet, so "converged" waits until every agent has read as far as the leader.
            blockers.append(f"agent of host {host}: catching up with rv {marker.get('rv', 0)}")
    extra = blockers[len(marker.get("blockers") or []):]
    return {**marker, "rv": rv, "blockers": blockers, "pending": list(marker.get("pending") or []) + extra,
            "converged": bool(marker.get("converged")) and not extra, "agents": sorted(agents)}


def _running_agents(cluster: str) -> dict[str, int]:
    """host -> pid of the agents whose marker names a live process of the cluster: found through their
    marker files (cheap enough for a wait's every poll; an agent writes a first one, rv 0, as it starts,
    and `up` one for each agent it spawns) rather than by a scan of /proc."""
    d = naming.state_dir(cluster)
    try:
        names = [n for n in os.listdir(d) if n.startswith("agent-") and n.endswith(".converged.json")]
    except OSError:
        return {}
    out = {}
    for n in names:
        pid = (_read_json(os.path.join(d, n)) or {}).get("pid")
        if isinstance(pid, int) and daemonproc.is_process_of(pid, cluster):
            out[n[len("agent-"):-len(".converged.json")]] = pid
    return out


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
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


def processes(cluster: str) -> dict:
    """The cluster's processes beside the daemon (netsim.hostagent): `agents`, host -> {pid, running, nodes,
    components} for every host of a multi-host spec and every agent that runs; `controlPlane`, the leader
    lease's holder and the pids of the control-plane processes."""
    from netsim.hostagent import Role, running_agents
    from netsim.leader import LEASE_NAME, LEASE_NAMESPACE
    from netsim.model import placement
    from netsim.model.cluster import parse_cluster
    from netsim.model.errors import Source
    st = state.load(cluster)
    if st is None:
        return {}
    spec = parse_cluster(st.spec, Source(state.state_file(cluster)))
    running = running_agents(cluster)
    hosts = placement.host_names(spec) if placement.multi_host(spec) else sorted(running)
    agents = {}
    for host in hosts:
        role = Role("agent", frozenset(), False, host)
        try:
            with open(role.health_path(cluster)) as f:
                comps = json.load(f).get("components") or {}
        except (OSError, ValueError, AttributeError):
            comps = {}
        agents[host] = {"pid": running.get(host), "running": host in running,
                        "nodes": placement.nodes_of_host(spec, host), "components": comps if host in running else {}}
    leader = ""
    with contextlib.suppress(Exception):  # a store that cannot be read says nothing about the processes
        from netsim.storefactory import open_store
        store = open_store(cluster)
        try:
            lease = store.get("Lease", LEASE_NAMESPACE, LEASE_NAME) or {}
            leader = (lease.get("spec") or {}).get("holderIdentity") or ""
        finally:
            store.close()
    cps = sorted(pid for pid, (r, _) in daemonproc.find_all(cluster).items() if r in ("daemon", "controlplane"))
    return {"agents": agents, "controlPlane": {"leader": leader, "pids": cps}}


def alive(cluster: str) -> bool:
    """A daemon of `cluster` runs (the recorded pid, or one found by its command line)."""
    st = state.load(cluster)
    pid = (st.extra.get("daemonPid") if st else None) or 0
    if (bool(pid) and daemonproc.is_daemon(pid, cluster)) or daemonproc.find(cluster):
        return True
    # a standby control plane (`netsim controlplane`) leads when the daemon died
    return any(role == "controlplane" for role, _ in daemonproc.find_all(cluster).values())


# How long a wait sleeps at most between two looks at the markers when no marker was rewritten (one is on
# every pass of the daemon or an agent; a wait woken by inotify looks at once): for what no file announces,
# the daemon's death and the wait's deadline. Without inotify, the sleep between looks.
LOOK_SECONDS = 0.1


def _marker_watch(cluster: str):
    """The state directory watched for rewritten markers (netsim.dirwatch; imported by waits only)."""
    from netsim.dirwatch import DirWatch
    return DirWatch(naming.state_dir(cluster))


def wait_converged(cluster: str, after_rv: int, timeout: float = 60.0) -> dict:
    """Block until the daemon has caught up with `after_rv` and nothing is pending; raise with what is
    still pending on timeout. Woken when a marker is rewritten (the watch is made before the first look, so
    a marker written in between is not missed)."""
    deadline = time.monotonic() + timeout
    marker: dict | None = None
    with _marker_watch(cluster) as watch:
        while time.monotonic() < deadline:
            marker = read_marker(cluster)
            if marker and marker.get("rv", 0) >= after_rv and marker.get("converged"):
                return marker
            if not alive(cluster):
                raise DaemonDown(down_message(cluster))
            watch.wait(min(LOOK_SECONDS if watch.notified else 0.03, max(0.0, deadline - time.monotonic())))
    pending = (marker or {}).get("pending", [])
    raise DaemonError(f"cluster {cluster} did not converge within {timeout:.0f}s; still pending: "
                      f"{', '.join(pending) or 'the daemon has not caught up'}")


def wait_for(cluster: str, after_rv: int, timeout: float, check: Callable[[dict], list[str]]) -> dict:
    """Block until the daemon has finished a quiet pass that read `after_rv` and `check(marker)` has nothing
    left to wait for (it may raise to give up early: something that cannot become ready). On timeout raise
    DaemonError with what `check` last said, or that the daemon has not caught up."""
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    caught_up = False
    with _marker_watch(cluster) as watch:  # before the first look: a marker written after it wakes the wait
        while True:
            marker = read_marker(cluster)
            if marker and marker.get("rv", 0) >= after_rv:
                caught_up = True
                waiting = check(marker)
                if not waiting:
                    return marker
            if time.monotonic() >= deadline:
                break
            if not alive(cluster):
                raise DaemonDown(down_message(cluster))
            watch.wait(min(LOOK_SECONDS if watch.notified else 0.03, max(0.0, deadline - time.monotonic())))
    what = "; ".join(waiting) if caught_up else "the daemon has not caught up"
    raise DaemonError(f"cluster {cluster}: not ready within {timeout:.0f}s: {what}")


def stop(cluster: str, timeout: float = 10.0) -> list[int]:
    """Stop every daemon of `cluster`: SIGTERM (it finishes its pass and closes its sockets), SIGKILL after
    `timeout`. Returns the pids stopped."""
    pids = daemonproc.find(cluster)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while daemonproc.is_daemon(pid, cluster):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)
    return pids


def restart(cluster: str, timeout: float = 60.0) -> int:
    """Stop the cluster's daemon if one runs and start a new one, which adopts the existing sandboxes
    (netsim.agents.pod_sync.PodSync.adopt); returns once it converged, with the new pid."""
    st = state.load(cluster)
    if st is None:
        raise DaemonError(f"no cluster {cluster}")
    if st.phase != "ready":
        raise DaemonError(f"cluster {cluster} was left half-built (phase {st.phase}); remove it with "
                          f"`netsim down --name {cluster}`")
    stop(cluster)
    return start(cluster, timeout)
