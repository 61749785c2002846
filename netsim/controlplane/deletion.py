"""Deleting objects as the API server does: pods through graceful termination, all targets or none.

A pod bound to a node is not removed from the store by a delete: the API server only sets
`deletionTimestamp` and `deletionGracePeriodSeconds` (k8s registry/core/pod/strategy.go,
podStrategyWithoutGraceful.CheckGracefulDelete / the generic registry's BeforeDelete), and the kubelet
removes it after tearing the sandbox down (CNI DEL, the netns, its /etc/netns entry, the DNS and workload
sockets bound in it). An unbound pod, a pod that already finished (Succeeded/Failed) or a delete with grace
period 0 is removed at once (the same CheckGracefulDelete); the kubelet then finds the sandbox without a pod
and removes it as its garbage collection does. Other kinds are removed at once; what they own goes through
the garbage collector (pods again through termination). Deleting a Namespace deletes everything in it in
the same transaction, pods through termination, as the namespace controller does
(k8s pkg/controller/namespace/deletion/namespaced_resources_deleter.go); unlike upstream, the Namespace
object itself goes at once instead of staying Terminating until it is empty.

kubectl's flags (k8s kubectl pkg/cmd/delete/delete.go, DeleteOptions.Complete): `--grace-period=0` without
`--force` becomes 1 (graceful, "to prevent accidental data loss"); `--force` without a grace period means 0.

`delete_objects` checks every target first and deletes in one store transaction: all or none. A pod is
read as the store's parse cache decodes it (netsim.model.pod.Pod); the write starts from the stored dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.model.errors import NetsimError, Source, UsageError
from netsim.store import Store, rfc3339, scoped_namespace

if TYPE_CHECKING:  # for typing only: every CLI command imports this module (netsim.api), few delete a pod
    from netsim.model.pod import Pod


@dataclass(frozen=True)
class Target:
    kind: str
    namespace: str | None
    name: str
    source: Source | None = None  # the manifest it came from (`delete -f`), for the error message

    def describe(self) -> str:
        scoped = scoped_namespace(self.kind, self.namespace)
        ns = f"{scoped}/" if scoped else ""
        where = f"{self.source.describe()}: " if self.source else ""
        return f"{where}{self.kind} {ns}{self.name}"


def effective_grace(grace_period: int | None, force: bool) -> int | None:
    """kubectl's reading of --grace-period/--force; None: the pod's own terminationGracePeriodSeconds."""
    if grace_period is not None and grace_period < 0:
        grace_period = None
    if force and grace_period is None:
        return 0
    if grace_period == 0 and not force:
        return 1
    return grace_period


def delete_objects(store: Store, targets: Sequence[Target], now: float, *, grace_period: int | None = None,
                   force: bool = False, ignore_not_found: bool = False) -> list[str]:
    """Delete `targets` in one transaction (UsageError naming the first missing one, nothing deleted).
    Returns kubectl-style lines. `grace_period` as `effective_grace` gives it."""
    grace = effective_grace(grace_period, force)
    lines: list[str] = []
    with store.transaction() as tx:
        found = []
        for t in targets:
            cur = tx.get(t.kind, scoped_namespace(t.kind, t.namespace), t.name)
            if cur is None:
                if ignore_not_found:
                    continue
                raise UsageError(f"{t.describe()}: not found; nothing was deleted")
            found.append(cur)
        for cur in found:
            kind, name = cur["kind"], o.name(cur)
            if kind == "Namespace":
                for k in sorted(tx.kinds_in(name)):
                    for inner in tx.list(k, name):
                        _delete_one(tx, inner, grace, now)
            _delete_one(tx, cur, grace, now)
            lines.append(f"{kind.lower()}/{name} deleted")
    return lines


def _delete_one(tx: Store, cur: dict, grace: int | None, now: float) -> None:
    kind, ns, name = cur["kind"], o.namespace(cur), o.name(cur)
    pod = _typed_pod(tx, cur) if kind == "Pod" else None
    if pod is not None and _graceful(pod, grace):
        if not ps.terminating(pod):
            _mark_terminating(tx, cur, grace if grace is not None else pod.spec.termination_grace_period_seconds,
                              now)
    else:
        tx.delete(kind, ns, name)


def _typed_pod(tx: Store, cur: dict) -> Pod | None:
    """The stored pod as the parse cache decodes it; None when it does not parse (written around
    validation): no kubelet runs such a pod (it fails its sandbox), so it goes at once, and a kubelet that
    made anything for it removes that as its garbage collection does."""
    try:
        return tx.decode(cur)
    except NetsimError:
        return None


def _graceful(pod: Pod, grace: int | None) -> bool:
    """Whether the pod goes through the kubelet (CheckGracefulDelete): bound, still running, grace > 0."""
    return bool(pod.spec.node_name) and not ps.terminal(pod) and grace != 0


def _mark_terminating(tx: Store, cur: dict, grace: int, now: float) -> None:
    """The write edge: the stored pod with deletionTimestamp and deletionGracePeriodSeconds set (the
    update starts from the stored dict, so fields netsim does not model and the resourceVersion read go
    with it)."""
    md = cur["metadata"]
    md["deletionTimestamp"] = rfc3339(now)
    md["deletionGracePeriodSeconds"] = grace
    tx.update(cur)
