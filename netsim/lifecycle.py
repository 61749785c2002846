"""Cluster lifecycle: up, down (also after a crash), status.

`up` records the cluster in its state directory before it creates anything, so a run killed half-way
leaves a state dir that `down` finds; everything the cluster made is also findable by its name prefix.
A failure during `up` tears down what was built before re-raising: no half-built cluster stays behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from netsim import daemonproc, fsclean, naming, state
from netsim.apiserver import endpoint
from netsim.etcd import config as etcd_config
from netsim.kernel import netns as netns_mod
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec, cluster_name_problem
from netsim.model.errors import UsageError
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


def _kill(pids: set[int]) -> int:
    me = os.getpid()
    pids.discard(me)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.01)
    return len(pids)


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


def check_name(cluster: str, flag: str = "--cluster") -> None:
    """A cluster name from the command line: a usage error before it reaches a path or a namespace name."""
    problem = cluster_name_problem(cluster)
    if problem:
        raise UsageError(f"{flag}: {problem}")


def down(k: Kernel, cluster: str) -> DownReport:
    """Remove everything `cluster` made: processes, namespaces, /etc/netns entries, state. Idempotent.
    Only names of `cluster` itself are touched (naming.owned_by), never those of a cluster whose name extends it."""
    if not naming.is_cluster_name(cluster):
        raise UsageError(f"{cluster!r} is not a cluster name (a lowercase DNS label of at most "
                         f"{naming.MAX_CLUSTER_NAME} characters)")
    st = state.load(cluster)
    killed = 0
    # The daemon first, so it does not make new sandboxes (nor files in the state dir) while we remove
    # them: the recorded one and any other found by its command line (`up` killed before it recorded it).
    # Every host agent and control plane of the cluster too (netsim.daemonproc.find_all).
    daemons = set(daemonproc.find(cluster)) | set(daemonproc.find_all(cluster))
    if st is not None:
        pid = st.extra.get("daemonPid")
        if pid and _pid_alive_is_ours(pid, cluster):
            daemons.add(pid)
    killed += _kill(daemons)
    names = owned_netns(cluster)
    killed += _kill(netns_mod.pids_in_all(names))
    # Pods first, nodes and hosts next, the fabric last: each veth dies with the first of its two ends.
    # Each rank is removed at once (Kernel.netns_delete_many overlaps the unmounts' RCU waits: one by one,
    # 10,000 pods took most of a 95 s `down`). Like `ip netns del`, this returns before the kernel's
    # asynchronous cleanup_net has freed the namespaces and their links.
    rank = {naming.POD: 0, naming.NODE: 1, naming.HOST: 1, naming.MACHINE: 2, naming.FABRIC: 2, naming.LAN: 3}
    order = sorted(names, key=lambda n: (rank[parsed.role] if (parsed := naming.parse(n)) else 1, n))
    by_rank: dict[int, list[str]] = {}
    for n in order:
        by_rank.setdefault(rank[parsed.role] if (parsed := naming.parse(n)) else 1, []).append(n)
    for r in sorted(by_rank):
        k.netns_delete_many(by_rank[r])
    # Pods' resolv.conf live in /etc/netns/<pod netns>; sweep by name, also for sandboxes already gone.
    # Several at a time (netsim.fsclean): one by one, 3,000 pods' directories took 24 s on a loaded machine.
    fsclean.rmtrees(os.path.join(ETC_NETNS, n) for n in _etc_netns(naming.cluster_prefix(cluster))
                    if naming.owned_by(cluster, n))
    killed += etcd_config.teardown(cluster)  # the cluster's own etcd (its data goes with the state dir)
    had_state = os.path.isdir(naming.state_dir(cluster))
    with contextlib.suppress(Exception):  # a broken kubeconfig must not keep the cluster's names alive
        endpoint.forget(cluster)
    state.remove(cluster)
    return DownReport(cluster, len(order), killed, had_state)


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


def running_clusters() -> list[str]:
    return [c for c in state.known_clusters() if (s := state.load(c)) is not None and s.phase == "ready"]


def resolve_cluster(name: str | None) -> state.ClusterState:
    """The cluster a command is about: the named one, or the only running one."""
    if name:
        check_name(name)
        st = state.load(name)
        if st is None:
            raise UsageError(f"no cluster named {name!r} (running: {', '.join(running_clusters()) or 'none'})")
        return st
    running = running_clusters()
    if not running:
        raise UsageError("no cluster is running; start one with `netsim up`")
    if len(running) > 1:
        raise UsageError(f"several clusters are running ({', '.join(running)}); choose one with --cluster")
    st = state.load(running[0])
    assert st is not None
    return st


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
