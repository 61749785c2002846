"""The scheduler: picks a node for each pending pod.

Filters in kube-scheduler's default order (pkg/scheduler/framework/plugins: NodeUnschedulable, NodeName,
TaintToleration, NodeAffinity, NodePorts); a node is rejected by the first filter it fails, and an
unschedulable pod gets kube-scheduler's FitError message (pkg/scheduler/framework/types.go FitError.Error):
`0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 node(s) didn't match Pod's node
affinity/selector.` with the reasons counted and sorted as strings.

Scoring is a simple, deterministic stand-in for the default score plugins: PreferNoSchedule taints the pod
does not tolerate count against a node (TaintToleration score), then fewest pods of the same owner
(SelectorSpread / PodTopologySpread over hostnames), then fewest pods overall (balanced allocation), then the
node name. A pod that already has spec.nodeName is bound and never reaches the scheduler, as in Kubernetes.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.events import Event
from netsim.controlplane.state import Action, Context, Snapshot
from netsim.model.cluster import Taint
from netsim.model.errors import NetsimError, Source
from netsim.model.meta import ObjectMeta
from netsim.model.node import Node, parse_node
from netsim.model.nodeview import NodeView
from netsim.model.pod import (
    Container,
    ContainerPort,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PodSpec,
    Toleration,
)
from netsim.model.status import pod_status

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


@dataclass
class NodeUsage:
    """A node with the pods counted on it (pkg/scheduler/framework NodeInfo: the Node plus its pods and
    used host ports). The node itself is the one node view (netsim.model.nodeview.NodeView)."""

    node: NodeView
    pod_count: int = 0
    owner_counts: Counter = field(default_factory=Counter)  # owner uid -> pods of that owner here
    host_ports: set[tuple[int, str]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def labels(self) -> Mapping[str, str]:
        return self.node.labels

    @property
    def taints(self) -> tuple[Taint, ...]:
        return self.node.taints

    @property
    def unschedulable(self) -> bool:
        return self.node.unschedulable

    @classmethod
    def from_node(cls, node: Node | Mapping[str, Any]) -> NodeUsage:
        """No pods yet, on the one Node class (netsim.model.node); a stored Node dict is read through it."""
        if not isinstance(node, Node):
            node = parse_node(node, Source("<store>"))
        return cls(NodeView.from_node(node))

    def add_pod(self, pod: Pod) -> None:
        self.pod_count += 1
        ref = ps.controller_ref(pod)
        if ref is not None:
            self.owner_counts[ref.get("uid")] += 1
        self.host_ports |= _host_ports(pod)


NodeInfo = NodeUsage  # kube-scheduler's name for it (framework.NodeInfo), kept for callers


@dataclass(frozen=True)
class Decision:
    node: str | None
    reason: str = ""  # FitError message when node is None


def tolerations_of(pod: Pod) -> tuple[Toleration, ...]:
    return pod.spec.tolerations


def tolerated(taint: Taint | Mapping[str, Any], tolerations: Iterable[Toleration]) -> bool:
    if not isinstance(taint, Taint):
        taint = Taint(taint.get("key", ""), taint.get("effect", ""), taint.get("value") or "")
    return any(t.tolerates(taint.key, taint.value or None, taint.effect) for t in tolerations)


def matches_node_selector_and_affinity(pod: Pod, node_name: str, node_labels: Mapping[str, str]) -> bool:
    """nodeSelector (all labels) and required node affinity (terms ORed), as the NodeAffinity filter."""
    if any(node_labels.get(k) != v for k, v in pod.spec.node_selector.items()):
        return False
    terms = pod.spec.required_node_terms
    return terms is None or any(t.matches(node_name, dict(node_labels)) for t in terms)


def _host_ports(pod: Pod) -> set[tuple[int, str]]:
    return {(p.host_port, p.protocol) for c in pod.spec.containers for p in c.ports if p.host_port}


def filter_node(pod: Pod, node: NodeInfo) -> str | None:
    """Why `node` cannot take `pod` (kube-scheduler's per-node reason), or None if it can."""
    tolerations = tolerations_of(pod)
    if node.unschedulable and not tolerated(Taint(UNSCHEDULABLE_TAINT, "NoSchedule"), tolerations):
        return "node(s) were unschedulable"
    wanted = pod.spec.node_name
    if wanted and wanted != node.name:
        return "node(s) didn't match the requested node name"
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not tolerated(taint, tolerations):
            return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    if not matches_node_selector_and_affinity(pod, node.name, node.labels):
        return "node(s) didn't match Pod's node affinity/selector"
    if _host_ports(pod) & node.host_ports:
        return "node(s) didn't have free ports for the requested pod ports"
    return None


def fit_error(total: int, reasons: Iterable[str]) -> str:
    counts = Counter(reasons)
    parts = sorted(f"{n} {r}" for r, n in counts.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


def _shape(pod: Pod) -> Hashable | None:
    """All the filters and the taint score read of a pod, when they read nothing that placing pods changes
    (no host ports): the pods of one template share it, so 10,000 replicas on 100 nodes are filtered once
    per node, not a million times (kube-scheduler once cached predicate results per equivalence class of
    pods for the same reason: pkg/scheduler/core/equivalence_cache.go, Kubernetes 1.10-1.12)."""
    if _host_ports(pod):
        return None
    spec = pod.spec
    return spec.tolerations, spec.node_name, tuple(sorted(spec.node_selector.items())), spec.required_node_terms


def _filtered(pod: Pod, nodes: list[NodeInfo]) -> tuple[list[NodeInfo], list[str], dict[str, int]]:
    """(feasible nodes, why the others are not, PreferNoSchedule taints the pod does not tolerate per node)."""
    feasible: list[NodeInfo] = []
    reasons: list[str] = []
    for n in nodes:
        why = filter_node(pod, n)
        if why is None:
            feasible.append(n)
        else:
            reasons.append(why)
    tolerations = tolerations_of(pod)
    soft = {n.name: sum(1 for t in n.taints if t.effect == "PreferNoSchedule" and not tolerated(t, tolerations))
            for n in feasible}
    return feasible, reasons, soft


def pick_node(pod: Pod, nodes: list[NodeInfo],
              cache: dict[Hashable, tuple[list[NodeInfo], list[str], dict[str, int]]] | None = None) -> Decision:
    """The node for `pod` among `nodes`, or why there is none. `cache` (one scheduling cycle over nodes whose
    labels and taints do not change) keeps the filter results per pod shape."""
    if not nodes:
        return Decision(None, "0/0 nodes are available: no nodes available to schedule pods.")
    shape = _shape(pod) if cache is not None else None
    if shape is not None and cache is not None and shape in cache:
        feasible, reasons, soft = cache[shape]
    else:
        feasible, reasons, soft = _filtered(pod, nodes)
        if shape is not None and cache is not None:
            cache[shape] = (feasible, reasons, soft)
    if not feasible:
        return Decision(None, fit_error(len(nodes), reasons))
    owner = ps.controller_ref(pod)
    owner_uid = owner.get("uid") if owner else None

    def score(n: NodeInfo) -> tuple:
        same_owner = n.owner_counts.get(owner_uid, 0) if owner_uid else 0
        return soft[n.name], same_owner, n.pod_count, n.name

    return Decision(min(feasible, key=score).name)


def node_infos(snap: Snapshot) -> dict[str, NodeInfo]:
    infos = {n.name: NodeInfo.from_node(n) for n in snap.typed("Node")}
    for pod in snap.typed("Pod"):
        nn = pod.spec.node_name
        if nn in infos and not ps.terminal(pod):
            infos[nn].add_pod(pod)
    return infos


def _unparsed(raw: dict[str, Any]) -> Pod | None:
    """A stored pod that does not parse (written around validation), read leniently for what the scheduler
    needs: it is still bound, so that its node's kubelet reports why it cannot run (FailedCreatePodSandBox),
    as the rest of the cluster goes on. None when even that cannot be read."""
    try:
        md, spec = raw.get("metadata") or {}, raw.get("spec") or {}
        meta = ObjectMeta(name=md["name"], namespace=md.get("namespace"), labels=dict(md.get("labels") or {}),
                          uid=md.get("uid"), resource_version=int(md.get("resourceVersion") or 0) or None,
                          owner_references=tuple(md.get("ownerReferences") or ()),
                          creation_timestamp=md.get("creationTimestamp"),
                          deletion_timestamp=md.get("deletionTimestamp"))
        req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
               .get("requiredDuringSchedulingIgnoredDuringExecution"))

        def reqs(items: Any) -> tuple[NodeSelectorRequirement, ...]:
            return tuple(NodeSelectorRequirement(r["key"], r["operator"], tuple(r.get("values") or ()))
                         for r in items or ())

        terms = None if not req else tuple(NodeSelectorTerm(reqs(t.get("matchExpressions")),
                                                            reqs(t.get("matchFields")))
                                           for t in req.get("nodeSelectorTerms") or [])
        tolerations = tuple(Toleration(key=t.get("key") or None, operator=t.get("operator") or "Equal",
                                       value=t.get("value") or None, effect=t.get("effect") or None,
                                       toleration_seconds=t.get("tolerationSeconds"))
                            for t in spec.get("tolerations") or [])
        containers = tuple(Container(name=str(c.get("name")), ports=tuple(
            ContainerPort(int(p.get("containerPort") or 0), protocol=p.get("protocol", "TCP"),
                          host_port=p.get("hostPort")) for p in c.get("ports") or []))
            for c in spec.get("containers") or [])
        return Pod(meta=meta, spec=PodSpec(containers=containers, node_name=spec.get("nodeName"),
                                           node_selector=dict(spec.get("nodeSelector") or {}),
                                           required_node_terms=terms, tolerations=tolerations,
                                           scheduler_name=spec.get("schedulerName") or "default-scheduler"),
                   status=pod_status(raw.get("status")))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _pending(snap: Snapshot) -> list[tuple[Pod, dict[str, Any]]]:
    """The unbound pods this scheduler places (typed, with the stored dict a binding starts from), oldest
    first. One that does not parse is read leniently (`_unparsed`) and bound all the same."""
    out = []
    for raw in snap.unbound_pods():
        try:
            pod = snap.decode(raw)
        except NetsimError:
            pod = _unparsed(raw)
            if pod is None:
                continue
        if not ps.terminating(pod) and not ps.terminal(pod) and pod.spec.scheduler_name == "default-scheduler":
            out.append((pod, raw))
    return sorted(out, key=lambda x: ps.creation_order(x[0]))


def _unschedulable(raw: dict[str, Any], reason: str, ctx: Context) -> Action | None:
    """PodScheduled=False with the FitError, on the stored pod (the status write), when it changes."""
    new = copy.deepcopy(raw)
    status = new.setdefault("status", {"phase": "Pending"})
    if not o.set_condition(status, "PodScheduled", "False", ctx.now, "Unschedulable", reason):
        return None
    return Action("status", new, Event(ctx.now, "scheduler", o.ref(raw), "FailedScheduling", reason, type="Warning"))


def _bind(raw: dict[str, Any], node: str, ctx: Context) -> Action:
    """The binding: spec.nodeName and PodScheduled=True on the stored pod (the write)."""
    new = copy.deepcopy(raw)
    status = new.setdefault("status", {"phase": "Pending"})
    new["spec"]["nodeName"] = node
    o.set_condition(status, "PodScheduled", "True", ctx.now)
    return Action("update", new, Event(ctx.now, "scheduler", o.ref(raw), "Scheduled",
                                       f"Successfully assigned {o.key(raw)} to {node}"))


def reconcile_scheduler(snap: Snapshot, ctx: Context) -> list[Action]:
    """Bind every pending, unbound pod (oldest first) or mark it unschedulable with the reason. The pods
    looked at are the unbound ones only (the informer cache's index; kube-scheduler's queue is filled by
    its informer with unassigned pods alone), read typed from the store's parse cache; the nodes' pods are
    counted only when there is one to place: an idle pass does no work that grows with the cluster."""
    pending = _pending(snap)
    if not pending:
        return []
    infos = node_infos(snap)
    nodes = sorted(infos.values(), key=lambda n: n.name)
    actions: list[Action] = []
    cache: dict[Hashable, tuple[list[NodeInfo], list[str], dict[str, int]]] = {}
    for pod, raw in pending:
        decision = pick_node(pod, nodes, cache)
        if decision.node is None:
            if (a := _unschedulable(raw, decision.reason, ctx)) is not None:
                actions.append(a)
            continue
        infos[decision.node].add_pod(pod)
        actions.append(_bind(raw, decision.node, ctx))
    return actions
