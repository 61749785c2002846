"""Leader election on an etcd lease: on the etcd store, the control plane's leader is who holds a key.

On etcd, the election is decided as etcd's own election recipe decides it (go.etcd.io/etcd/client/v3/
concurrency: session.go NewSession grants a lease of the session's TTL and keeps it alive; election.go
Campaign puts the candidate's key in a Txn guarded by `CreateRevision(key) == 0` with the session's lease
attached; Resign deletes it; mutex.go's Lock is the same compare). netsim keeps one key per cluster,
`<store prefix>/netsim-controlplane/leader`, whose value is the holder's identity:

- a candidate grants a lease, TTL = the leader lease duration in whole seconds, at least etcd's minimum
  (server/lease/lessor.go: minLeaseTTL = ceil(1.5 x election timeout) = 2 s with etcd's default 100 ms
  heartbeat and 1 s election timeout; a smaller grant is raised to it anyway), and creates the key in a Txn
  guarded by create_revision == 0 with that lease: of racing candidates exactly one Txn succeeds;
- the leader keeps the lease alive every retry period (a keep-alive that answers TTL 0 means etcd revoked
  it: the key went with it and the holder stops leading at once); a keep-alive that cannot reach etcd keeps
  it leading until its renew deadline (shorter than the TTL, so it stops before etcd can hand the key on);
- a clean stop revokes the lease (the key goes with it: a standby wins at its next attempt); a dead
  leader's key is deleted by etcd when its lease expires (the lessor checks every 500 ms, lessor.go
  runLoop), and a standby's next attempt wins;
- a standby keeps its own lease alive between attempts, so an attempt is one keep-alive and one Txn.

The `kube-system/netsim-controlplane` Lease object is still written by the leader on every renewal
(`kubectl get lease` shows the holder, and `netsim status` reads it), but on etcd it decides nothing.
The SQLite store keeps the Lease-object rules of netsim.leader.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from netsim.etcd import client as ec
from netsim.etcd.store import EtcdStore
from netsim.leader import LEASE_NAME, LEASE_NAMESPACE, LeaderConfig, LeaderElector, lease_object, micro_time
from netsim.store import AlreadyExists, StoreError, parse_time

log = logging.getLogger("netsim.leader")
ETCD_MIN_TTL = 2  # seconds: etcd's minimum lease TTL with its default heartbeat/election timeout (lessor.go)


def election_key(store: EtcdStore) -> str:
    return f"{store.prefix}/{LEASE_NAME}/leader"


def lease_ttl(config: LeaderConfig) -> int:
    """The etcd lease's TTL: the leader lease duration in whole seconds, at least etcd's minimum."""
    return max(ETCD_MIN_TTL, math.ceil(config.lease_duration))


class EtcdLeaderElector(LeaderElector):
    """A candidate whose leadership is the election key on its etcd lease (module docstring)."""

    def __init__(self, store: EtcdStore, identity: str, config: LeaderConfig, clock: Callable[[], float],
                 holder_gone: Callable[[str], bool] | None = None):
        super().__init__(store, identity, config, clock, holder_gone)
        self.etcd_store = store
        self.key = election_key(store)
        self.lease_id = 0  # our etcd lease (kept alive while leading or standing by)
        self.key_revision = 0  # create_revision of the key we hold
        self._object_lock = threading.Lock()
        self._object_pending: tuple[float, bool] | None = None  # (when, a renewal) of the next object write
        self._object_writer: threading.Thread | None = None

    def _live_lease(self) -> int:
        """Our lease, kept alive (a new one when etcd no longer has it)."""
        etcd = self.etcd_store.etcd
        if self.lease_id and etcd.lease_keepalive(self.lease_id) > 0:
            return self.lease_id
        self.lease_id = etcd.lease_grant(lease_ttl(self.config))
        return self.lease_id

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        etcd = self.etcd_store.etcd
        try:
            if self._leading:
                if etcd.lease_keepalive(self.lease_id) > 0:
                    self._write_lease_object(now)
                    return self._won(now)
                log.warning("%s: the election lease %x is gone", self.identity, self.lease_id)
                self.lease_id = self.key_revision = 0
                return self._lost()
            lease = self._live_lease()
            ok, rev, responses = etcd.txn([ec.absent(self.key)], [ec.put(self.key, self.identity, lease)],
                                          [ec.get(self.key)])
            if not ok and self._take_from_gone_holder(responses):
                ok, rev, _ = etcd.txn([ec.absent(self.key)], [ec.put(self.key, self.identity, lease)])
            if not ok:
                return self._lost()
            self.key_revision = rev
            self._write_lease_object(now)
            return self._won(now)
        except ec.EtcdError as exc:  # etcd unreachable or busy: not now
            log.info("leader election attempt by %s failed: %s", self.identity, exc)
            if self._leading and now - self.last_renew < self.config.renew_deadline:
                return True  # a holder keeps leading until its renew deadline passes
            return self._lost()

    def _take_from_gone_holder(self, responses: list[dict]) -> bool:
        """Delete the key of a holder known dead (netsim.hostagent.holder_gone: a pid of this machine),
        guarded by its create_revision; True when it was deleted."""
        kvs = ((responses[0] if responses else {}).get("response_range") or {}).get("kvs") or []
        if not kvs:
            return True  # deleted between the compare and the read
        kv = ec.KV.of(kvs[0])
        holder = kv.value.decode(errors="replace")
        if holder == self.identity or not self.holder_gone(holder):
            return False
        ok, _, _ = self.etcd_store.etcd.txn([ec.created_at(self.key, kv.create_revision)], [ec.delete(self.key)])
        if ok:
            log.info("%s: the leader %s is gone; its election key deleted", self.identity, holder)
        return ok

    def _write_lease_object(self, now: float) -> None:
        """Write the informational Lease object off the election's thread: the key decides, and a store
        write can wait (up to the store's lock wait) while another process holds the store lock for a
        long transaction; the election's keep-alives must not wait with it, or the election lease would
        expire under the leader. Writes queue as one: the latest renewal wins."""
        with self._object_lock:
            self._object_pending = (now, self._leading)
            if self._object_writer is not None and self._object_writer.is_alive():
                return
            self._object_writer = threading.Thread(target=self._object_writes, daemon=True,
                                                   name="leader-lease-object")
            self._object_writer.start()

    def _object_writes(self) -> None:
        while True:
            with self._object_lock:
                pending, self._object_pending = self._object_pending, None
                if pending is None:
                    self._object_writer = None
                    return
            self._put_lease_object(*pending)

    def flush_lease_object(self, timeout: float = 30.0) -> None:
        """Wait until the queued Lease-object writes are done (release, and readers that must see it)."""
        with self._object_lock:
            writer = self._object_writer
        if writer is not None:
            writer.join(timeout)

    def _put_lease_object(self, now: float, renewal: bool) -> None:
        """The informational Lease object: holder, renewTime, transitions as client-go would write them."""
        try:
            cur = self.store.get("Lease", LEASE_NAMESPACE, LEASE_NAME)
            if cur is None:
                self.store.create(lease_object(self.identity, self.config.lease_duration, now, now, 0))
                return
            spec = cur.get("spec") or {}
            transitions = int(spec.get("leaseTransitions") or 0)
            acquired = now
            if renewal:  # a renewal: the key says we held it all along, whatever the object says
                if spec.get("holderIdentity") == self.identity:
                    acquired = parse_time(spec.get("acquireTime")) or now
            else:
                transitions += 1  # an acquisition (client-go counts every change of holder)
            new = dict(cur)
            new["spec"] = lease_object(self.identity, self.config.lease_duration, now, acquired, transitions)["spec"]
            self.store.update(new, expected_rv=(cur.get("metadata") or {}).get("resourceVersion"))
        except (AlreadyExists, StoreError, ec.EtcdError) as exc:  # the key decides; the object catches up at the next renewal
            log.info("%s could not write the Lease object: %s", self.identity, exc)

    def release(self) -> None:
        """Resign: revoke the lease (the key goes with it), then mark the Lease object released."""
        self.flush_lease_object(5.0)  # a renewal's write must not land after the release's below
        was_leading, lease = self._leading, self.lease_id
        self._leading, self.lease_id, self.key_revision = False, 0, 0
        if lease:
            try:
                self.etcd_store.etcd.lease_revoke(lease)
            except ec.EtcdError as exc:
                log.warning("could not revoke the election lease: %s", exc)
        if not was_leading:
            return
        try:
            cur = self.store.get("Lease", LEASE_NAMESPACE, LEASE_NAME)
            if cur is None or (cur.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            new = dict(cur)
            new["spec"] = {**(cur.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                           "renewTime": micro_time(self.clock())}
            self.store.update(new, expected_rv=(cur.get("metadata") or {}).get("resourceVersion"))
            log.info("%s released the control plane's leadership", self.identity)
        except (StoreError, ec.EtcdError) as exc:
            log.warning("could not release the leader lease: %s", exc)
