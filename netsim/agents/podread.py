"""How the kubelet reads a pod: the typed Pod of the store's parse cache, and the two edges it keeps.

The kubelet's pod source hands out the stored pod (the change log's row, what status writes start from);
every pod-level field the kubelet decides on (node, hostNetwork, restartPolicy, grace period, labels,
deletionTimestamp, podIP, phase, conditions, containerStatuses) is read from the typed Pod that the parse
cache decoded once per resourceVersion (`Store.decode`, shared with the controllers), as a real kubelet
reads the v1.Pod its informer decoded. Two edges remain, each here and named:

- `unparsed`: a stored pod that does not parse (written around validation) is still a pod on a node: it
  has an identity, a status and a node, so the pod workers queue it, the loop reports why its sandbox
  cannot be made (create_sandbox decodes it strictly and raises), and it is torn down when deleted;
- `container_manifests`: the containers' manifests, which the runtime's container config is built from
  (securityContext, lifecycle hooks, volumeMounts, env valueFrom/envFrom, workingDir and probe handlers:
  fields the typed Container keeps only as given, `Container.extra`), as kuberuntime's
  generateContainerConfig takes the v1.Container it was handed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from netsim.model.errors import NetsimError
from netsim.model.meta import ObjectMeta
from netsim.model.pod import RESTART_POLICIES, Pod, PodSpec
from netsim.model.status import pod_status

Decode = Callable[[Mapping[str, Any]], Any]


def typed_pod(decode: Decode, pod: Mapping[str, Any]) -> Pod:
    """The typed Pod of a stored pod (the parse cache's, once per resourceVersion); one that does not
    parse is read leniently (`unparsed`), so one bad pod never stops a kubelet's pass."""
    try:
        return decode(pod)
    except NetsimError:
        return unparsed(pod)


def unparsed(raw: Mapping[str, Any]) -> Pod:
    """A stored pod that does not parse, read leniently: identity, labels, deletionTimestamp, the node,
    hostNetwork, restartPolicy and grace period when they are well formed, and its status (read as
    leniently as the API server's status strategy keeps it). No containers: its sandbox is refused."""
    md = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
    spec = raw.get("spec") if isinstance(raw.get("spec"), Mapping) else {}

    def text(m: Mapping[str, Any], k: str) -> str | None:
        v = m.get(k)
        return v if isinstance(v, str) and v else None

    def strings(v: Any) -> dict[str, str]:
        return {k: x for k, x in v.items() if isinstance(k, str) and isinstance(x, str)} \
            if isinstance(v, Mapping) else {}

    grace = spec.get("terminationGracePeriodSeconds")
    policy = spec.get("restartPolicy")
    meta = ObjectMeta(name=text(md, "name") or "", namespace=text(md, "namespace"),
                      labels=strings(md.get("labels")), annotations=strings(md.get("annotations")),
                      uid=text(md, "uid"), deletion_timestamp=text(md, "deletionTimestamp"))
    return Pod(meta=meta, spec=PodSpec(
        containers=(), node_name=text(spec, "nodeName"), host_network=spec.get("hostNetwork") is True,
        restart_policy=policy if policy in RESTART_POLICIES else "Always",
        termination_grace_period_seconds=grace if isinstance(grace, int) and grace >= 0 else 30),
        status=pod_status(raw.get("status")))


def container_manifests(pod: Mapping[str, Any], *, init: bool = False) -> list[dict[str, Any]]:
    """The pod's app containers' (or init containers') manifests, as stored: what the runtime's container
    config is built from (see the module's docstring)."""
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers" if init else "containers") or [])


__all__ = ["container_manifests", "typed_pod", "unparsed"]
