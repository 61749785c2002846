"""The kubelet's pod logic for every node of a cluster: sandboxes, containers, probes, restarts.

`ClusterKubelet` is what the control loop's kubelet step calls (netsim.controlplane.loop.Kubelet): it
dispatches to the per-node `netsim.node.kubelet.Kubelet` (sandboxes, CNI, processes) and owns the pod-facing
servers (the workload server for every declared port, the DNS responder for CoreDNS pods' port 53).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from netsim import naming
from netsim.agents.podread import container_manifests, typed_pod
from netsim.controlplane import objects as o
from netsim.controlplane.loop import PodState
from netsim.dns.resolvconf import (
    env_for_pod,
    pod_resolv_conf,
    read_host_resolv_conf,
    remove_resolv_conf,
    write_resolv_conf,
)
from netsim.dns.server import DnsServer
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.model.pod import Pod
from netsim.node.init_containers import InitRunner
from netsim.node.kubelet import Kubelet, Sandbox
from netsim.node.liveness import PlayedContainers
from netsim.node.pod_env import runs_command
from netsim.node.pod_setup import PodSetup, VolumeError
from netsim.node.podkeyed import PodKeyed
from netsim.node.probe_actions import probe_port, run_probe
from netsim.node.prober import LIVENESS, ContainerProbes, ProbeManager, SpamFilter
from netsim.node.security import ContainerConfigError, effective
from netsim.node.service_ports import ServiceIndex, target_ports_for
from netsim.node.termination import Terminator
from netsim.workload.server import WorkloadServer
from netsim.workload.shards import WorkloadShards

log = logging.getLogger("netsim.daemon")
# A container killed after a failed liveness/startup probe gets SIGTERM and, this many seconds at most
# later, SIGKILL: its terminationGracePeriodSeconds, capped so that a kill never outlasts a few passes.
KILL_GRACE_CAP = 2.0
PLEG_SEEN = 0.5  # seconds a container process runs before it is reported running (ClusterKubelet.pod_state)


DNS_LABEL = ("k8s-app", "kube-dns")
DNS_PORTS = {(53, "UDP"), (53, "TCP")}


def container_argv(container: dict[str, Any]) -> list[str]:
    """The process a container runs, by the entrypoint rules: `command` replaces the image's ENTRYPOINT and
    `args` its CMD (kuberuntime_container.go generateContainerConfig passes both to the runtime; containerd
    internal/cri/opts/spec.go WithProcessArgs keeps the image's entrypoint when command is empty). Images are
    not run, so a container without `command` runs the image's entrypoint, which the workload server plays:
    [] here, whatever its `args` (they are flags for that entrypoint, never a program of their own); so is a
    command that names the image's own program by a relative path (netsim.node.pod_env.in_image)."""
    if not runs_command(container):
        return []
    return list(container.get("command") or []) + list(container.get("args") or [])


_probe_port = probe_port  # the port a tcpSocket/httpGet/grpc probe connects to (netsim.node.probe_actions)


def last_line(path: str) -> str:
    """The last line a container wrote (container_init's reason when its command could not start)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


class ClusterKubelet:
    """The control loop's Kubelet: dispatches to the node kubelets and owns the pod-facing servers (the
    workload identity server for every declared port, the DNS responder for CoreDNS pods' port 53)."""

    def __init__(self, kernel: Kernel, kubelets: dict[str, Kubelet], workload: WorkloadServer | WorkloadShards, dns: DnsServer,
                 spec: ClusterSpec, services: Any, setup: PodSetup | None = None, events: Any = None,
                 decode: Callable[[dict[str, Any]], Any] | None = None):
        self.kernel = kernel
        # A stored pod's typed object: the store's parse cache (Store.decode) in the daemon, so a pod is
        # parsed once per resourceVersion however many containers and passes read it.
        self.decode = decode or (lambda obj: parse_object(obj, Source("<store>")))
        self.kubelets = kubelets
        self.workload = workload
        self.dns = dns
        self.spec = spec
        self.services = services  # () -> typed Services, for env-var service discovery
        self.service_ports = ServiceIndex()  # the Services' numeric targetPorts (PodSync.sync_service_ports, netsim/agents/pod_sync.py)
        # /etc/hosts, env (valueFrom, envFrom, $(VAR)), volumes, workingDir: netsim/node/pod_setup.py
        self.setup = setup
        self.events = events  # (ref, reason, message, actor) -> None
        self._refused: dict[tuple[str, str], str] = {}  # (pod key, container) -> last message reported
        # Init containers and sidecars before the app containers: netsim/node/init_containers.py
        self.inits = InitRunner(self._start_init, self._pod_procs, self._played, self._start_apps,
                                self._sidecar_started)
        self.dns_ip = str(ipaddress.ip_network(spec.network.service_cidr).network_address + 10)
        self.host_resolv = read_host_resolv_conf()
        self.failed: set[str] = set()
        self.prober = ProbeManager()  # readiness, liveness and startup workers (netsim.node.prober)
        self.played = PlayedContainers()  # restarts of containers the workload server plays
        # What the probes last said, per (pod, container); the (pod, container, instance)s killed after a
        # probe. Indexed by pod: a pod is forgotten at the cost of its own entries.
        self.probes: PodKeyed[tuple[str, str], ContainerProbes] = PodKeyed()
        self._killed: PodKeyed[tuple[str, str, Any], None] = PodKeyed()
        self._spam = SpamFilter()  # Unhealthy events per pod, as client-go's event spam filter lets through
        # When this daemon made each sandbox: startTime has whole seconds only, too coarse for
        # initialDelaySeconds (adopted pods fall back to it).
        self._started: dict[str, float] = {}
        # Deleted pods: preStop hooks, SIGTERM, the grace period, SIGKILL (netsim/node/termination.py).
        self.terminator = Terminator(run_hook=self._run_hook, signal_term=self._signal(signal.SIGTERM),
                                     signal_kill=self._signal(signal.SIGKILL), running=self._running,
                                     stop_played=lambda pod: self.workload.unserve(o.key(pod)),
                                     is_played=lambda pod, c: not container_argv(c),
                                     event=self._container_event)

    def typed(self, pod: dict[str, Any]) -> Pod:
        """The typed Pod of a stored pod (netsim.agents.podread: the parse cache's, or a lenient read of
        one that does not parse)."""
        return typed_pod(self.decode, pod)

    def _node(self, pod: dict[str, Any]) -> str:
        return self.typed(pod).spec.node_name or ""

    # -- termination ---------------------------------------------------------------------------------
    def terminate(self, pod: dict[str, Any]) -> bool:
        """One step of stopping a deleted pod's containers; True once they have all stopped."""
        if self._node(pod) not in self.kubelets:
            return True
        return self.terminator.step(o.key(pod), pod, time.monotonic())

    def _run_hook(self, pod: dict[str, Any], c: dict[str, Any], hook: dict[str, Any], grace: float) -> tuple[bool, str]:
        """A preStop hook (pkg/kubelet/lifecycle/handlers.go): sleep, exec in the container, or httpGet."""
        if "sleep" in hook:
            time.sleep(min(float((hook.get("sleep") or {}).get("seconds", 0)), grace))
            return True, ""
        ip = self.typed(pod).status.pod_ip or ""
        return self._probe_call(pod, c, ip, not container_argv(c))("preStop", hook, max(grace, 0.1))

    def _signal(self, sig: int) -> Any:
        def send(pod: dict[str, Any], name: str) -> None:
            kubelet = self.kubelets.get(self._node(pod))
            cp = kubelet.containers.get(o.key(pod), {}).get(name) if kubelet else None
            if cp is not None and cp.proc is not None and cp.proc.poll() is None:
                try:
                    os.killpg(cp.proc.pid, sig)
                except ProcessLookupError:
                    pass
        return send

    def _running(self, pod: dict[str, Any], name: str) -> bool:
        kubelet = self.kubelets.get(self._node(pod))
        cp = kubelet.poll_containers(o.key(pod)).get(name) if kubelet else None
        return cp is not None and cp.proc is not None and cp.exit_code is None

    def _container_event(self, pod: dict[str, Any], name: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events(o.ref(pod), reason, message, f"kubelet/{self._node(pod)}")

    @staticmethod
    def is_dns_pod(pod: Pod) -> bool:
        return pod.meta.labels.get(DNS_LABEL[0]) == DNS_LABEL[1] and pod.meta.namespace == "kube-system"

    def node_alive(self, node: str) -> bool:
        return node in self.kubelets and node not in self.failed

    @staticmethod
    def _ports(pod: dict[str, Any], typed: Pod, down: set[str] | frozenset[str] = frozenset(),
               services: ServiceIndex | None = None) -> list[tuple[int, str]]:
        """The ports the workload server listens on: every declared containerPort, and for the containers
        it plays (no `command`) the ports their tcpSocket/httpGet/grpc probes name, which images listen on
        without declaring them; none of the played containers in `down` (killed, not restarted yet). A pod
        of played containers only (no process of its own could be the listener), not on the host network
        and with none down, also serves the numeric targetPorts of the Services in `services` that select
        it (netsim.node.service_ports)."""
        out = []
        containers = container_manifests(pod)
        running = [*containers,  # and the sidecars, which run alongside them
                   *(c for c in container_manifests(pod, init=True) if c.get("restartPolicy") == "Always")]
        if services and not down and not typed.spec.host_network and not any(container_argv(c) for c in running):
            out += target_ports_for(typed, services)
        for c in containers:
            if c["name"] in down and not container_argv(c):
                continue
            for p in c.get("ports") or []:
                out.append((int(p["containerPort"]), p.get("protocol", "TCP")))
            if container_argv(c):
                continue
            for key in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = _probe_port(c, c.get(key) or {})
                if port is not None:
                    out.append((port, "TCP"))
        return sorted(set(out))

    def start_container(self, kubelet: Kubelet, sb: Sandbox, pod: dict[str, Any], container: dict[str, Any],
                        *, restarts: int | None = None, service_env: dict[str, str] | None = None) -> bool:
        """Start one container as its securityContext (or the cluster's containerDefaults) says, with the
        environment, command, volumes and working directory the kubelet gives it (pod_setup). A container
        the kubelet refuses (runAsNonRoot and uid 0, a missing ConfigMap/Secret/key: reason
        CreateContainerConfigError; a volume that cannot be made: ContainerCreating, event FailedMount)
        is recorded as Waiting instead and retried next pass. A container without a command has no
        process (the workload server plays it). True when the container is up (or played)."""
        defaults = self.spec.containers
        name = container["name"]
        ref_key = (o.key(pod), name)
        typed = self.typed(pod)
        if sb.ip and not typed.status.pod_ip:
            pod = with_sandbox_ip(pod, sb.ip, kubelet.node.ip)
        try:
            sec = effective(pod, container, default_uid=defaults.run_as_user, default_gid=defaults.run_as_group)
            if service_env is None:
                service_env = env_for_pod(typed, self.services())
            if self.setup is None:
                argv = container_argv(container)
                env = {**service_env, **{e["name"]: str(e.get("value", "")) for e in container.get("env") or []}}
                cfg = None
            else:
                ctx = self.setup.context(pod, service_env, kubelet.node.ip)
                cfg = self.setup.container_config(pod, container, ctx, kubelet.node.name)
                argv, env = cfg.argv, cfg.env
                for reason, message in ctx.events:
                    self._report(pod, name, reason, message, kubelet)
        except ContainerConfigError as exc:
            kubelet.refuse_container(sb, name, exc.reason, str(exc))
            self._report(pod, name, "Failed", f"Error: {exc}", kubelet)
            return False
        except VolumeError as exc:
            kubelet.refuse_container(sb, name, "ContainerCreating", "")
            self._report(pod, name, "FailedMount", str(exc), kubelet)
            return False
        except Exception as exc:  # noqa: BLE001 - one container's config must not fail the pass of all pods
            log.exception("making the config of container %s of %s failed", name, o.key(pod))
            kubelet.refuse_container(sb, name, ContainerConfigError.reason, f"{type(exc).__name__}: {exc}")
            self._report(pod, name, "Failed", f"Error: {type(exc).__name__}: {exc}", kubelet)
            return False
        self._refused.pop(ref_key, None)
        if not argv:
            kubelet.forget_container(sb, name)
            return True
        kubelet.start_container(sb, name, argv, env, sec, restarts=restarts,
                                mounts=cfg.mounts if cfg else None, workdir=cfg.workdir if cfg else "",
                                scratch=cfg.scratch if cfg else "")
        return True

    def _report(self, pod: dict[str, Any], container: str, reason: str, message: str, kubelet: Kubelet) -> None:
        """An event about a container, once per distinct message (the kubelet's retries do not repeat it)."""
        key = (o.key(pod), container)
        if self._refused.get(key) == f"{reason}:{message}":
            return
        self._refused[key] = f"{reason}:{message}"
        if self.events is not None:
            self.events(o.ref(pod), reason, message, f"kubelet/{kubelet.node.name}")

    def _sandbox_of(self, pod: dict[str, Any]) -> tuple[Kubelet | None, Sandbox | None]:
        kubelet = self.kubelets.get(self._node(pod))
        if kubelet is None:
            return None, None
        sb = kubelet.sandbox(o.namespace(pod) or "default", o.name(pod))
        if sb is None and self.host_network(pod):
            sb = Sandbox(o.namespace(pod) or "default", o.name(pod), o.uid(pod) or o.name(pod),
                         naming.node_ns(self.spec.name, kubelet.node.name), "host", kubelet.node.ip,
                         kubelet.node.name)
        return kubelet, sb

    def retry_refused(self, pod: dict[str, Any]) -> None:
        """Containers refused before (CreateContainerConfigError, ContainerCreating) are tried again, as
        the kubelet's next sync of the pod does: the ConfigMap or Secret may exist now. Init containers
        are moved on (InitRunner.advance: started, completed, restarted)."""
        kubelet, sb = self._sandbox_of(pod)
        if kubelet is None or sb is None:
            return
        if self.typed(pod).spec.init_containers:
            self.inits.advance(pod)
        procs = kubelet.containers.get(o.key(pod), {})
        for c in container_manifests(pod):
            p = procs.get(c["name"])
            if p is not None and p.waiting is not None:
                self.start_container(kubelet, sb, pod, c)

    def _start_all(self, kubelet: Kubelet, sb: Sandbox, pod: dict[str, Any], typed: Pod) -> None:
        if typed.spec.init_containers:
            self.inits.begin(pod)  # the app containers start when initialization is done
            return
        self._start_apps(pod)

    def _start_apps(self, pod: dict[str, Any]) -> None:
        kubelet, sb = self._sandbox_of(pod)
        if kubelet is None or sb is None:
            return
        service_env = env_for_pod(self.typed(pod), self.services())
        for c in container_manifests(pod):
            self.start_container(kubelet, sb, pod, c, service_env=service_env)

    def _start_init(self, pod: dict[str, Any], container: dict[str, Any]) -> bool:
        kubelet, sb = self._sandbox_of(pod)
        return kubelet is not None and sb is not None and self.start_container(kubelet, sb, pod, container)

    def _pod_procs(self, pod: dict[str, Any]) -> dict[str, Any]:
        kubelet = self.kubelets.get(self._node(pod))
        return kubelet.poll_containers(o.key(pod)) if kubelet else {}

    def _sidecar_started(self, pod: dict[str, Any], c: dict[str, Any], p: Any) -> bool:
        """A running sidecar with a startupProbe counts as started once that probe succeeded (the prober's
        startup worker; its liveness/readiness probes are not run here)."""
        ip = self.typed(pod).status.pod_ip
        if not ip:
            return False
        view = {"name": c["name"], "ports": c.get("ports") or [], "startupProbe": c["startupProbe"]}
        res = self.prober.evaluate(o.key(pod), view, p.started, p.started, time.time(),
                                   self._probe_call(pod, view, ip, False))
        return res.started

    def _played(self, pod: dict[str, Any], name: str, exit_code: int | None) -> None:
        kubelet, sb = self._sandbox_of(pod)
        if kubelet is not None and sb is not None:
            kubelet.record_played(sb, name, exit_code)

    def _serve_ports(self, pod: dict[str, Any]) -> list[tuple[int, str]]:
        typed = self.typed(pod)
        ports = self._ports(pod, typed, self.played.down(o.key(pod)), self.service_ports)
        return [p for p in ports if p not in DNS_PORTS] if self.is_dns_pod(typed) else ports

    def host_network(self, pod: dict[str, Any]) -> bool:
        return self.typed(pod).spec.host_network

    def create_sandbox(self, pod: dict[str, Any]) -> str:
        # Strictly decoded: a pod that does not parse gets no sandbox, and the loop reports why
        # (FailedCreatePodSandBox, naming the field), before anything is made for it.
        typed: Pod = self.decode(pod)
        kubelet = self.kubelets[typed.spec.node_name or ""]
        self._started[o.key(pod)] = time.time()
        self._forget_probes(o.key(pod))  # a pod made again under the same name starts from no result
        if typed.spec.host_network:
            return self._run_host_network(pod, kubelet)
        sb = kubelet.run_sandbox(o.namespace(pod) or "default", o.name(pod), o.uid(pod) or o.name(pod))
        self._furnish(pod, typed, kubelet, sb)
        self._start_all(kubelet, sb, pod, typed)
        return sb.ip

    def _furnish(self, pod: dict[str, Any], typed: Any, kubelet: Any, sb: Sandbox, *,
                 own_netns: bool = True) -> None:
        """What a sandbox holds besides its network, made when it is created and again when a restarted
        daemon adopts it: resolv.conf, /etc/hosts and CoreDNS's port 53 (only in a netns of the pod's own),
        and the ports the workload server plays."""
        if own_netns:
            write_resolv_conf(sb.netns, pod_resolv_conf(typed, cluster_dns=[self.dns_ip],
                                                        cluster_domain=self.spec.dns_domain,
                                                        host=self.host_resolv))
            if self.setup is not None:
                self.setup.write_hosts(typed, sb.netns, sb.ip)
            if self.is_dns_pod(typed):
                self.dns.serve(sb.netns)
        ports = self._serve_ports(pod)
        if ports:
            self.workload.serve(o.key(pod), kubelet.node.name, sb.netns, ports)

    def _run_host_network(self, pod: dict[str, Any], kubelet: Kubelet) -> str:
        """hostNetwork: the pod shares the node's namespace and IP; no CNI, no sandbox of its own."""
        node_ns = naming.node_ns(self.spec.name, kubelet.node.name)
        sb = Sandbox(o.namespace(pod) or "default", o.name(pod), o.uid(pod) or o.name(pod), node_ns, "host",
                     kubelet.node.ip, kubelet.node.name)
        ports = self._serve_ports(pod)
        if ports:
            self.workload.serve(o.key(pod), kubelet.node.name, node_ns, ports)
        self._start_all(kubelet, sb, pod, self.typed(pod))
        return kubelet.node.ip

    def delete_sandbox(self, pod: dict[str, Any], *, keep_volumes: bool = False) -> None:
        """`keep_volumes`: the pod lives on in a new sandbox (a vanished one is made again): its emptyDirs
        keep their data, as they belong to the pod, not to the sandbox."""
        node = self._node(pod)
        if self.host_network(pod):
            self.workload.unserve(o.key(pod))
            self.inits.forget(o.key(pod))
            if node in self.kubelets:
                self.kubelets[node].stop_containers(o.namespace(pod) or "default", o.name(pod))
            if self.setup is not None and not keep_volumes:
                self.setup.volumes.teardown(naming.pod_part(o.namespace(pod) or "default", o.name(pod)))
            return
        self.teardown(node, o.namespace(pod) or "default", o.name(pod), keep_volumes=keep_volumes)

    def teardown(self, node: str, namespace: str, name: str, *, keep_volumes: bool = False) -> None:
        """Everything a pod's sandbox holds, in the order that frees its namespace: the sockets bound in it
        (workload ports, CoreDNS's port 53: an open socket keeps a deleted namespace alive), the container
        processes, CNI DEL and the netns, then its /etc/netns entry. Used for deleted pods and for
        sandboxes found without a pod alike (the kubelet's garbage collection of orphan sandboxes)."""
        self.workload.unserve(f"{namespace}/{name}")
        self.inits.forget(f"{namespace}/{name}")
        self.terminator.forget(f"{namespace}/{name}")
        self._started.pop(f"{namespace}/{name}", None)
        self._forget_probes(f"{namespace}/{name}")
        kubelet = self.kubelets.get(node)
        sb = kubelet.sandbox(namespace, name) if kubelet else None
        netns = sb.netns if sb else naming.pod_ns(self.spec.name, namespace, name)
        self.dns.unserve(netns)
        if kubelet is not None:
            kubelet.stop_sandbox(namespace, name)
        if self.setup is not None:
            self.setup.remove(netns, namespace, name, keep_volumes=keep_volumes)
        remove_resolv_conf(netns)

    def adopt(self, pod: dict[str, Any], sb: Sandbox | None) -> None:
        """Take over a running pod after a daemon restart: its sandbox (None: hostNetwork) stays, the
        sockets bound in it (workload ports, CoreDNS's port 53) and its resolv.conf are made again, and its
        container processes, killed by `kill_containers`, are restarted with their restart count plus one."""
        typed = self.typed(pod)
        kubelet = self.kubelets[typed.spec.node_name or ""]
        own_netns = sb is not None
        if sb is None:
            netns = naming.node_ns(self.spec.name, kubelet.node.name)
            sb = Sandbox(o.namespace(pod) or "default", o.name(pod), o.uid(pod) or o.name(pod), netns, "host",
                         kubelet.node.ip, kubelet.node.name)
        self._furnish(pod, typed, kubelet, sb, own_netns=own_netns)
        status = typed.status.raw
        if typed.spec.init_containers:
            initialized = typed.status.condition("Initialized")
            done = initialized is not None and initialized.true
            self.inits.begin(pod, initialized=done)
            if not done:
                return  # initialization runs again; the app containers follow it
        base = int(status.get("netsimRestarts", 0))
        seen = {c.get("name"): c for c in status.get("containerStatuses") or []}
        policy = typed.spec.restart_policy
        env = env_for_pod(typed, self.services())
        for c in container_manifests(pod):
            last = seen.get(c["name"]) or {}
            done = ((last.get("state") or {}).get("terminated") or {})
            if done and (policy == "Never" or (policy == "OnFailure" and done.get("exitCode") == 0)):
                continue  # finished for good before the restart; nothing to run again
            restarts = max(0, int(last.get("restartCount", base)) - base) + (1 if container_argv(c) else 0)
            self.start_container(kubelet, sb, pod, c, restarts=restarts, service_env=env)

    def pod_state(self, pod: dict[str, Any]) -> PodState:
        typed = self.typed(pod)
        kubelet = self.kubelets[typed.spec.node_name or ""]
        key = o.key(pod)
        procs = kubelet.poll_containers(key)
        policy = typed.spec.restart_policy
        if typed.spec.init_containers:
            init = self.inits.state(pod)
            if init is None or not init.done:
                failed = init is not None and init.failed
                return PodState(ready=False, phase="Failed" if failed else "Pending", initialized=False)
            apps = {c["name"] for c in container_manifests(pod)}
            procs = {n: p for n, p in procs.items() if n in apps}  # sidecars do not decide the phase
        if any(p.waiting is not None for p in procs.values()):
            return PodState(ready=False, phase="Pending")  # a container the kubelet refused to create
        if procs:
            codes = [p.exit_code for p in procs.values()]
            if all(c is not None for c in codes):
                if all(c == 0 for c in codes) and policy != "Always":
                    return PodState(ready=False, phase="Succeeded")
                if any(c != 0 for c in codes) and policy == "Never":
                    return PodState(ready=False, phase="Failed")
        ports_ready = self.workload.ready(key) if self._serve_ports(pod) else True
        now = time.time()
        # A container process counts as running once the runtime's relist could have seen it so: the
        # kubelet reads a pod's status from the cache the PLEG fills, relisting every second
        # (pkg/kubelet/pleg/generic.go relistPeriod; kubelet.go syncPod takes podCache.Get), so a process
        # that exits at once is never reported Ready (PLEG_SEEN: half a relist period, the mean wait).
        running = all(p.exit_code is None and p.waiting is None
                      and (p.proc is None or now - p.started >= PLEG_SEEN) for p in procs.values())
        probes_ready = self._probe(pod, procs)
        return PodState(ready=ports_ready and running and probes_ready and not self.played.down(key),
                        phase="Running")

    def _forget_probes(self, pod_key: str) -> None:
        self.prober.forget(pod_key)
        self.played.forget(pod_key)
        self.probes.forget(pod_key)
        self._killed.forget(pod_key)
        self._spam.forget(pod_key)

    def _probe(self, pod: dict[str, Any], procs: dict[str, Any]) -> bool:
        """Run the containers' probes as the kubelet's workers do (netsim.node.prober); True when every
        container is started and ready. A committed liveness/startup failure kills the container: a process
        gets SIGTERM, then SIGKILL after its grace period, and is restarted per restartPolicy with the
        back-off (`_update_container_statuses`); a played container's ports are closed and opened again
        (`_restart_played`). Failed probes are `Unhealthy` events, kills `Killing` events, in the kubelet's
        words (prober.go recordContainerEvent; kuberuntime_manager.go computePodActions)."""
        typed = self.typed(pod)
        ip = typed.status.pod_ip
        key = o.key(pod)
        node = typed.spec.node_name or ""
        from netsim.store import parse_time
        sandbox_started = self._started.get(key) or parse_time(typed.status.raw.get("startTime")) or time.time()
        self._restart_played(pod)
        ready = True
        now = time.time()
        for c in container_manifests(pod):
            played = not container_argv(c)
            if played:
                instance, since = self.played.instance(key, c["name"], sandbox_started)
            else:
                p = procs.get(c["name"])
                running = p is not None and p.exit_code is None and p.waiting is None
                instance, since = (p.started, p.started) if running else (None, now)
            if not ip:
                instance = None
            call = self._probe_call(pod, c, ip or "", played)
            res = self.prober.evaluate(key, c, instance, since, now, call)
            self.probes[(key, c["name"])] = res
            ready &= res.ready
            actor = f"kubelet/{node}"
            for kind, output in res.failures:
                if self._spam.allow((key, actor), now):
                    self._record(o.ref(pod), "Unhealthy", f"{kind} probe failed: {output}"[:1024], actor)
            if res.kill and (key, c["name"], instance) not in self._killed:
                self._killed[(key, c["name"], instance)] = None
                self._kill(pod, c, res.kill, played, actor)
        return ready

    def _record(self, ref: str, reason: str, message: str, actor: str) -> None:
        if self.events is not None:
            self.events(ref, reason, message, actor)

    def _probe_call(self, pod: dict[str, Any], c: dict[str, Any], ip: str, played: bool) -> Any:
        node_ns = naming.node_ns(self.spec.name, self._node(pod))
        pod_ns = naming.pod_ns(self.spec.name, o.namespace(pod) or "default", o.name(pod))

        def call(kind: str, probe: dict[str, Any], timeout: float) -> tuple[bool, str]:
            return run_probe(self.kernel, node_ns=node_ns, pod_ns=pod_ns, ip=ip, container=c, probe=probe,
                             timeout=timeout, played=played)
        return call

    def _kill(self, pod: dict[str, Any], c: dict[str, Any], kind: str, played: bool, actor: str) -> None:
        typed = self.typed(pod)
        policy = typed.spec.restart_policy
        message = f"Container {c['name']} failed {kind.lower()} probe"
        if policy != "Never":  # shouldRestartOnFailure: Always and OnFailure restart a killed container
            message += ", will be restarted"
        self._record(o.ref(pod), "Killing", message, actor)
        key = o.key(pod)
        if played:
            self.played.kill(key, c["name"])
            ports = self._serve_ports(pod)
            kubelet = self.kubelets[typed.spec.node_name or ""]
            sb = kubelet.sandbox(o.namespace(pod) or "default", o.name(pod))
            netns = sb.netns if sb else naming.node_ns(self.spec.name, kubelet.node.name)
            self.workload.serve(key, kubelet.node.name, netns, ports)
            self._restart_played(pod)  # the first restart is at once (the kubelet kills and starts in one sync)
            return
        probe = c.get("livenessProbe" if kind == LIVENESS else "startupProbe") or {}
        grace = probe.get("terminationGracePeriodSeconds", typed.spec.termination_grace_period_seconds)
        self.kubelets[typed.spec.node_name or ""].kill_container(key, c["name"], min(float(grace), KILL_GRACE_CAP))

    def _restart_played(self, pod: dict[str, Any]) -> None:
        """Played containers killed after a failed probe come back once the back-off allows (never with
        restartPolicy Never): their ports are served again and their probes start afresh."""
        key = o.key(pod)
        down = self.played.down(key)
        typed = self.typed(pod)
        if not down or typed.spec.restart_policy == "Never":
            return
        due = [n for n in down if self.played.restart_wait(key, n) <= 0]
        for name in due:
            self.played.restart(key, name)
        if due:
            kubelet = self.kubelets[typed.spec.node_name or ""]
            sb = kubelet.sandbox(o.namespace(pod) or "default", o.name(pod))
            netns = sb.netns if sb else naming.node_ns(self.spec.name, kubelet.node.name)
            self.workload.serve(key, kubelet.node.name, netns, self._serve_ports(pod))



def with_sandbox_ip(pod: dict[str, Any], ip: str, host_ip: str) -> dict[str, Any]:
    """The stored pod with its sandbox's address as status.podIP, before the status says so: the kubelet
    knows it from the sandbox when it makes the containers' config (status.podIP in env and the downward
    API, which read the pod's fields by their paths). A copy; the stored row is not changed."""
    status = {**(pod.get("status") or {}), "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip,
              "hostIPs": [{"ip": host_ip}]}
    return {**pod, "status": status}
