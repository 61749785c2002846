"""Node leases: the kubelets' heartbeat that a busy daemon pass cannot starve.

Upstream, each kubelet renews a Lease `kube-node-lease/<node>` from its own goroutine (pkg/kubelet/nodelease,
k8s.io/component-helpers/apimachinery/lease controller.go: renewInterval = 0.25 x leaseDurationSeconds 40),
independently of the pod workers; the node lifecycle controller counts a node as heard from when either its
status heartbeat or its Lease's renewTime moved (pkg/controller/nodelifecycle node_lifecycle_controller.go
tryUpdateNodeHealth: a newer observed lease sets probeTimestamp), so a node whose kubelet is busy making a
thousand sandboxes stays Ready as long as the lease is renewed.

Here every kubelet lives in the daemon, whose single loop makes sandboxes, syncs a hundred kube-proxies and
runs the controllers one after another: one such pass at ten thousand pods is longer than the node grace
period. `LeaseRenewer` is the kubelets' lease goroutine: a thread of the daemon with its own store
connection that renews the leases of the live nodes (not failed ones: their kubelet is stopped) on a timer,
whatever the loop is doing. `reconcile_node` (netsim.controlplane.nodes) takes the later of the status
heartbeat and the lease renewal.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from netsim.store import Store, parse_time

log = logging.getLogger("netsim.controlplane.leases")
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds default
MAX_RENEW_SECONDS = 10.0  # 0.25 x the lease duration, as the kubelet's lease controller renews


def micro_time(t: float) -> str:
    """metav1.MicroTime as the API writes it (RFC 3339 with microseconds)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node: str, now: float) -> dict[str, Any]:
    """The Lease a kubelet holds for its node (coordination.k8s.io/v1)."""
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                     "renewTime": micro_time(now)}}


def renew(store: Store, nodes: Iterable[str], now: float) -> int:
    """Renew (or create) the leases of `nodes` in one transaction; returns how many were written."""
    n = 0
    with store.transaction() as tx:
        for node in nodes:
            cur = tx.get("Lease", LEASE_NAMESPACE, node)
            if cur is None:
                tx.create(lease_object(node, now))
            else:
                cur.setdefault("spec", {}).update({"holderIdentity": node, "renewTime": micro_time(now)})
                cur["spec"].setdefault("leaseDurationSeconds", LEASE_DURATION_SECONDS)
                tx.update(cur)
            n += 1
    return n


def renew_time(lease: dict[str, Any] | None) -> float | None:
    """When a lease was last renewed (epoch seconds), None without one."""
    if not lease:
        return None
    return parse_time((lease.get("spec") or {}).get("renewTime"))


def renew_interval(grace_seconds: float) -> float:
    """A quarter of what the node lifecycle controller waits, as upstream's 10 s of a 40 s grace; at most 10 s."""
    return max(0.2, min(MAX_RENEW_SECONDS, grace_seconds / 4))


def status_interval(grace_seconds: float) -> float:
    """How often a kubelet whose lease is renewed posts its (unchanged) node status through a long step: half
    the grace period, at most the kubelet's nodeStatusUpdateFrequency (10 s). At 3,000 pods on 100 nodes,
    status posted every second was 40 % of the daemon's main thread (20,000 Node writes in one step)."""
    return max(0.5, min(10.0, grace_seconds / 2))


class LeaseRenewer(threading.Thread):
    """Renews the leases of the nodes `alive()` names every `interval` seconds, on its own store connection
    (`open_store()`), until stopped. A renewal that fails (the store busy past its timeout) is retried at
    the next tick: the lease is only stale if that goes on for the whole grace period."""

    def __init__(self, open_store: Callable[[], Store], alive: Callable[[], Iterable[str]], interval: float,
                 clock: Callable[[], float]):
        super().__init__(name="netsim-node-leases", daemon=True)
        self._open, self._alive, self.interval, self._clock = open_store, alive, interval, clock
        self._halt = threading.Event()
        self.renewals = 0

    def run(self) -> None:
        store = self._open()
        try:
            while True:
                try:
                    renew(store, sorted(self._alive()), self._clock())
                    self.renewals += 1
                except Exception as e:  # noqa: BLE001 - a busy or closing store: next tick
                    log.warning("node lease renewal failed: %s", e)
                if self._halt.wait(self.interval):
                    return
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def stop(self) -> None:
        self._halt.set()
