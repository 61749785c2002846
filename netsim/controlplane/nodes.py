"""Node objects, the node lifecycle controller, and garbage collection.

Node lifecycle (kubernetes pkg/controller/nodelifecycle, taint manager in pkg/controller/tainteviction;
our own code): a node whose kubelet has not heartbeaten for `node_monitor_grace_seconds` gets Ready=Unknown
and the taints node.kubernetes.io/unreachable (NoSchedule and NoExecute); a node reporting Ready=False gets
node.kubernetes.io/not-ready. Pods on a NoExecute-tainted node that do not tolerate the taint are evicted
(gracefully deleted) once they have stayed for their toleration's tolerationSeconds, or for
`pod_eviction_seconds` (the DefaultTolerationSeconds admission plugin's 300 s) when they carry no
toleration; a toleration without tolerationSeconds keeps the pod for ever (DaemonSet pods). Their
controllers replace them elsewhere. When heartbeats resume the taints go away. Meanwhile, as soon as a
node's Ready condition is not True, its pods' Ready condition is set to False (MarkPodsNotReady in
pkg/controller/util/node/controller_utils.go, called from the controller's processPod), with a Warning
event NodeNotReady "Node is not ready" per pod: their endpoints turn not ready and kube-proxy stops sending
traffic to a node nobody hears from, long before the pods are evicted. The node's kubelet, once it is
back, reports the pods' readiness again.

Garbage collection (pkg/controller/garbagecollector and podgc): objects whose controller owner is gone are
deleted (cascading Deployment -> ReplicaSet -> Pod, Job -> Pod, Service -> EndpointSlice); pods bound to a
node that no longer exists are deleted.
"""

from __future__ import annotations

import copy
import hashlib
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.leases import LEASE_NAMESPACE, renew_time
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.cluster import ClusterSpec
from netsim.model.errors import NetsimError, Source
from netsim.model.node import Node, parse_node
from netsim.model.nodeview import NodeView
from netsim.model.pod import Pod
from netsim.store import DELETED, Compacted, parse_time, rfc3339

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
ACTOR = "controller/node-lifecycle"


KUBERNETES_VERSION = "v1.32.0"  # the release netsim emulates (kinds, validation, kubelet behaviour)
CONTAINER_RUNTIME = "containerd://1.7.24"
MAX_PODS = 110  # the kubelet's --max-pods default (KubeletConfiguration maxPods)
# Allocatable = capacity - reservations - the hard eviction thresholds (pkg/kubelet/cm/node_container_manager_linux.go
# GetNodeAllocatableAbsolute); with the kubelet's defaults no reservations, memory.available<100Mi and
# nodefs.available<10% (pkg/kubelet/apis/config/v1beta1/defaults_linux.go DefaultEvictionHard).
EVICTION_MEMORY = 100 * 1024 * 1024
EVICTION_NODEFS_FRACTION = 0.10
# Go's runtime.GOARCH for the machine names uname reports: the kubelet sets kubernetes.io/arch to GOARCH.
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
          "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
          "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64le"}


@dataclass(frozen=True)
class HostFacts:
    """What cadvisor and the runtime tell a kubelet about its machine (here: the one host all nodes share)."""

    machine: str = "x86_64"  # uname -m
    kernel: str = ""  # uname -r
    os_image: str = "Linux"  # PRETTY_NAME of /etc/os-release
    cpus: int = 1
    memory: int = 0  # bytes, MemTotal
    storage: int = 0  # bytes, the filesystem the kubelet's root dir is on
    machine_id: str = ""
    boot_id: str = ""

    @classmethod
    def of_this_host(cls) -> HostFacts:
        u = os.uname()
        return cls(machine=u.machine, kernel=u.release, os_image=_os_image(), cpus=os.cpu_count() or 1,
                   memory=_meminfo_total(), storage=_fs_size("/var/lib" if os.path.isdir("/var/lib") else "/"),
                   machine_id=_read("/etc/machine-id"), boot_id=_read("/proc/sys/kernel/random/boot_id"))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def _meminfo_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _fs_size(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_blocks * st.f_frsize


def goarch(machine: str) -> str:
    return GOARCH.get(machine.lower(), machine.lower())


def _ki(n: int) -> str:
    return f"{n // 1024}Ki"


def kubelet_labels(name: str, arch: str, spec_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a kubelet registers its node with (kubelet_node_status.go initialNode): hostname, the
    stable os/arch labels and their deprecated beta aliases, which it still applies for old selectors
    (k8s.io/api/core/v1 well_known_labels.go LegacyLabelOS/LegacyLabelArch); then the node's own labels from
    the Cluster spec (--node-labels; zone/region there are what a cloud provider would report)."""
    return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **spec_labels}


def node_status_fields(cluster: str, name: str, ip: str, host: HostFacts) -> dict[str, Any]:
    """addresses, capacity, allocatable and nodeInfo as the kubelet's status setters write them
    (pkg/kubelet/nodestatus/setters.go NodeAddress, MachineInfo, VersionInfo). Every node runs on this one
    machine, so each reports the host's CPUs, memory and disk; machineID and systemUUID are derived per node
    (they identify a machine), bootID is the host's (one kernel booted them all)."""
    arch = goarch(host.machine)
    capacity = {"cpu": str(host.cpus), "ephemeral-storage": _ki(host.storage), "hugepages-2Mi": "0",
                "memory": _ki(host.memory), "pods": str(MAX_PODS)}
    allocatable = {**capacity, "memory": _ki(max(0, host.memory - EVICTION_MEMORY)),
                   "ephemeral-storage": str(int(host.storage * (1 - EVICTION_NODEFS_FRACTION)))}
    digest = hashlib.sha256(f"{host.machine_id}/{cluster}/{name}".encode()).hexdigest()
    return {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "capacity": capacity, "allocatable": allocatable,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"architecture": arch, "bootID": host.boot_id, "containerRuntimeVersion": CONTAINER_RUNTIME,
                     "kernelVersion": host.kernel, "kubeProxyVersion": KUBERNETES_VERSION,
                     "kubeletVersion": KUBERNETES_VERSION, "machineID": digest[:32], "operatingSystem": "linux",
                     "osImage": host.os_image, "systemUUID": str(uuid.UUID(digest[32:64]))},
    }


def node_object(spec: ClusterSpec, index: int, now: float, host: HostFacts | None = None) -> dict[str, Any]:
    """The Node object for the index-th node of a cluster spec (what a kubelet registers)."""
    n = spec.nodes[index]
    host = host or HostFacts.of_this_host()
    labels = kubelet_labels(n.name, goarch(host.machine), n.labels)
    taints = [{"key": t.key, "value": t.value, "effect": t.effect} if t.value else {"key": t.key, "effect": t.effect}
              for t in n.taints]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name, "labels": labels},
            "spec": {"podCIDR": spec.node_pod_cidr(index), "podCIDRs": [spec.node_pod_cidr(index)],
                     **({"taints": taints} if taints else {})},
            "status": {**node_status_fields(spec.name, n.name, spec.node_ip(index), host),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": rfc3339(now)}]}}


def node_view(spec: ClusterSpec, index: int, host: HostFacts | None = None) -> NodeView:
    """The one node view (netsim.model.nodeview) of the index-th node, read from the Node object its kubelet
    registers (`node_object`, through the one Node class): what a node's kube-proxy knows of its node before
    the store has it (kube-proxy reads its Node object at start for its IPs, pod CIDR and zone)."""
    return NodeView.from_node(parse_node(node_object(spec, index, 0.0, host), Source("<node registration>")))


DEFAULT_LABELS = frozenset({"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os",
                            "beta.kubernetes.io/arch", "topology.kubernetes.io/zone", "topology.kubernetes.io/region"})
STATUS_FIELDS = ("addresses", "capacity", "allocatable", "daemonEndpoints", "nodeInfo")


def refreshed_status(cur: dict[str, Any], fresh: dict[str, Any], now: float) -> dict[str, Any]:
    """A restarted kubelet's first status: a heartbeat, with its machine's fields reported anew."""
    status = heartbeat_status(cur, now)
    status.update({k: fresh["status"][k] for k in STATUS_FIELDS if k in fresh["status"]})
    return status


def refresh_default_labels(tx: Any, cur: dict[str, Any], fresh: dict[str, Any]) -> None:
    """kubelet_node_status.go updateDefaultLabels: the labels the kubelet sets are put back as it
    computes them (a node registered by an older netsim gains the ones it lacked); others are kept."""
    default = {k: v for k, v in o.labels(fresh).items() if k in DEFAULT_LABELS}
    labels = {**o.labels(cur), **default}
    if labels != o.labels(cur):
        obj = tx.get("Node", None, o.name(cur))
        obj["metadata"]["labels"] = labels
        tx.update(obj)


def node_ip(node: dict[str, Any]) -> str | None:
    return next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"), None)


def heartbeat_status(node: dict[str, Any], now: float, ready: bool = True) -> dict[str, Any]:
    """The status a kubelet writes when it reports in."""
    status = copy.deepcopy(node.get("status") or {})
    value = "True" if ready else "False"
    o.set_condition(status, "Ready", value, now, "KubeletReady" if ready else "KubeletNotReady")
    for c in status["conditions"]:
        if c["type"] == "Ready":
            c["lastHeartbeatTime"] = rfc3339(now)
            c.pop("lastUpdateTime", None)
    return status


def node_ready(node: dict[str, Any]) -> bool:
    c = o.condition(node, "Ready")
    return c is not None and c.get("status") == "True"


def _lifecycle_taints(ready: str) -> list[dict[str, Any]]:
    """The taints the node lifecycle controller keeps on a node whose Ready condition is `ready`."""
    if ready == "True":
        return []
    key = NOT_READY if ready == "False" else UNREACHABLE
    return [{"key": key, "effect": "NoSchedule"}, {"key": key, "effect": "NoExecute"}]


def _node_write(raw: dict[str, Any], unknown: bool, taints: list[dict[str, Any]] | None, ctx: Context) -> Action:
    """The node's write, from its stored dict: Ready=Unknown (a status write, with the NodeNotReady event)
    and/or the lifecycle taints replaced (an update; NoExecute ones stamped with timeAdded). Both at once are
    one update: the status write and the spec write must not race each other."""
    new = copy.deepcopy(raw)
    event = None
    if unknown:
        o.set_condition(new.setdefault("status", {}), "Ready", "Unknown", ctx.now, "NodeStatusUnknown",
                        "Kubelet stopped posting node status.")
        event = Event(ctx.now, ACTOR, o.ref(raw), "NodeNotReady", f"Node {o.name(raw)} status is now: NodeNotReady",
                      type="Warning")
    if taints is None:
        return Action("status", new, event)
    kept = [t for t in (new.get("spec") or {}).get("taints") or [] if t.get("key") not in (NOT_READY, UNREACHABLE)]
    stamped = [{**t, "timeAdded": rfc3339(ctx.now)} if t["effect"] == "NoExecute" else t for t in taints]
    new.setdefault("spec", {})["taints"] = kept + stamped
    if not new["spec"]["taints"]:
        del new["spec"]["taints"]
    return Action("update", new, event)


def reconcile_node(node: Node, raw: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    """One Node, read typed (its Ready condition and heartbeat, its taints with their timeAdded); `raw` is
    its stored dict, which the write starts from."""
    c = node.status.condition("Ready")
    beat = parse_time(c.last_heartbeat_time) if c else None
    # The node is heard from when its status heartbeat or its Lease moved (tryUpdateNodeHealth), whichever
    # is later: the lease is renewed by its own thread even while the daemon's pass is long.
    renewed = renew_time(snap.get("Lease", LEASE_NAMESPACE, node.name))
    if renewed is not None and (beat is None or renewed > beat):
        beat = renewed
    unknown = c is not None and c.status != "Unknown" and (
        beat is None or ctx.now - beat > ctx.config.node_monitor_grace_seconds)
    ready = "Unknown" if unknown or c is None else c.status
    wanted = _lifecycle_taints(ready)
    current = [(t.key, t.effect) for t in node.spec.taints if t.key in (NOT_READY, UNREACHABLE)]
    retaint = current != [(t["key"], t["effect"]) for t in wanted]
    if not unknown and not retaint:
        return []
    return [_node_write(raw, unknown, wanted if retaint else None, ctx)]


def _pods_by_node(snap: Snapshot) -> dict[str, list[Pod]]:
    """Typed pods (parsed once per resourceVersion by the store's parse cache) bound to a node, by node,
    not finished: what the taint manager and the not-ready marking look at."""
    out: dict[str, list[Pod]] = {}
    for pod in snap.typed("Pod"):
        if pod.spec.node_name and not ps.terminal(pod):
            out.setdefault(pod.spec.node_name, []).append(pod)
    return out


def _stored(snap: Snapshot, pod: Pod) -> dict[str, Any] | None:
    return snap.get("Pod", pod.meta.namespace, pod.meta.name)


def evictions(snap: Snapshot, ctx: Context) -> list[Action]:
    """The taint manager: pods on a NoExecute-tainted node that do not tolerate it (long enough) are
    terminated; nodes and pods read typed, pods by node."""
    actions: list[Action] = []
    by_node: dict[str, list[Pod]] | None = None
    for node in snap.typed("Node"):
        for taint in node.spec.taints:
            if taint.effect != "NoExecute":
                continue
            added = parse_time(taint.time_added) or ctx.now
            if by_node is None:
                by_node = _pods_by_node(snap)
            for pod in by_node.get(node.name, ()):
                if ps.terminating(pod):
                    continue
                matching = [t for t in pod.spec.tolerations if t.tolerates(taint.key, taint.value or None, "NoExecute")]
                if matching and any(t.toleration_seconds is None for t in matching):
                    continue
                if matching:
                    wait = min(t.toleration_seconds for t in matching)
                elif taint.key in (NOT_READY, UNREACHABLE):
                    wait = ctx.config.pod_eviction_seconds
                else:
                    wait = 0
                raw = _stored(snap, pod)
                if ctx.now - added >= wait and raw is not None:
                    actions.append(Action("terminate", raw, Event(
                        ctx.now, "controller/taint-eviction", o.ref(raw), "TaintManagerEviction",
                        f"Marking for deletion Pod {o.key(raw)}")))
    return actions


def mark_pods_not_ready(snap: Snapshot, ctx: Context) -> list[Action]:
    """Ready=False on every Ready pod of a node whose own Ready condition is not True (nodes and pods read
    typed)."""
    down = {n.name for n in snap.typed("Node") if not n.ready}
    if not down:
        return []
    actions: list[Action] = []
    for pod in snap.typed("Pod"):
        if pod.spec.node_name not in down or not ps.ready(pod) or ps.terminal(pod):
            continue
        raw = _stored(snap, pod)
        if raw is None:
            continue
        new = copy.deepcopy(raw)
        o.set_condition(new.setdefault("status", {}), "Ready", "False", ctx.now)
        actions.append(Action("status", new, Event(ctx.now, ACTOR, o.ref(raw), "NodeNotReady", "Node is not ready",
                                                   type="Warning")))
    return actions


def reconcile_nodes(snap: Snapshot, ctx: Context) -> list[Action]:
    actions: list[Action] = []
    for node, raw in snap.typed_with_raw("Node"):
        actions += reconcile_node(node, raw, snap, ctx)
    return actions + mark_pods_not_ready(snap, ctx) + evictions(snap, ctx)


GC_MEMORY = "garbage-collector"


def _gc_candidates(snap: Snapshot, ctx: Context) -> list[tuple[str, dict[str, Any]]] | None:
    """The objects the collector must look at this pass, or None for all of them. Upstream's collector
    keeps a dependency graph fed by events (pkg/controller/garbagecollector/graph_builder.go): an object added
    or changed is checked against its owners, an owner deleted queues its dependents. Here: after the first
    pass, only the objects written since the previous one, unless an object other than a Pod (a possible
    owner, or a Node pods are bound to) was deleted, which makes the pass look at everything."""
    mem = ctx.memory.get(GC_MEMORY) if ctx.feed is not None else None
    rv = ctx.feed.current_rv() if ctx.feed is not None else None
    out: list[tuple[str, dict[str, Any]]] | None = None
    if isinstance(mem, dict) and mem.get("rv") is not None and ctx.feed is not None:
        try:
            changes = ctx.feed.changes_of(tuple(snap.objects), mem["rv"])
        except Compacted:
            changes = None
        if changes is not None and not any(c.type == DELETED and c.kind != "Pod" for c in changes):
            out = []
            for c in changes:
                cur = snap.get(c.kind, c.namespace, c.name) if c.type != DELETED else None
                if cur is not None:
                    out.append((c.kind, cur))
    if ctx.feed is not None:
        ctx.memory[GC_MEMORY] = {"rv": rv}
    return out


def _owner_exists(snap: Snapshot, obj: dict[str, Any], ref: dict[str, Any], uids: set[str] | None) -> bool:
    if uids is not None:
        return ref.get("uid") in uids
    owner = snap.get(ref.get("kind") or "", o.namespace(obj), ref.get("name") or "")
    return owner is not None and o.uid(owner) == ref.get("uid")


def _dependent_of(snap: Snapshot, kind: str, obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(its controller ownerReference, the node a Pod is bound to) read from the typed object (the store's
    parse cache: once per resourceVersion), or from the stored metadata when it does not parse: an orphan
    is collected whatever else is wrong with it."""
    try:
        typed = snap.decode(obj)
    except NetsimError:
        return o.controller_ref(obj), o.node_name(obj) if kind == "Pod" else None
    return ps.controller_ref(typed), typed.spec.node_name if isinstance(typed, Pod) else None


def reconcile_garbage(snap: Snapshot, ctx: Context) -> list[Action]:
    """Dependents whose controller owner is gone, and pods bound to a node that is gone. Dependents are read
    typed (`_dependent_of`); the owners' uids, the index it checks them against, are the stored rows'
    (an owner that does not parse still owns its dependents)."""
    candidates = _gc_candidates(snap, ctx)
    # A full pass compares against every uid; an incremental one looks each owner up by kind and name
    # (owners are in the dependent's namespace or cluster-scoped, as the API requires).
    uids = snap.uids() if candidates is None else None
    nodes = snap.names("Node", None)
    actions: list[Action] = []
    items_of = ((kind, obj) for kind, items in snap.objects.items() for obj in items) \
        if candidates is None else iter(candidates)
    for kind, obj in items_of:
        ref, node = _dependent_of(snap, kind, obj)
        if ref is not None and not _owner_exists(snap, obj, ref, uids):
            verb = "terminate" if kind == "Pod" else "delete"
            actions.append(Action(verb, obj, Event(ctx.now, "controller/garbage-collector", o.ref(obj),
                                                   "GarbageCollected",
                                                   f"owner {ref.get('kind')} {ref.get('name')} is gone")))
        elif kind == "Pod" and node and node not in nodes:
            actions.append(Action("delete", obj, Event(ctx.now, "controller/pod-gc", o.ref(obj), "PodGC",
                                                       f"node {node} no longer exists")))
    return actions
