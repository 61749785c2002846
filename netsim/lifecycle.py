"""Cluster lifecycle: up, down (also after a crash), status.

`up` records the cluster in its state directory before it creates anything, so a run killed half-way
leaves a state dir that `down` finds; everything the cluster made is also findable by its name prefix.
A failure during `up` tears down what was built before re-raising: no half-built cluster stays behind.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from netsim import daemonproc, fsclean, naming, pidstate, state
from netsim.apiserver import endpoint
from netsim.etcd import config as etcd_config
from netsim.kernel import netns as netns_mod
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import UsageError
from netsim.state import check_name, resolve_cluster, running_clusters  # noqa: F401 (their old home)
from netsim.testhooks import checkpoint

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _taken(name: str) -> UsageError:
    """Why the state dir of `name` exists: a running cluster, another `up` building it right now, or the
    remains of a crash."""
    existing = state.load(name)
    if existing is not None and existing.phase == "ready":
        return UsageError(f"cluster {name!r} is already running; use another --name, or "
                          f"`netsim down --name {name}` first")
    if existing is None or _pid_alive(existing.pid):
        return UsageError(f"cluster {name!r} is being created by another `netsim up` right now"
                          + (f" (pid {existing.pid})" if existing else "")
                          + f"; wait for it, or use another --name (a crashed one is removed with "
                            f"`netsim down --name {name}`)")
    return UsageError(f"cluster {name!r} was left half-built by an earlier run (phase {existing.phase}); "
                      f"clean it up with `netsim down --name {name}`")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def up(k: Kernel, spec: ClusterSpec, progress: Progress = _quiet, *, daemon: bool = True) -> state.ClusterState:
    """Build the node network of `spec`. Raises UsageError if a cluster of that name exists or is being
    built: the state dir is claimed with one mkdir (atomic), so of two racing `up`s exactly one wins and
    the other is told so, before it looks at or touches anything else. `daemon`: whether a daemon is to run
    (recorded first, so `status` knows one is missing however `up` ended)."""
    # The builders: only `up` needs them, and every CLI verb imports this module.
    from netsim import fabric, hostnet

    if not os.path.isdir(naming.STATE_ROOT):
        state.make_private_dir(naming.STATE_ROOT)
    try:
        os.mkdir(naming.state_dir(spec.name), 0o700)
    except FileExistsError:
        raise _taken(spec.name) from None
    os.chmod(naming.state_dir(spec.name), 0o700)
    leftovers = owned_netns(spec.name)
    if leftovers:
        os.rmdir(naming.state_dir(spec.name))
        raise UsageError(f"{len(leftovers)} network namespace(s) of an earlier cluster {spec.name!r} remain "
                         f"(e.g. {leftovers[0]}); clean them up with `netsim down --name {spec.name}`")
    st = state.ClusterState(name=spec.name, phase="building", spec=spec.to_dict(), extra={"daemon": daemon})
    state.save(st)
    checkpoint("up-claimed")
    t0 = time.monotonic()
    try:
        if etcd_config.prepare(spec.name, etcd_config.default_store(spec.store)):
            progress("etcd store ready")
        st.fabric = fabric.build_fabric(k, spec)
        if spec.network.backend == "vxlan" or len(spec.hosts) > 1:
            fabric.check_vxlan(k, spec)
        if spec.hosts:
            hostnet.build_lan(k, spec)
            st.extra["machines"] = [hostnet.add_machine(k, spec, i) for i in range(len(spec.hosts))]
            hostnet.join_underlay(k, spec)
            progress(f"hosts {', '.join(h.name for h in spec.hosts)} joined by VXLAN" if len(spec.hosts) > 1
                     else f"host {spec.hosts[0].name}")
        for i, node in enumerate(spec.nodes):
            st.nodes.append(fabric.add_node(k, spec, i, node))
            state.make_private_dir(naming.node_state_dir(spec.name, node.name))
            progress(f"node {node.name} {st.nodes[-1]['ip']}")
        for i, host in enumerate(spec.external_hosts):
            st.hosts.append(fabric.add_host(k, spec, i, host))
            progress(f"host {host.name} {host.ip}")
        fabric.underlay_neighbours(k, spec, st.nodes, st.hosts)
        checkpoint("up-nodes-built")
        endpoint.prepare(spec.name, spec.network.service_cidr, spec.dns_domain,
                         advertise_ip=spec.node_ip(0) if spec.nodes else None)
        st.phase = "ready"
        st.extra["buildSeconds"] = round(time.monotonic() - t0, 3)
        state.save(st)
        checkpoint("up-ready")
    except BaseException:
        with contextlib.suppress(Exception):
            down(k, spec.name)
        raise
    return st


ETC_NETNS = "/etc/netns"


def _etc_netns(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(ETC_NETNS) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def owned_netns(cluster: str) -> list[str]:
    return [n for n in netns_mod.list_names(naming.cluster_prefix(cluster)) if naming.owned_by(cluster, n)]


@dataclass
class DownReport:
    cluster: str
    namespaces: int
    processes: int
    state_dir: bool
    # Seconds per step of `down` (daemons; processes, etcd and kubeconfig; then at the same time
    # namespaces and etc_netns + state; removal: both), for benchmarks/bench_down.py; not printed by the CLI.
    phases: dict[str, float] = field(default_factory=dict)


PF_EXITING = 0x4  # include/linux/sched.h: the task is in do_exit


class _Killing:
    """SIGKILL sent to some processes, and the two waits that may follow: until none of them can make
    another system call (`wait_stopped`), and until each has exited (`wait_exited`), reaping our own
    children.

    Through a pidfd per process where the kernel gives one: opened before the signal, so a pid reused
    meanwhile is never signalled, and readable once the process has exited (its memory, files and
    namespaces released: exit_notify comes last in do_exit), so one poll waits for all of them, where
    polling each pid every 10 ms added up to a tick per process. Without a pidfd (no descriptor left,
    an old kernel): kill(2) and the polling."""

    def __init__(self, pids: set[int]) -> None:
        pids.discard(os.getpid())
        self.count = len(pids)
        self._pending: dict[int, int] = {}  # pidfd -> pid
        self._polled: list[int] = []
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            except OSError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                self._polled.append(pid)
                continue
            self._pending[fd] = pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)

    def wait_stopped(self, timeout: float = 2.0) -> None:
        """Until every thread of every process is in do_exit (or gone). A killed thread finishes the system
        call it is in, then exits; from then on the process changes nothing (no mount, no file, no
        child), while the kernel may take a second more to free a large daemon's memory and sockets:
        `down` removes the namespaces and files meanwhile, instead of waiting for the exit."""
        deadline = time.monotonic() + timeout
        while not all(_stopped(pid) for pid in [*self._pending.values(), *self._polled]):
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)

    def wait_exited(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            poller = select.poll()
            for fd in self._pending:
                poller.register(fd, select.POLLIN)
            waiting = set(self._pending)
            while waiting and (left := deadline - time.monotonic()) > 0:
                for fd, _ in poller.poll(left * 1000):
                    poller.unregister(fd)
                    waiting.discard(fd)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(self._pending[fd], os.WNOHANG)
        finally:
            for fd in self._pending:
                os.close(fd)
            self._pending = {}
        for pid in self._polled:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.01)
        self._polled = []


def _stopped(pid: int) -> bool:
    """Every thread of `pid` is exiting, a zombie, or gone (/proc/PID/task/TID/stat: state, flags)."""
    threads = pidstate.thread_stats(pid)
    return threads is None or all(state in ("Z", "X") or flags & PF_EXITING for state, flags in threads)


def _kill(pids: set[int]) -> int:
    """SIGKILL every pid and wait (at most 2 s in all) until each has exited (see _Killing)."""
    killing = _Killing(pids)
    killing.wait_exited()
    return killing.count


def _pid_alive_is_ours(pid: int, cluster: str) -> bool:
    """The recorded daemon pid is still a netsim process of this cluster (pids get reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    # The daemon runs as `python -m netsim.daemon CLUSTER`: compare whole arguments, so cluster `x` never
    # claims the daemon of cluster `x-pod-default`.
    args = cmd.split()
    return any("netsim" in a for a in args) and cluster in args


# The order namespaces are removed in, by role (see `down`).
_RANK = {naming.POD: 0, naming.NODE: 1, naming.HOST: 1, naming.MACHINE: 2, naming.FABRIC: 2, naming.LAN: 3}


def down(k: Kernel, cluster: str) -> DownReport:
    """Remove everything `cluster` made: processes, namespaces, /etc/netns entries, state. Idempotent.
    Only names of `cluster` itself are touched (naming.owned_by), never those of a cluster whose name extends it."""
    if not naming.is_cluster_name(cluster):
        raise UsageError(f"{cluster!r} is not a cluster name (a lowercase DNS label of at most "
                         f"{naming.MAX_CLUSTER_NAME} characters)")
    phases: dict[str, float] = {}
    t = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal t
        now = time.monotonic()
        phases[phase] = round(now - t, 4)
        t = now

    st = state.load(cluster)
    # The daemon first, so it does not make new sandboxes (nor files in the state dir) while we remove
    # them: the recorded one and any other found by its command line (`up` killed before it recorded it).
    # Every host agent and control plane of the cluster too (netsim.daemonproc.find_all, which also finds
    # the daemon: one /proc walk).
    daemons = set(daemonproc.find_all(cluster))
    if st is not None:
        pid = st.extra.get("daemonPid")
        if pid and _pid_alive_is_ours(pid, cluster):
            daemons.add(pid)
    # Once none of them can act any more, the rest goes on while the kernel frees their memory and
    # sockets (1.4 GB and ~20,000 sockets for a 10,000-pod daemon); their exit is awaited at the end.
    daemons_killing = _Killing(daemons)
    try:
        daemons_killing.wait_stopped()
        lap("daemons")
        report = _down_stopped(k, cluster, phases, lap)
    finally:
        t_exit = time.monotonic()
        daemons_killing.wait_exited()
        phases["daemons_exit"] = round(time.monotonic() - t_exit, 4)
    report.processes += daemons_killing.count
    return report


def _down_stopped(k: Kernel, cluster: str, phases: dict[str, float], lap: Callable[[str], None]) -> DownReport:
    """`down` once the cluster's daemons can act no more: processes in its namespaces, its etcd and
    kubeconfig entries, then its namespaces and directories at the same time."""
    killed = 0
    names = owned_netns(cluster)
    killed += _kill(netns_mod.pids_in_all(names))
    # The cluster's own etcd (its data goes with the state dir) and its kubeconfig entries: both read
    # records in the state dir, so before it goes.
    killed += etcd_config.teardown(cluster)
    had_state = os.path.isdir(naming.state_dir(cluster))
    with contextlib.suppress(Exception):  # a broken kubeconfig must not keep the cluster's names alive
        endpoint.forget(cluster)
    lap("processes")
    # Nothing of the cluster runs any more. The namespaces (the kernel's RCU waits, on its helper threads)
    # and the directories (the journal's waits, on fsclean's threads) are removed at the same time: in
    # turn, the three sweeps of a 1,000-pod `down` took 1.0 + 1.1 + 0.8 s.
    files_done: dict[str, float] = {}

    def timed(phase: str, fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            t0 = time.monotonic()
            fn()
            files_done[phase] = round(time.monotonic() - t0, 4)
        return run

    # Pods' resolv.conf and hosts live in /etc/netns/<pod netns>; by name, also for sandboxes gone. Every
    # rmdir there takes the lock of /etc/netns itself, so they go one at a time whatever the threads: the
    # state directory (a subtree per node) goes beside them.
    def etc_netns() -> None:
        fsclean.rmtrees(os.path.join(ETC_NETNS, n) for n in _etc_netns(naming.cluster_prefix(cluster))
                        if naming.owned_by(cluster, n))

    t_ns = time.monotonic()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="netsim-down-files") as ex:
        files = [ex.submit(timed("etc_netns", etc_netns)), ex.submit(timed("state", lambda: state.remove(cluster)))]
        # Pods first, nodes and hosts next, the fabric last: each veth dies with the first of its two
        # ends. Each rank is removed at once (Kernel.netns_delete_many overlaps the unmounts' RCU waits:
        # one by one, 10,000 pods took most of a 95 s `down`). Like `ip netns del`, this returns before
        # the kernel's asynchronous cleanup_net has freed the namespaces and their links.
        by_rank: dict[int, list[str]] = {}
        for n in names:
            parsed = naming.parse(n)
            by_rank.setdefault(_RANK[parsed.role] if parsed else 1, []).append(n)
        try:
            for r in sorted(by_rank):
                k.netns_delete_many(by_rank[r])
            phases["namespaces"] = round(time.monotonic() - t_ns, 4)
        finally:
            for f in files:
                f.result()
    phases.update(files_done)
    lap("removal")
    return DownReport(cluster, len(names), killed, had_state, phases)


def down_all(k: Kernel) -> list[DownReport]:
    """Every cluster with a state dir, then any `netsim-*` namespace left without one."""
    reports = [down(k, c) for c in state.known_clusters()]
    stray = netns_mod.list_names(naming.PREFIX)
    if stray:
        killed = _kill(netns_mod.pids_in_all(stray))
        for n in stray:
            k.netns_delete(n)
        reports.append(DownReport("(stray)", len(stray), killed, False))
    for n in _etc_netns(naming.PREFIX):
        shutil.rmtree(os.path.join(ETC_NETNS, n), ignore_errors=True)
    return reports


def status(st: state.ClusterState) -> dict:
    """What is built and whether its namespaces are still there."""
    def present(ns: str) -> bool:
        return os.path.exists(netns_mod.netns_path(ns))
    spec = st.spec["spec"]
    return {
        "name": st.name, "phase": st.phase, "plugin": spec["network"]["plugin"],
        "backend": spec["network"]["backend"], "podCIDR": spec["network"]["podCIDR"],
        "serviceCIDR": spec["network"]["serviceCIDR"], "nodeNetwork": spec["network"]["nodeNetwork"],
        "fabric": {"netns": st.fabric, "present": present(st.fabric) if st.fabric else False},
        "nodes": [{**n, "present": present(n["netns"])} for n in st.nodes],
        "hosts": [{**h, "present": present(h["netns"])} for h in st.hosts],
        "stateDir": naming.state_dir(st.name), "created": st.created, **st.extra,
        **({"apiServer": api} if (api := endpoint.describe(st.name)) else {}),
        **({"store": {k: cfg[k] for k in ("type", "endpoints", "local")}}
           if (cfg := etcd_config.read(st.name)) else {}),
    }
