"""The cluster's processes and their roles: the daemon, one node agent process per host, control planes.

Kubernetes runs a kubelet and a kube-proxy on every host, each watching the store through the API, and the
controllers and the scheduler once, elected (kube-controller-manager --leader-elect). netsim's processes
follow that split; all run the one daemon loop (netsim.daemon.Daemon), restricted by a `Role`:

- `daemon` (`netsim up` starts it): a control-plane candidate, and, when the spec names no hosts, the node
  agents of every node, as netsim always ran (one process; single-host clusters are unchanged);
- `agent` (`netsim agent --cluster C --host H`): the node agents (kubelets, kube-proxy, felix, flanneld,
  DNS responders, speaker) of the nodes placed on host H (netsim.model.placement), renewing those nodes'
  Leases; `up` starts one per host when the spec names hosts;
- `controlplane` (`netsim controlplane --cluster C`): the controllers, scheduler and API endpoint only,
  while it holds the leader lease (netsim.leader): a standby that takes over when the leader dies.

Every such process carries the cluster's marker on its command line (netsim.daemonproc.argv), so `down`
finds and kills all of them, also when nothing recorded their pids.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
from collections.abc import Callable, Collection

from netsim import daemonproc, naming, pidstate, state
from netsim.leader import Elector, LeaderConfig
from netsim.model import placement
from netsim.model.errors import NetsimError
from netsim.store import Store

ROLES = ("daemon", "controlplane", "agent")


class RoleError(NetsimError):
    exit_code = 2


@dataclasses.dataclass(frozen=True)
class Role:
    name: str  # daemon | controlplane | agent
    nodes: frozenset[str]  # the nodes whose agents this process runs
    control: bool  # competes for the control plane's leadership
    host: str | None = None

    @classmethod
    def daemon(cls, spec) -> Role:  # noqa: ANN001 - a ClusterSpec
        """The cluster's daemon: every node's agents unless the spec places nodes on hosts."""
        nodes = frozenset() if placement.multi_host(spec) else frozenset(n.name for n in spec.nodes)
        return cls("daemon", nodes, True)

    @classmethod
    def parse(cls, spec, name: str, host: str | None) -> Role:  # noqa: ANN001 - a ClusterSpec
        if name == "daemon":
            return cls.daemon(spec)
        if name == "controlplane":
            return cls("controlplane", frozenset(), True)
        return cls("agent", frozenset(agent_nodes(spec, host)), False, host)

    def describe(self) -> str:
        if self.name == "agent":
            return f"node agents of host {self.host} ({', '.join(sorted(self.nodes)) or 'no nodes'})"
        return "control plane" if self.name == "controlplane" else "daemon"

    def health_path(self, cluster: str) -> str:
        """health.json for the daemon (what `netsim status` reads); the others a file of their own."""
        d = naming.state_dir(cluster)
        if self.name == "daemon":
            return os.path.join(d, "health.json")
        if self.name == "agent":
            return os.path.join(d, f"agent-{self.host}.health.json")
        return os.path.join(d, f"controlplane-{os.getpid()}.health.json")

    def marker_path(self, cluster: str) -> str:
        """A host agent's convergence marker (rv, blockers), joined to the leader's by daemonctl.read_marker."""
        return os.path.join(naming.state_dir(cluster), f"agent-{self.host}.converged.json")


def ready_elsewhere(store: Store, mine: Collection[str]) -> list[str]:
    """Nodes not run by this process that are Ready in the store (their own agents heartbeat them)."""
    from netsim.controlplane.nodes import node_ready
    return [n["metadata"]["name"] for n in store.list("Node")
            if n["metadata"]["name"] not in mine and node_ready(n)]


def agent_nodes(spec, host: str | None) -> list[str]:  # noqa: ANN001 - a ClusterSpec
    """The nodes of `host`, refusing a host the spec does not name (one line, exit 2)."""
    hosts = placement.host_names(spec)
    if not host or host not in hosts:
        raise RoleError(f"cluster {spec.name}: no host {host!r} in spec.hosts (hosts: {', '.join(hosts)})")
    return placement.nodes_of_host(spec, host)


def identity(role: Role) -> str:
    """client-go's convention for an elected component's identity: hostname_unique (here role and pid)."""
    return f"{socket.gethostname()}_{role.name}_{os.getpid()}"


def holder_gone(cluster: str) -> Callable[[str], bool]:
    """A lease holder of this machine whose process is no longer a process of the cluster, or is killed and
    only waiting to leave the kernel (netsim.pidstate), cannot renew: a standby need not wait out its lease
    (a shortcut client-go cannot take across machines; on one machine the pid says it for sure). Holders of
    other machines are left to the lease's expiry."""
    me = socket.gethostname()

    def gone(holder: str) -> bool:
        host, _, rest = holder.partition("_")
        pid = rest.rpartition("_")[2]
        return host == me and pid.isdigit() and (not daemonproc.is_process_of(int(pid), cluster)
                                                 or pidstate.dying(int(pid)))

    return gone


def start_elector(spec, role: Role, open_store: Callable[[], Store]) -> Elector:  # noqa: ANN001
    """Start competing for the control plane's lease; returns once the first attempt was made."""
    import time
    cfg = LeaderConfig.for_lease(spec.timing.leader_lease_duration)
    e = Elector(open_store, identity(role), cfg, time.time, holder_gone=holder_gone(spec.name))
    e.start()
    e.wait_first_attempt(max(5.0, cfg.retry_period))
    return e


def write_first_marker(cluster: str, host: str, pid: int) -> None:
    """An agent's marker before its first pass (rv 0: caught up with nothing), so that waits on the
    cluster's convergence count it from the moment it is started (netsim.daemonctl.read_marker)."""
    path = Role("agent", frozenset(), False, host).marker_path(cluster)
    tmp = f"{path}.{pid}.tmp"
    with state.open_private(tmp, "w") as f:
        json.dump({"rv": 0, "blockers": ["starting"], "pid": pid}, f)
    os.replace(tmp, path)


def log_path(cluster: str, host: str) -> str:
    return os.path.join(naming.state_dir(cluster), f"agent-{host}.log")


def running_agents(cluster: str) -> dict[str, int]:
    """host -> pid of the host agents of `cluster` that run."""
    return {host: pid for pid, (role, host) in daemonproc.find_all(cluster).items() if role == "agent" and host}


def start_agents(cluster: str, spec) -> dict[str, int]:  # noqa: ANN001 - a ClusterSpec
    """Start, detached, the agent of every host of a multi-host spec that has none running (`up` and `daemon
    restart` on this machine, where the emulated hosts live). Returns host -> pid of every host's agent."""
    out = running_agents(cluster)
    if not placement.multi_host(spec):
        return out
    for host in placement.host_names(spec):
        if host in out:
            continue
        with state.open_private(log_path(cluster, host), "ab") as log:
            proc = subprocess.Popen(daemonproc.argv(cluster, "agent", host), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, start_new_session=True, close_fds=True)
        out[host] = proc.pid
        write_first_marker(cluster, host, proc.pid)
    return out
