"""Leader election for the control plane: the controllers and the scheduler run in one process at a time.

As kube-controller-manager and kube-scheduler do (k8s.io/client-go/tools/leaderelection/leaderelection.go
with a Lease lock, resourcelock/leaselock.go): every control-plane candidate (the cluster's daemon, a second
`netsim controlplane --cluster C`) competes for one Lease object, `kube-system/netsim-controlplane`
(coordination.k8s.io/v1: holderIdentity, leaseDurationSeconds, acquireTime, renewTime, leaseTransitions),
written with compare-and-swap on its resourceVersion, so that on either store (SQLite, or etcd whose
mod_revision is the resourceVersion) exactly one write of two racing candidates wins.

The rules are client-go's tryAcquireOrRenew:
- no Lease yet: create it, holding it;
- a Lease held by another: it is valid while `observedTime + leaseDuration` is in the future, where
  observedTime is when *this* candidate last saw the record change (its own clock, never the holder's
  renewTime: clocks of hosts may disagree); an expired or released (empty holder) Lease is taken over,
  leaseTransitions + 1, acquireTime now;
- the holder renews every retryPeriod; a holder that could not renew for renewDeadline stops leading
  (kube-controller-manager then exits with "leaderelection lost"; the daemon, which also runs node agents,
  stops its controllers and competes again instead);
- a holder that stops cleanly releases the Lease (ReleaseOnCancel: empty holderIdentity,
  leaseDurationSeconds 1), so a standby takes over at its next retry rather than a lease period later.

Defaults are kube-controller-manager's (component-base/config/v1alpha1/defaults.go
RecommendedDefaultLeaderElectionConfiguration): lease 15 s, renew deadline 10 s, retry 2 s; `spec.timing`'s
`leaderLeaseDuration` scales all three in those proportions. A standby takes over at most one lease
duration plus two of its jittered retry waits after the leader's last renewal (it sees that renewal up to
one wait late, and checks the expiry once per wait): 15 s + 2 x 4.4 s with the defaults.

On the etcd store these rules give way to etcd's own: the leader is who holds an election key on an etcd
lease (netsim.leader_etcd; `elector_for` picks the candidate for the store). The Lease object is still
written there, for `kubectl get lease`, but decides nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

from netsim.store import AlreadyExists, Store, StoreError

log = logging.getLogger("netsim.leader")
LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "netsim-controlplane"
JITTER_FACTOR = 1.2  # client-go's JitterFactor: the acquire loop waits retryPeriod x (1 + rand x 1.2)


@dataclasses.dataclass(frozen=True)
class LeaderConfig:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    @classmethod
    def for_lease(cls, lease_duration: float) -> LeaderConfig:
        """kube-controller-manager's 15 s : 10 s : 2 s, scaled to `lease_duration`."""
        return cls(lease_duration, lease_duration * 10 / 15, lease_duration * 2 / 15)

    def takeover_bound(self) -> float:
        """The longest a standby waits after the leader's last renewal (module docstring)."""
        return self.lease_duration + 2 * (1 + JITTER_FACTOR) * self.retry_period


def micro_time(t: float) -> str:
    """metav1.MicroTime as the API writes it."""
    import datetime as dt
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity(role: str) -> str:
    """client-go's convention for controller managers: hostname + "_" + a unique suffix (here role and pid)."""
    return f"{socket.gethostname()}_{role}_{os.getpid()}"


def lease_object(identity: str, duration: float, now: float, acquired: float, transitions: int) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": identity, "leaseDurationSeconds": max(1, round(duration)),
                     "acquireTime": micro_time(acquired), "renewTime": micro_time(now),
                     "leaseTransitions": transitions}}


class LeaderElector:
    """One candidate's view of the election (client-go's LeaderElector). `try_acquire_or_renew` is one
    attempt; `Elector` runs the attempts on a timer on its own thread."""

    def __init__(self, store: Store, identity: str, config: LeaderConfig, clock: Callable[[], float],
                 holder_gone: Callable[[str], bool] | None = None):
        self.store, self.identity, self.config, self.clock = store, identity, config, clock
        # Whether a holder is known to be dead without waiting for its lease to expire (the caller's
        # knowledge, e.g. a pid on this machine; netsim.hostagent.holder_gone).
        self.holder_gone = holder_gone or (lambda _holder: False)
        self._observed: tuple[Any, ...] | None = None  # the record's spec (and rv) as last seen
        self._observed_time = 0.0
        self._observed_duration = config.lease_duration
        self._leading = False
        self.last_renew = 0.0  # when this candidate last acquired or renewed (its clock)

    @property
    def leading(self) -> bool:
        return self._leading

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"),
                  (lease.get("metadata") or {}).get("resourceVersion"))
        if record != self._observed:
            self._observed, self._observed_time = record, now
            self._observed_duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)

    def _valid(self, now: float) -> bool:
        """isLeaseValid: the record seen changed less than its lease duration ago (our clock)."""
        return self._observed_time + self._observed_duration > now

    def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go tryAcquireOrRenew); True when this candidate holds the lease after it."""
        now = self.clock()
        try:
            cur = self.store.get("Lease", LEASE_NAMESPACE, LEASE_NAME)
            if cur is None:
                created = self.store.create(lease_object(self.identity, self.config.lease_duration, now, now, 0))
                self._observe(created, now)
                return self._won(now)
            self._observe(cur, now)
            spec = cur.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            mine = holder == self.identity
            if holder and not mine and self._valid(now) and not self.holder_gone(holder):
                return self._lost()
            transitions = int(spec.get("leaseTransitions") or 0)
            acquired = now
            if mine:
                from netsim.store import parse_time
                acquired = parse_time(spec.get("acquireTime")) or now
            else:
                transitions += 1
            new = dict(cur)
            new["spec"] = lease_object(self.identity, self.config.lease_duration, now, acquired,
                                       transitions)["spec"]
            updated = self.store.update(new, expected_rv=(cur.get("metadata") or {}).get("resourceVersion"))
            self._observe(updated, now)
            return self._won(now)
        except (AlreadyExists, StoreError) as exc:  # a racing candidate won, or the store is busy: not now
            log.debug("leader election attempt by %s failed: %s", self.identity, exc)
            if self._leading and now - self.last_renew < self.config.renew_deadline:
                return True  # a holder keeps leading until its renew deadline passes
            return self._lost()

    def _won(self, now: float) -> bool:
        if not self._leading:
            log.info("%s became the control plane's leader", self.identity)
        self._leading, self.last_renew = True, now
        return True

    def _lost(self) -> bool:
        if self._leading:
            log.warning("%s lost the control plane's leadership", self.identity)
        self._leading = False
        return False

    def release(self) -> None:
        """ReleaseOnCancel: give the lease up so a standby need not wait for it to expire."""
        if not self._leading:
            return
        self._leading = False
        try:
            cur = self.store.get("Lease", LEASE_NAMESPACE, LEASE_NAME)
            if cur is None or (cur.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            new = dict(cur)
            now = self.clock()
            new["spec"] = {**(cur.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                           "renewTime": micro_time(now)}
            self.store.update(new, expected_rv=(cur.get("metadata") or {}).get("resourceVersion"))
            log.info("%s released the control plane's leadership", self.identity)
        except StoreError as exc:
            log.warning("could not release the leader lease: %s", exc)


def elector_for(store: Store, identity: str, config: LeaderConfig, clock: Callable[[], float],
                holder_gone: Callable[[str], bool] | None = None) -> LeaderElector:
    """The candidate for `store`: on etcd the election key on an etcd lease decides (netsim.leader_etcd),
    on SQLite (and in memory) the Lease object's rules above."""
    from netsim.etcd.store import EtcdStore
    if isinstance(store, EtcdStore):
        from netsim.leader_etcd import EtcdLeaderElector
        return EtcdLeaderElector(store, identity, config, clock, holder_gone)
    return LeaderElector(store, identity, config, clock, holder_gone)


class Elector(threading.Thread):
    """Runs a LeaderElector on its own thread and store connection: a long controller pass never delays a
    renewal (as client-go's renew loop runs beside the controllers). `leading` is read by the daemon's loop
    before each control-plane pass; `changed` is set whenever leadership is gained or lost."""

    def __init__(self, open_store: Callable[[], Store], identity: str, config: LeaderConfig,
                 clock: Callable[[], float], holder_gone: Callable[[str], bool] | None = None):
        super().__init__(name="netsim-leader-election", daemon=True)
        self._open, self.identity, self.config, self._clock = open_store, identity, config, clock
        self._holder_gone = holder_gone
        self._halt = threading.Event()
        self.changed = threading.Event()
        self._elector: LeaderElector | None = None
        self._ready = threading.Event()  # the first attempt was made

    @property
    def leading(self) -> bool:
        e = self._elector
        return bool(e and e.leading and self._clock() - e.last_renew < self.config.renew_deadline)

    def wait_first_attempt(self, timeout: float) -> None:
        self._ready.wait(timeout)

    def run(self) -> None:
        store = self._open()
        self._elector = elector_for(store, self.identity, self.config, self._clock, self._holder_gone)
        try:
            while not self._halt.is_set():
                before = self._elector.leading
                try:
                    after = self._elector.try_acquire_or_renew()
                except Exception:  # noqa: BLE001 - a store error of another kind: the thread must live on
                    log.exception("leader election attempt by %s failed", self.identity)
                    after = self._elector.leading and self._clock() - self._elector.last_renew < \
                        self.config.renew_deadline
                self._ready.set()
                if before != after:
                    self.changed.set()
                # the holder renews every retry period; candidates retry with client-go's jitter
                wait = self.config.retry_period * (1 if after else 1 + random.random() * JITTER_FACTOR)
                self._halt.wait(wait)
            self._elector.release()
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop competing and release the lease if held (waits for the release to be written)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout)
