"""The kubelet of one node: pod sandboxes (network namespaces), CNI ADD/DEL, and container processes.

A sandbox is one netns per pod (all containers of a pod share it, as with the pause container). The CNI
plugin is called in process by default (the same plugin code, no exec), or executed as a CNI executable
inside the node's namespace with the spec's environment and stdin (`cniMode: exec`), which is also how
third-party plugins run. Sandbox records live under the node's state dir so a restarted daemon knows what
it made. Containers with a `command` run as real processes inside the pod's netns, started through
netsim/node/container_init.py with the user, capabilities and private mount namespace that
netsim.node.security decides; their output goes to a log file per container (`netsim logs`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cni_plugins.exec import exec_plugin
from cni_plugins.skel import invoke
from cni_plugins.types import CniArgs, CniError
from netsim import naming
from netsim.kernel.api import Kernel
from netsim.node.network import NodeRec, PodNetwork
from netsim.node.security import POD_SYSCTLS, ContainerSecurity, launcher_argv
from netsim.testhooks import checkpoint

CNI_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")


CONTAINER_ENV = "NETSIM_CONTAINER"  # in every container's environment: <cluster>/<ns>/<pod>/<container>


def container_marker(cluster: str, pod_key: str, container: str) -> str:
    return f"{cluster}/{pod_key}/{container}"


def kill_containers(cluster: str, spare: Collection[str] = ()) -> int:
    """SIGKILL every container process of `cluster` (found by CONTAINER_ENV, inherited by their children).
    A restarted daemon cannot wait on processes it did not start (their exit codes would be lost), so it
    restarts them, as a kubelet restarts containers, and counts the restart. `spare`: pod keys (ns/name)
    whose containers another host's agent runs (a restarted kubelet only touches its own node's)."""
    want = f"{CONTAINER_ENV}={cluster}/".encode()
    spared = tuple(f"{CONTAINER_ENV}={cluster}/{k}/".encode() for k in spare)
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        items = env.split(b"\0")
        if any(item.startswith(want) for item in items) and not any(
                item.startswith(spared) for item in items if spared):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


PREVIOUS = ".previous"  # suffix of the log of a container's previous instance


class SandboxError(Exception):
    """A pod sandbox could not be made (the CNI error, or the kernel's)."""


@dataclass
class Sandbox:
    namespace: str
    name: str
    uid: str
    netns: str
    container_id: str
    ip: str
    node: str
    created: float = field(default_factory=time.time)
    cni_ms: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ContainerProcess:
    name: str
    proc: subprocess.Popen | None  # None: never started (see `waiting`)
    log: str
    started: float
    restarts: int = 0
    exit_code: int | None = None
    finished: float | None = None
    waiting: tuple[str, str] | None = None  # (reason, message) of a container the kubelet refused to create


class Kubelet:
    def __init__(self, kernel: Kernel, network: PodNetwork, node: NodeRec, *, cni_mode: str = "inprocess"):
        self.kernel = kernel
        self.network = network
        self.node = node
        self.cluster = network.spec.name
        self.node_ns = naming.node_ns(self.cluster, node.name)
        self.cni_mode = cni_mode
        self.dir = Path(naming.node_state_dir(self.cluster, node.name)) / "sandboxes"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir = Path(naming.state_dir(self.cluster)) / "logs"
        self.containers: dict[str, dict[str, ContainerProcess]] = {}
        self._sandboxes: dict[str, Sandbox] = self._load()  # records mirrored in memory, written through

    # -- sandboxes -----------------------------------------------------------------------------------
    def _record(self, namespace: str, name: str) -> Path:
        return self.dir / f"{naming.pod_part(namespace, name)}.json"

    def _load(self) -> dict[str, Sandbox]:
        """The records on disk: what an earlier daemon of this cluster made (read once, at start)."""
        out = {}
        for f in self.dir.glob("*.json"):
            try:
                sb = Sandbox(**json.loads(f.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            out[sb.key] = sb
        return out

    def sandboxes(self) -> dict[str, Sandbox]:
        return dict(self._sandboxes)

    def sandbox(self, namespace: str, name: str) -> Sandbox | None:
        return self._sandboxes.get(f"{namespace}/{name}")

    def _cni_args(self, namespace: str, name: str, uid: str, container_id: str, netns: str) -> CniArgs:
        return CniArgs(container_id=container_id, netns=f"/run/netns/{netns}", ifname="eth0",
                       args={"K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name, "K8S_POD_UID": uid},
                       path=CNI_BIN_DIRS)

    def _cni(self, command: str, args: CniArgs) -> dict[str, Any]:
        conf = self.network.conf(self.node.name)
        if self.cni_mode == "inprocess":
            return invoke(self.network.plugin, command, args, conf, self.kernel)
        return self._cni_exec(command, args, conf)

    def _cni_exec(self, command: str, args: CniArgs, conf: dict[str, Any]) -> dict[str, Any]:
        """The CNI spec's exec protocol, run inside the node's namespace. `IgnoreUnknown=1` leads CNI_ARGS,
        as kubelet/containerd send it, so plugins that do not know the K8S_POD_* keys accept them."""
        path = (os.path.dirname(sys.executable), *CNI_BIN_DIRS)  # netsim's plugins, then third-party ones
        exec_args = CniArgs(container_id=args.container_id, netns=args.netns, ifname=args.ifname,
                            args={"IgnoreUnknown": "1", **args.args}, path=path)
        return exec_plugin(self.kernel, self.node_ns, command, exec_args, conf, timeout=60)

    def run_sandbox(self, namespace: str, name: str, uid: str) -> Sandbox:
        """Create the pod's netns and wire it with CNI ADD. Cleans up after itself on failure."""
        netns = naming.pod_ns(self.cluster, namespace, name)
        container_id = f"netsim{uid.replace('-', '')[:24]}"
        if self.kernel.netns_exists(netns):  # left by a crash or a killed pod: start clean
            self._teardown(namespace, name, uid, container_id, netns)
        # The record comes first (without an IP): a daemon killed anywhere below leaves a sandbox its
        # successor finds and removes (Daemon.adopt), CNI DEL with this container ID releasing the address.
        record = self._record(namespace, name)
        record.write_text(json.dumps(asdict(Sandbox(namespace, name, uid, netns, container_id, "", self.node.name))))
        self.kernel.netns_create(netns)
        args = self._cni_args(namespace, name, uid, container_id, netns)
        t0 = time.perf_counter()
        try:
            result = self._cni("ADD", args)
        except (CniError, Exception) as exc:
            self._teardown(namespace, name, uid, container_id, netns)
            record.unlink(missing_ok=True)
            raise SandboxError(f"pod {namespace}/{name} on {self.node.name}: CNI ADD failed: {exc}") from exc
        checkpoint("sandbox-wired")  # a daemon killed here leaves a wired sandbox with a record but no IP in it
        ip = result["ips"][0]["address"].split("/")[0]
        sb = Sandbox(namespace, name, uid, netns, container_id, ip, self.node.name,
                     cni_ms=round((time.perf_counter() - t0) * 1000, 2))
        self._record(namespace, name).write_text(json.dumps(asdict(sb)))
        self._sandboxes[sb.key] = sb
        return sb

    def _teardown(self, namespace: str, name: str, uid: str, container_id: str, netns: str) -> None:
        try:
            self._cni("DEL", self._cni_args(namespace, name, uid, container_id, netns))
        except CniError:
            pass  # DEL is best effort (the spec: it must succeed when things are already gone)
        self.kernel.netns_delete(netns)

    def stop_sandbox(self, namespace: str, name: str) -> bool:
        """CNI DEL and remove the netns; False when there was no sandbox."""
        self.stop_containers(namespace, name)
        sb = self.sandbox(namespace, name)
        if sb is None:
            netns = naming.pod_ns(self.cluster, namespace, name)
            if self.kernel.netns_exists(netns):
                self.kernel.netns_delete(netns)
                return True
            return False
        self._teardown(namespace, name, sb.uid, sb.container_id, sb.netns)
        self._record(namespace, name).unlink(missing_ok=True)
        self._sandboxes.pop(sb.key, None)
        return True

    def sandbox_alive(self, sb: Sandbox) -> bool:
        """The sandbox survived (a `netsim kill pod` removes the netns out from under us)."""
        return self.kernel.netns_exists(sb.netns)

    # -- containers ----------------------------------------------------------------------------------
    def start_container(self, sb: Sandbox, container: str, argv: list[str], env: dict[str, str],
                        security: ContainerSecurity, *, restarts: int | None = None,
                        mounts: list[dict[str, Any]] | None = None, workdir: str = "",
                        scratch: str = "") -> ContainerProcess:
        """Start `argv` as `security` says, in a private mount and UTS namespace (container_init). The pod's
        sysctls (unprivileged low ports, ICMP echo sockets) are set only in a pod's own network namespace,
        never in a node's (hostNetwork), as containerd does. `restarts`: its restart count so far, when this
        kubelet did not start it before (a restarted daemon); else one more than the last run's."""
        self.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = naming.container_log(self.cluster, sb.namespace, sb.name, container)
        prev = self.containers.get(sb.key, {}).get(container)
        if prev is not None and prev.proc is not None and os.path.exists(log):
            # The kubelet keeps the last terminated instance's log for `logs --previous`.
            os.replace(log, log + PREVIOUS)
        launcher = launcher_argv(security, argv, netns=sb.netns, hostname=sb.name,
                                 sysctls=None if sb.container_id == "host" else POD_SYSCTLS,
                                 mounts=mounts or [], workdir=workdir, scratch=scratch)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with open(fd, "ab") as out:
            proc = self.kernel.spawn(sb.netns, launcher, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT,
                                     env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                          "HOSTNAME": sb.name, **env,
                                          CONTAINER_ENV: container_marker(self.cluster, sb.key, container)},
                                     start_new_session=True)
        # A container that was refused before (never started) keeps the count it had.
        count = restarts if restarts is not None else (prev.restarts + (prev.proc is not None)) if prev else 0
        cp = ContainerProcess(container, proc, log, time.time(), restarts=count)
        self.containers.setdefault(sb.key, {})[container] = cp
        return cp

    def refuse_container(self, sb: Sandbox, container: str, reason: str, message: str) -> ContainerProcess:
        """Record a container the kubelet will not create (e.g. runAsNonRoot with uid 0): it stays Waiting."""
        prev = self.containers.get(sb.key, {}).get(container)
        cp = ContainerProcess(container, None, "", time.time(), restarts=prev.restarts if prev else 0,
                              waiting=(reason, message))
        self.containers.setdefault(sb.key, {})[container] = cp
        return cp

    def record_played(self, sb: Sandbox, container: str, exit_code: int | None) -> ContainerProcess:
        """A container without a process (its image is not run): exited `exit_code` at once, or (None)
        running for as long as the pod does (the workload server plays it)."""
        prev = self.containers.get(sb.key, {}).get(container)
        now = time.time()
        cp = ContainerProcess(container, None, "", now, restarts=prev.restarts + 1 if prev and prev.exit_code is not None
                              else prev.restarts if prev else 0,
                              exit_code=exit_code, finished=now if exit_code is not None else None)
        self.containers.setdefault(sb.key, {})[container] = cp
        return cp

    def forget_container(self, sb: Sandbox, container: str) -> None:
        """Drop a container's record (one refused before that needs no process: the workload server plays it)."""
        self.containers.get(sb.key, {}).pop(container, None)

    def poll_containers(self, key: str) -> dict[str, ContainerProcess]:
        """Refresh exit codes of a pod's container processes."""
        for cp in self.containers.get(key, {}).values():
            if cp.exit_code is None and cp.proc is not None:
                rc = cp.proc.poll()
                if rc is not None:
                    # A process ended by a signal reports 128 + the signal, as runc's exit status does
                    # (Popen says -signal): SIGTERM 143, SIGKILL 137.
                    cp.exit_code = rc if rc >= 0 else 128 - rc
                    cp.finished = time.time()
        return self.containers.get(key, {})

    def kill_container(self, key: str, container: str, grace: float) -> bool:
        """Stop one container as the runtime's StopContainer does: SIGTERM to its process group, SIGKILL once
        `grace` seconds have passed if it still runs (a timer: the caller never waits). Its exit is then seen
        by `poll_containers` like any other. False when it was not running."""
        cp = self.containers.get(key, {}).get(container)
        if cp is None or cp.proc is None or cp.proc.poll() is not None:
            return False
        proc = cp.proc
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return False

        def hard_kill() -> None:
            if proc.returncode is None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        timer = threading.Timer(max(0.0, grace), hard_kill)
        timer.daemon = True
        timer.start()
        return True

    def stop_containers(self, namespace: str, name: str) -> None:
        for cp in self.containers.pop(f"{namespace}/{name}", {}).values():
            if cp.proc is not None and cp.proc.poll() is None:
                try:
                    os.killpg(cp.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                cp.proc.wait(timeout=5)
