"""Node (core/v1) as the store holds it: the object a kubelet registers (netsim.controlplane.nodes).

Nodes are written by the system (node registration, heartbeats, `netsim node cordon`), not applied from
manifests, so `parse_node` reads leniently as the status readers do: it never fails on a stored Node, and
a field of the wrong type reads as absent. Taints are kept in the order stored, as the scheduler's
TaintToleration plugin walks them (pkg/scheduler/framework/plugins/tainttoleration).

This is one concept with one class: the cluster spec's `nodes:` entry is `netsim.model.cluster.NodeSpec`
(what the user asks for); this is the Node object the control plane and the agents read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from netsim.model.cluster import Taint
from netsim.model.errors import Source, SpecError
from netsim.model.meta import ObjectMeta
from netsim.model.status import NodeStatus, node_status


@dataclass(frozen=True)
class KubeNodeSpec:
    """core/v1 NodeSpec: the node's pod ranges, taints and cordon."""

    pod_cidr: str | None = None
    pod_cidrs: tuple[str, ...] = ()
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    provider_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    kind: ClassVar[str] = "Node"
    api_version: ClassVar[str] = "v1"
    meta: ObjectMeta
    spec: KubeNodeSpec = KubeNodeSpec()
    status: NodeStatus = NodeStatus()

    @property
    def metadata(self) -> ObjectMeta:
        return self.meta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def labels(self) -> dict[str, str]:
        return self.meta.labels

    @property
    def internal_ip(self) -> str | None:
        return self.status.internal_ip

    @property
    def ready(self) -> bool:
        return self.status.ready

    def to_dict(self) -> dict[str, Any]:
        """The node as registered: metadata and spec (status is the kubelet's: `status.raw`)."""
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(),
                "spec": dict(self.spec.raw)}


def _strs(v: Any) -> tuple[str, ...]:
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list) else ()


def parse_node(doc: Any, source: Source) -> Node:
    """A stored Node. Only a missing name is an error (a Node without one cannot have been stored)."""
    md = doc.get("metadata") if isinstance(doc, Mapping) else None
    name = md.get("name") if isinstance(md, Mapping) else None
    if not isinstance(name, str) or not name:
        raise SpecError("is required", source=source, obj="Node", field="metadata.name")
    labels = md.get("labels")
    annotations = md.get("annotations")
    rv = md.get("resourceVersion")
    generation = md.get("generation")
    meta = ObjectMeta(
        name=name,
        labels=dict(labels) if isinstance(labels, Mapping) else {},
        annotations=dict(annotations) if isinstance(annotations, Mapping) else {},
        uid=md.get("uid") if isinstance(md.get("uid"), str) else None,
        resource_version=int(rv) if isinstance(rv, (int, str)) and str(rv).isdigit() else None,
        generation=generation if isinstance(generation, int) else None,
        owner_references=tuple(r for r in md.get("ownerReferences") or () if isinstance(r, Mapping)),
        creation_timestamp=md.get("creationTimestamp") if isinstance(md.get("creationTimestamp"), str) else None)
    raw_spec = doc.get("spec")
    spec = raw_spec if isinstance(raw_spec, Mapping) else {}
    taints = tuple(Taint(t["key"], t["effect"], t.get("value") if isinstance(t.get("value"), str) else "",
                         t.get("timeAdded") if isinstance(t.get("timeAdded"), str) else None)
                   for t in spec.get("taints") or () if isinstance(t, Mapping)
                   and isinstance(t.get("key"), str) and isinstance(t.get("effect"), str))
    cidrs = _strs(spec.get("podCIDRs"))
    pod_cidr = spec.get("podCIDR") if isinstance(spec.get("podCIDR"), str) else None
    return Node(meta=meta,
                spec=KubeNodeSpec(pod_cidr=pod_cidr or (cidrs[0] if cidrs else None),
                                  pod_cidrs=cidrs or ((pod_cidr,) if pod_cidr else ()), taints=taints,
                                  unschedulable=spec.get("unschedulable") is True,
                                  provider_id=spec.get("providerID") if isinstance(spec.get("providerID"), str)
                                  else None, raw=spec),
                status=node_status(doc.get("status")))
