"""The kubelet's side of each pass against the store, for every node: what a kubelet's pod workers and its
housekeeping do besides making and removing sandboxes (which the control loop's kubelet step asks of
`ClusterKubelet`).

- `adopt`: a restarted kubelet takes over what an earlier one left (sandboxes matching their pods kept,
  the rest torn down, container processes restarted);
- `heal_sandboxes`: a vanished sandbox is made again (SandboxChanged), an orphan one removed;
- `update_container_statuses`: containerStatuses as the kubelet reports them, and restartPolicy: exited
  containers restarted with the CrashLoopBackOff back-off (netsim/node/backoff.py) or left Terminated;
- `sync_service_ports`, `sync_volumes`: the workload server's Service targetPorts and the API-data volumes
  after the objects they come from changed.

Which pods a pass works on follows the change, as a kubelet's pod workers do (netsim.agents.pod_source):
`work` hands the control loop's kubelet step the pods that changed in the store, whose container process
exited (the PLEG), or whose time came again (an unsettled pod next pass, a probed one within a second,
a settled one every RESYNC_PERIOD); `update_container_statuses` reports on those same pods, and says
when each is due again; `heal_sandboxes` is housekeeping, every 2 s.

It is constructed with the cluster's identity (spec, nodes), a kernel, the store and the per-node kubelets,
and reports through an event callback, so it runs wherever the store can be read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from netsim import naming
from netsim.agents.changes import ChangeTracker
from netsim.agents.kubelet import ClusterKubelet, last_line
from netsim.agents.pod_source import PodSource
from netsim.agents.podread import container_manifests, typed_pod
from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.loop import FAILURES, RETRY_AT, Clock
from netsim.dns.resolvconf import remove_resolv_conf
from netsim.kernel import netns as netns_mod
from netsim.kernel.api import Kernel
from netsim.model.cluster import ClusterSpec
from netsim.model.pod import Pod
from netsim.node.backoff import RestartBackoff
from netsim.node.kubelet import kill_containers
from netsim.node.network import NodeRec
from netsim.node.service_ports import index_services
from netsim.store import Store, rfc3339

log = logging.getLogger("netsim.daemon")
ETC_NETNS = "/etc/netns"
# A settled pod (Running and Ready, nothing in flight) is synced again this often without a change, as the
# kubelet's --sync-frequency resyncs every pod (KubeletConfiguration syncFrequency, 1 min by default:
# pkg/kubelet/apis/config/v1beta1 defaults). What changes meanwhile reaches a pod sooner: a store change,
# its container process exiting (the PLEG check in `work`), its probes (PROBE_CHECK), housekeeping. At 10 s
# an idle daemon with 1,000 pods synced a hundred pods a second.
RESYNC_PERIOD = 60.0
# A pod with probes is looked at again at least this often: its probes run on their own periods
# (netsim.node.prober), this only collects their results and starts the due ones.
PROBE_CHECK = 1.0
EventFn = Callable[[str, str, str, str], None]  # (object ref, reason, message, actor)


class PodSync:
    """The kubelet's per-pass pod work for every node of one cluster (see the module's docstring)."""

    def __init__(self, spec: ClusterSpec, nodes: dict[str, NodeRec], kernel: Kernel, store: Store,
                 kubelet: ClusterKubelet, clock: Clock, events: EventFn):
        self.spec = spec
        self.spec_nodes = {n.name for n in spec.nodes}
        self.nodes = nodes
        self.kernel = kernel
        self.store = store
        self.kubelet = kubelet
        self.kubelets = kubelet.kubelets
        self.workload = kubelet.workload
        self.dns = kubelet.dns
        self.pod_setup = kubelet.setup
        self.clock = clock
        self.events = events
        self.backoff = RestartBackoff()
        self._last_state: dict[tuple[str, str], dict[str, Any]] = {}  # (pod key, container) -> lastState
        self._reported: set[tuple[str, str, float]] = set()  # exits already given their event
        self.services_stale = True  # the workload server's Service targetPorts are read on the first pass
        self.source = PodSource(store)  # the pods, from the change log, and when each is due
        # The sources of API-data volumes that changed (a pod: its downward API; a ConfigMap or Secret: its
        # namespace's pods), so a volume sync follows the change, not the number of pods.
        self._volume_changes = ChangeTracker(store, {"Pod", "ConfigMap", "Secret"})
        self._alive: set[str] = set()  # nodes alive at the last `work`
        self._worked: list[str] = []  # the pods handed to this pass's kubelet step
        self.synced = 0  # pods synced, over the daemon's life (what tests count)

    def work(self) -> list[dict[str, Any]]:
        """The pods this pass syncs (syncLoopIteration's configCh, plegCh and syncCh in one): those that
        changed since the last pass, those whose container process exited (the PLEG relist,
        pkg/kubelet/pleg/generic.go, over the running processes), those whose work-queue time came, and
        every pod of a node that came back. Call it right before the kubelet step."""
        self.source.poll()
        if self._worked:
            # The last pass failed between its kubelet step and update_container_statuses (which requeues
            # what it synced): its pods were taken off the queue and are given back now, as the kubelet's
            # pod worker requeues a pod whose sync returned an error (pkg/kubelet/pod_workers.go
            # completeWork). Otherwise a terminating pod whose teardown raised would never be synced again.
            self.source.enqueue_all(self._worked)
        alive = {n for n in self.kubelets if self.kubelet.node_alive(n)}
        back, self._alive = alive - self._alive, alive
        if back:
            self.source.enqueue_all(k for k, p in self.source.pods.items() if self._node(p) in back)
        for kubelet in self.kubelets.values():
            for key, procs in kubelet.containers.items():
                if any(cp.proc is not None and cp.exit_code is None and cp.proc.poll() is not None
                       for cp in procs.values()):
                    self.source.enqueue(key, 0.0)
        pods = self.source.take_due()
        self._worked = [o.key(p) for p in pods]
        self.synced += len(pods)
        return pods

    def typed(self, pod: dict[str, Any]) -> Pod:
        """The typed Pod of a stored pod, from the store's parse cache (netsim.agents.podread)."""
        return typed_pod(self.store.decode, pod)

    def _node(self, pod: dict[str, Any]) -> str:
        return self.typed(pod).spec.node_name or ""

    def _requeue(self, pod: dict[str, Any]) -> None:
        """When this pod is synced again without a change: a pod on its way somewhere (not yet Running and
        Ready, terminating, a container waiting or backing off) next pass; one whose sandbox failed when
        its back-off ends; one with probes within PROBE_CHECK (next pass while a probe runs); a settled
        one after RESYNC_PERIOD. A finished pod, or one whose node is down, waits for a change."""
        key = o.key(pod)
        typed = self.typed(pod)
        node = typed.spec.node_name
        if not node or not self.kubelet.node_alive(node) or ps.terminal(typed):
            return
        status = typed.status.raw
        if status.get(FAILURES) and not typed.status.pod_ip and not ps.terminating(typed):
            self.source.enqueue(key, float(status.get(RETRY_AT, 0)) - self.clock.now())
            return
        waiting = any("running" not in (c.get("state") or {}) for c in status.get("containerStatuses") or [])
        if (ps.terminating(typed) or not typed.status.pod_ip or ps.phase(typed) != "Running"
                or not typed.status.ready or waiting or self.kubelet.played.down(key) or self.kubelet.prober.pod_in_flight(key)):
            self.source.enqueue(key, 0.0)
            return
        periods = [float((c.get(f) or {}).get("periodSeconds", 10))
                   for c in (*container_manifests(pod), *container_manifests(pod, init=True))
                   for f in ("readinessProbe", "livenessProbe", "startupProbe") if c.get(f)]
        self.source.enqueue(key, min([PROBE_CHECK, *periods]) if periods else RESYNC_PERIOD)

    def _event(self, ref: str, reason: str, message: str, *, actor: str = "netsim") -> None:
        self.events(ref, reason, message, actor)

    def adopt(self) -> None:
        """What a restarted kubelet does before its first sync (k8s pkg/kubelet: the runtime's sandboxes are
        listed, kuberuntime_manager.go computePodActions keeps a sandbox that still matches its pod, and
        kubelet_pods.go / the container GC remove sandboxes without a pod): every sandbox record of every
        node is matched against the store. A sandbox whose pod is bound to that node with the same UID and
        IP, and whose netns survived, is adopted (ClusterKubelet.adopt); anything else (no pod, another
        UID, half-built: no IP yet, the netns gone) is torn down in full: the pod, if any, gets a new one
        from the kubelet step. Pod netns and /etc/netns entries of this cluster without a record are
        removed too. Container processes of the dead daemon are killed and restarted (their restart count
        goes up by one)."""
        cluster = self.spec.name
        pods = self.store.list("Pod")
        # With the nodes split over host agents (netsim.hostagent), the pods bound to another host's nodes
        # are that agent's: their containers and sandboxes are left alone (none when this runs every node).
        foreign = [p for p in pods if self._node(p) in self.spec_nodes and self._node(p) not in self.kubelets]
        killed = kill_containers(cluster, spare={o.key(p) for p in foreign})
        by_key = {o.key(p): p for p in pods}
        kept: set[str] = {naming.pod_ns(cluster, o.namespace(p) or "default", o.name(p)) for p in foreign}
        adopted = removed = 0
        for node, kubelet in self.kubelets.items():
            for key, sb in kubelet.sandboxes().items():
                pod = by_key.get(key)
                typed = self.typed(pod) if pod is not None else None
                if (pod is not None and typed is not None and typed.spec.node_name == node
                        and o.uid(pod) in (None, sb.uid) and sb.ip and typed.status.pod_ip == sb.ip
                        and not ps.terminal(typed) and kubelet.sandbox_alive(sb)):
                    kept.add(sb.netns)
                    if not ps.terminating(typed) and self.kubelet.node_alive(node):
                        self.kubelet.adopt(pod, sb)
                    adopted += 1
                else:
                    try:
                        self.kubelet.teardown(node, sb.namespace, sb.name)
                    except Exception:  # noqa: BLE001 - one broken leftover must not keep the daemon down
                        log.exception("removing the sandbox of %s on %s failed", key, node)
                    removed += 1
        for pod in pods:
            typed = self.typed(pod)
            if (typed.spec.host_network and self.kubelet.node_alive(typed.spec.node_name or "")
                    and typed.status.pod_ip and ps.active(typed)):
                self.kubelet.adopt(pod, None)
                adopted += 1
        prefix = naming.pod_ns_prefix(cluster)
        stray = [n for n in netns_mod.list_names(prefix) if n not in kept and naming.owned_by(cluster, n)]
        if stray:
            procs = netns_mod.pids_by_netns()
            for n in stray:
                for pid in procs.get(netns_mod.identity(n) or (0, 0), []):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.dns.unserve(n)
                self.kernel.netns_delete(n)
                remove_resolv_conf(n)
        for n in os.listdir(ETC_NETNS) if os.path.isdir(ETC_NETNS) else []:
            if n.startswith(prefix) and naming.owned_by(cluster, n) and not self.kernel.netns_exists(n):
                remove_resolv_conf(n)
        if adopted or removed or stray or killed:
            self._event("cluster", "KubeletsRestarted", f"adopted {adopted} sandbox(es), removed {removed} and "
                        f"{len(stray)} without a record, restarting {killed} container process(es)")
            log.info("adopted %d sandboxes, removed %d (+%d without a record), killed %d container processes",
                     adopted, removed, len(stray), killed)

    def heal_sandboxes(self) -> None:
        """Housekeeping (HandlePodCleanups, every HOUSEKEEPING_PERIOD: netsim.agents.pod_source): pods whose
        sandbox vanished (a crash, `netsim kill pod`) get a new one; sandboxes whose pod is gone are removed
        (housekeeping after a node comes back). Between housekeepings, nothing."""
        if not self.source.housekeeping_due():
            return
        self.source.poll()
        by_key = dict(self.source.pods)
        # One listing of the cluster's pod netns instead of a stat per pod (the runtime's sandbox list that
        # HandlePodCleanups compares with the pods); one made since the listing is looked up on its own.
        live = set(self.kernel.netns_list(naming.pod_ns_prefix(self.spec.name)))
        # Looked at one by one: the pods whose sandbox record names a netns the listing does not show, and
        # those without a record (set operations over the records, not a walk of every pod's fields: a pod's
        # node never changes once bound, so its record is on its own node's kubelet).
        recorded: set[str] = set()
        suspects: set[str] = set()
        for kubelet in self.kubelets.values():
            records = kubelet.sandboxes()
            recorded.update(records)
            suspects.update(k for k, sb in records.items() if sb.netns not in live)
        suspects.update(by_key.keys() - recorded)
        for pod in [by_key[k] for k in sorted(suspects) if k in by_key]:
            typed = self.typed(pod)
            node = typed.spec.node_name or ""
            if (not typed.status.pod_ip or not self.kubelet.node_alive(node) or not ps.active(typed)
                    or typed.spec.host_network):
                continue
            kubelet = self.kubelets[node]
            sb = kubelet.sandbox(o.namespace(pod) or "default", o.name(pod))
            if sb is not None and (sb.netns in live or kubelet.sandbox_alive(sb)):
                continue
            self.kubelet.delete_sandbox(pod, keep_volumes=True)
            new = sandbox_changed_status(pod)
            for typ in ("Ready", "ContainersReady"):
                o.set_condition(new, typ, "False", self.clock.now(), reason="SandboxChanged")
            restarts = int(new.get("netsimRestarts", 0)) + 1
            new["netsimRestarts"] = restarts
            new["containerStatuses"] = [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                                         "ready": False, "restartCount": restarts}
                                        for c in container_manifests(pod)]
            self.store.update_status("Pod", o.namespace(pod), o.name(pod), new)  # the change syncs it
            self._event(o.ref(pod), "SandboxChanged", "pod sandbox changed, it will be killed and re-created",
                        actor=f"kubelet/{node}")
        for name, kubelet in self.kubelets.items():
            if not self.kubelet.node_alive(name):
                continue
            for key, sb in kubelet.sandboxes().items():
                pod = by_key.get(key)
                if pod is None or (o.uid(pod) and o.uid(pod) != sb.uid):
                    self.kubelet.teardown(name, sb.namespace, sb.name)

    def update_container_statuses(self) -> None:
        """containerStatuses as the kubelet reports them. An exited container is Terminated (Completed for
        exit 0, Error otherwise) when its restartPolicy keeps it down; else it is restarted with the
        kubelet's back-off (netsim/node/backoff.py), Waiting with reason CrashLoopBackOff meanwhile, and
        `lastState` keeps the exit. A command that cannot start (container_init's exit 128, runc's
        StartError) is Waiting with reason RunContainerError and an event Failed, as kuberuntime's
        startContainer error is reported; it is retried with the same back-off."""
        now = time.time()
        self.source.poll()  # the kubelet step's own writes
        worked, self._worked = self._worked, []
        for pod_key in worked:
            pod = self.source.pods.get(pod_key)
            if pod is None:
                continue
            try:
                self._container_statuses(pod, now)
            finally:
                self._requeue(self.source.pods.get(pod_key) or pod)
        for pod_key in self.source.take_deleted():
            self.backoff.forget(pod_key)
            for k in [k for k in self._last_state if k[0] == pod_key]:
                del self._last_state[k]
            self._reported = {r for r in self._reported if r[0] != pod_key}

    def _container_statuses(self, pod: dict[str, Any], now: float) -> None:
        """One pod's containerStatuses (update_container_statuses)."""
        typed = self.typed(pod)
        node = typed.spec.node_name or ""
        if not self.kubelet.node_alive(node) or not typed.status.pod_ip:
            return
        if ps.active(typed):
            self.kubelet.retry_refused(pod)
        procs = self.kubelets[node].poll_containers(o.key(pod))
        restarts = int(typed.status.raw.get("netsimRestarts", 0))
        ready = typed.status.ready
        cs = []
        # A pod being deleted keeps its exited containers down: the kubelet restarts nothing of a pod it
        # is killing (a container that exits at SIGTERM must not come back for the rest of the grace).
        policy = "Never" if ps.terminating(typed) else typed.spec.restart_policy
        init = self.kubelet.inits.state(pod) if typed.spec.init_containers else None
        for c in container_manifests(pod):
            p = procs.get(c["name"])
            key = (o.key(pod), c["name"])
            # imageID: the API requires it; netsim pulls no image, so it is empty (as a runtime that has
            # not resolved a digest reports it).
            entry: dict[str, Any] = {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                                     "restartCount": restarts + (p.restarts if p else 0)}
            if p is None and init is not None and not init.done:
                entry["state"] = {"waiting": {"reason": "PodInitializing"}}
                entry["ready"] = False
            elif p is not None and p.waiting is not None:
                entry["state"] = {"waiting": {"reason": p.waiting[0],
                                              **({"message": p.waiting[1]} if p.waiting[1] else {})}}
                entry["ready"] = False
            elif p is not None and p.exit_code is not None:
                entry["ready"] = False
                entry["state"] = self._exited(pod, c, p, key, policy, now)
            else:
                entry["state"] = {"running": {}}
                entry["ready"] = ready
                played = self.kubelet.played.peek(*key) if p is None else None
                if played is not None:
                    self._played_status(pod, c, played, entry)
            probes = self.kubelet.probes.get(key)
            if probes is not None and "running" in entry["state"]:
                entry["started"] = probes.started
                entry["ready"] = entry["ready"] and probes.ready
            if key in self._last_state:
                entry["lastState"] = self._last_state[key]
            cs.append(entry)
        status, new = container_statuses_status(pod, cs)
        if init is not None:
            new["initContainerStatuses"] = self.kubelet.inits.statuses(pod)
        if new != status:
            self.source.pods[o.key(pod)] = self.store.update_status("Pod", o.namespace(pod), o.name(pod), new)

    def _played_status(self, pod: dict[str, Any], c: dict[str, Any], played: Any, entry: dict[str, Any]) -> None:
        """A played container killed after a failed probe: its restarts, its last termination, and Waiting
        CrashLoopBackOff while the back-off holds its restart (netsim.node.liveness)."""
        entry["restartCount"] += played.restarts
        if played.last_terminated:
            t = played.last_terminated
            entry["lastState"] = {"terminated": {**t, "startedAt": rfc3339(t["startedAt"]),
                                                 "finishedAt": rfc3339(t["finishedAt"])}}
        if played.down_since is not None:
            entry["ready"] = False
            wait = int(self.kubelet.played.backoff.current((o.key(pod), c["name"])))
            entry["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                f"back-off {wait}s restarting failed container={c['name']} "
                f"pod={o.name(pod)}_{o.namespace(pod) or 'default'}({o.uid(pod)})")}}
        else:
            entry["state"] = {"running": {"startedAt": rfc3339(played.started)}}

    def _exited(self, pod: dict[str, Any], c: dict[str, Any], p: Any, key: tuple[str, str], policy: str,
                now: float) -> dict[str, Any]:
        """The state of an exited container, restarting it when its policy and the back-off allow."""
        start_error = p.exit_code == 128
        term = {"exitCode": p.exit_code,
                "reason": "StartError" if start_error else "Completed" if p.exit_code == 0 else "Error",
                "startedAt": rfc3339(p.started), "finishedAt": rfc3339(p.finished or now)}
        if start_error:
            term["message"] = last_line(p.log)
        seen = (*key, p.finished or 0.0)
        if seen not in self._reported:
            self._reported.add(seen)
            if start_error:
                self._event(o.ref(pod), "Failed", f"Error: {term['message']}", actor=f"kubelet/{self._node(pod)}")
        if not (policy == "Always" or (policy == "OnFailure" and p.exit_code != 0)):
            return {"terminated": term}
        node = self._node(pod)
        wait = self.backoff.remaining(key, p.finished or now, now)
        if wait > 0:
            # kuberuntime_manager.go doBackOff: "back-off %s restarting failed container=%s pod=%s"
            msg = (f"back-off {int(self.backoff.current(key))}s restarting failed container={c['name']} "
                   f"pod={o.name(pod)}_{o.namespace(pod) or 'default'}({o.uid(pod)})")
            if (*key, -(p.finished or 0.0)) not in self._reported:
                self._reported.add((*key, -(p.finished or 0.0)))
                self._event(o.ref(pod), "BackOff", f"Back-off restarting failed container {c['name']} in pod "
                            f"{o.name(pod)}_{o.namespace(pod) or 'default'}({o.uid(pod)})", actor=f"kubelet/{node}")
            reason = "RunContainerError" if start_error else "CrashLoopBackOff"
            return {"waiting": {"reason": reason, "message": term.get("message", msg) if start_error else msg}}
        sb = self.kubelets[node].sandbox(o.namespace(pod) or "default", o.name(pod))
        if sb is None:
            return {"terminated": term}
        self.backoff.next(key, now)
        self._last_state[key] = {"terminated": term}
        # The restarted container gets its whole config again: Service variables, valueFrom, volumes.
        if not self.kubelet.start_container(self.kubelets[node], sb, pod, c):
            p2 = self.kubelets[node].containers.get(o.key(pod), {}).get(c["name"])
            if p2 is not None and p2.waiting is not None:
                return {"waiting": {"reason": p2.waiting[0], **({"message": p2.waiting[1]} if p2.waiting[1] else {})}}
        return {"running": {}}

    def sync_service_ports(self) -> None:
        """Services changed: the workload server serves the numeric targetPorts of the Services selecting
        each played pod (netsim.node.service_ports); pods whose port list changed are served again (the
        workload server converges: new ports opened, stale ones closed)."""
        first, self.services_stale = self.services_stale, False
        old, new = self.kubelet.service_ports, index_services(self.store.typed_list("Service"))
        self.kubelet.service_ports = new
        self.source.poll()
        if first:
            pods = list(self.source.pods.values())
        else:  # only the pods an added or removed (selector, ports) entry selects
            changed = old.changed(new)
            pods = [p for p in self.source.pods.values()
                    if changed.matching(o.namespace(p) or "default", self.typed(p).meta.labels)]
        for pod in pods:
            typed = self.typed(pod)
            node = typed.spec.node_name or ""
            if (not typed.status.pod_ip or not self.kubelet.node_alive(node) or not ps.active(typed)
                    or typed.spec.host_network):
                continue
            key = o.key(pod)
            ports = self.kubelet._serve_ports(pod)
            if set(ports) == set(self.workload.listening(key)) | set(self.workload.failures(key)):
                continue
            sb = self.kubelets[node].sandbox(o.namespace(pod) or "default", o.name(pod))
            if sb is not None:
                self.workload.serve(key, node, sb.netns, ports)

    def sync_volumes(self) -> None:
        """The kubelet's volume sync: API-data volumes rewritten (atomically) from the current objects."""
        self.source.poll()
        batch = self._volume_changes.poll()
        namespaces = {ns or "default" for kind, ns, _ in batch.objects if kind != "Pod"}
        if batch.resync or namespaces:
            candidates = [p for p in self.source.pods.values()
                          if batch.resync or (o.namespace(p) or "default") in namespaces]
        else:
            keys = (f"{ns or 'default'}/{name}" for _, ns, name in batch.objects)
            candidates = [p for p in (self.source.pods.get(k) for k in keys) if p is not None]
        pods = [p for p in candidates if self.kubelet.node_alive(self._node(p))]
        for pod, volume in self.pod_setup.sync_volumes(pods, lambda p: self.nodes[self._node(p)].ip):
            self._event(o.ref(pod), "VolumeUpdated", f'volume "{volume}" updated',
                        actor=f"kubelet/{self._node(pod)}")


# -- the status writes: each starts from the stored pod's status, so fields netsim does not model survive ---

def sandbox_changed_status(pod: dict[str, Any]) -> dict[str, Any]:
    """The status of a pod whose sandbox vanished, before its new one: the stored status without its IPs."""
    return {k: v for k, v in (pod.get("status") or {}).items() if k not in ("podIP", "podIPs")}


def container_statuses_status(pod: dict[str, Any], statuses: list[dict[str, Any]]) -> tuple[dict[str, Any],
                                                                                           dict[str, Any]]:
    """(the stored status, it with `statuses` as its containerStatuses): the write is made when they differ."""
    status = pod.get("status") or {}
    return status, {**status, "containerStatuses": statuses}
