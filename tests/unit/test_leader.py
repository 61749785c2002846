"""Leader election for the control plane (netsim.leader): client-go's tryAcquireOrRenew rules on a Lease
object, so one candidate leads, a standby takes over once the leader stopped renewing for a lease
duration, and a released lease is taken at once."""

from __future__ import annotations

import threading

import pytest

from netsim.leader import LEASE_NAME, LEASE_NAMESPACE, Elector, LeaderConfig, LeaderElector
from netsim.model.errors import NetsimError, Source
from netsim.model.meta import Fields
from netsim.model.timing import parse_timing
from netsim.store import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


CFG = LeaderConfig.for_lease(15.0)


def lease(store):
    return store.get("Lease", LEASE_NAMESPACE, LEASE_NAME)["spec"]


def test_the_first_candidate_leads_and_the_second_waits_while_it_renews():
    store, clock = MemoryStore(), Clock()
    a, b = LeaderElector(store, "a", CFG, clock), LeaderElector(store, "b", CFG, clock)
    assert a.try_acquire_or_renew() and a.leading
    assert not b.try_acquire_or_renew()
    for _ in range(20):  # 40 s of renewals every retry period: b never gets it
        clock.t += CFG.retry_period
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    spec = lease(store)
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0 and spec["leaseDurationSeconds"] == 15


def test_a_standby_takes_over_one_lease_duration_after_the_last_renewal_it_saw():
    store, clock = MemoryStore(), Clock()
    a, b = LeaderElector(store, "a", CFG, clock), LeaderElector(store, "b", CFG, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b observes the record now
    clock.t += CFG.lease_duration - 0.1
    assert not b.try_acquire_or_renew()  # a (dead) stopped renewing, but the lease still holds
    clock.t += 0.2
    assert b.try_acquire_or_renew() and b.leading
    spec = lease(store)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    # the old leader, back (a paused process), sees a valid lease held by b and does not lead
    assert not a.try_acquire_or_renew() and not a.leading


def test_the_expiry_is_measured_on_the_candidates_clock_not_the_holders_renew_time():
    # A holder whose clock runs an hour behind writes old renewTimes; the standby still waits a full lease
    # duration from when it saw the record change (client-go's observedTime).
    store, clock = MemoryStore(), Clock()
    skewed = Clock()
    skewed.t = clock.t - 3600
    a, b = LeaderElector(store, "a", CFG, skewed), LeaderElector(store, "b", CFG, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.t += CFG.lease_duration / 2
    assert not b.try_acquire_or_renew()


def test_a_released_lease_is_taken_at_once_and_racing_candidates_elect_one():
    store, clock = MemoryStore(), Clock()
    a, b, c = (LeaderElector(store, n, CFG, clock) for n in "abc")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert lease(store)["holderIdentity"] == "" and not a.leading
    clock.t += 0.01
    assert b.try_acquire_or_renew()
    assert not c.try_acquire_or_renew()


def test_a_leader_that_cannot_renew_stops_leading_after_the_renew_deadline():
    store, clock = MemoryStore(), Clock()
    a = LeaderElector(store, "a", CFG, clock)
    assert a.try_acquire_or_renew()

    def broken(*_a, **_k):
        from netsim.store import StoreError
        raise StoreError("database is locked")

    store.get = broken  # type: ignore[method-assign]
    clock.t += CFG.renew_deadline / 2
    assert a.try_acquire_or_renew()  # still within its renew deadline
    clock.t += CFG.renew_deadline
    assert not a.try_acquire_or_renew() and not a.leading


def test_two_electors_on_threads_elect_exactly_one_and_hand_over_when_it_stops(tmp_path):
    from netsim.store import SQLiteStore
    path = str(tmp_path / "store.db")
    SQLiteStore(path).close()
    cfg = LeaderConfig.for_lease(1.5)
    import time
    electors = [Elector(lambda: SQLiteStore(path), f"cand-{i}", cfg, time.time) for i in range(2)]
    for e in electors:
        e.start()
    try:
        deadline = time.monotonic() + 5
        while sum(e.leading for e in electors) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(e.leading for e in electors) == 1
        leader = next(e for e in electors if e.leading)
        other = next(e for e in electors if e is not leader)
        t0 = time.monotonic()
        leader.stop()  # released: the other leads at its next retry
        while not other.leading and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert other.leading and time.monotonic() - t0 < (1 + 1.2) * cfg.retry_period + 0.5
    finally:
        for e in electors:
            e.stop()


def test_spec_timing_leader_lease_duration():
    f = Fields({"timing": {"leaderLeaseDuration": "3s"}}, source=Source("c.yaml"), obj="Cluster/x", path="spec")
    t = parse_timing(f)
    assert t.leader_lease_duration == 3.0 and t.to_dict() == {"profile": "instant", "leaderLeaseDuration": "3s"}
    cfg = LeaderConfig.for_lease(t.leader_lease_duration)
    assert cfg.renew_deadline == pytest.approx(2.0) and cfg.retry_period == pytest.approx(0.4)
    with pytest.raises(NetsimError, match="leaderLeaseDuration"):
        parse_timing(Fields({"timing": {"leaderLeaseDuration": "0s"}}, source=Source("c.yaml"), obj="Cluster/x",
                            path="spec"))


def test_elector_thread_is_not_leading_before_it_ran():
    e = Elector(MemoryStore, "x", CFG, Clock())
    assert not e.leading and isinstance(e.changed, threading.Event)


@pytest.mark.parametrize("backend", ["sqlite", "etcd"])
def test_racing_candidates_on_separate_connections_elect_one_on_either_store(backend, tmp_path, request):
    # The lock is a compare-and-swap on the Lease's resourceVersion (etcd: its mod_revision): of candidates
    # that read the same record, one write wins and the others see a Conflict.
    if backend == "etcd":
        import secrets

        from netsim.etcd.store import EtcdStore
        rec, prefix = request.getfixturevalue("etcd_server"), f"/test/{secrets.token_hex(4)}"
        stores = [EtcdStore([rec.client_url], prefix) for _ in range(3)]
    else:
        from netsim.store import SQLiteStore
        stores = [SQLiteStore(str(tmp_path / "store.db")) for _ in range(3)]
    try:
        clock = Clock()
        cands = [LeaderElector(s, f"c{i}", CFG, clock) for i, s in enumerate(stores)]
        assert [c.try_acquire_or_renew() for c in cands] == [True, False, False]
        clock.t += CFG.lease_duration + 1  # c0 stopped renewing: c1 and c2 both see it expired
        for c in cands[1:]:
            c._observe(stores[0].get("Lease", LEASE_NAMESPACE, LEASE_NAME), clock.t - CFG.lease_duration - 1)
        first = stores[1].get("Lease", LEASE_NAMESPACE, LEASE_NAME)
        real_get = stores[2].get
        stores[2].get = lambda *a: first  # c2 read the record before c1 wrote it
        won = [cands[1].try_acquire_or_renew(), cands[2].try_acquire_or_renew()]
        stores[2].get = real_get
        assert won == [True, False]
        assert lease(stores[0])["holderIdentity"] == "c1" and lease(stores[0])["leaseTransitions"] == 1
    finally:
        for s in stores:
            s.close()


# -- on etcd: the election key on an etcd lease (netsim.leader_etcd) ---------------------------------------

def _etcd_candidates(request, n: int, lease_duration: float):
    import secrets
    import time

    from netsim.etcd.store import EtcdStore
    from netsim.leader import elector_for
    rec, prefix = request.getfixturevalue("etcd_server"), f"/test/{secrets.token_hex(4)}"
    stores = [EtcdStore([rec.client_url], prefix) for _ in range(n)]
    cfg = LeaderConfig.for_lease(lease_duration)
    return stores, cfg, [elector_for(s, f"c{i}", cfg, time.time) for i, s in enumerate(stores)]


def _holder_key(store):
    from netsim.leader_etcd import election_key
    _, kvs, _ = store.etcd.range(election_key(store))
    return kvs[0] if kvs else None


def test_on_etcd_two_candidates_elect_one_by_the_key_on_its_lease(request):
    stores, cfg, (a, b) = _etcd_candidates(request, 2, 15.0)
    try:
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
        kv = _holder_key(stores[0])
        assert kv is not None and kv.value == b"c0"
        a.flush_lease_object()  # written off the election's thread
        assert lease(stores[0])["holderIdentity"] == "c0"  # the Lease object is still written (kubectl)
        # the key decides, not the Lease object: a Lease object released by hand changes nothing
        cur = stores[0].get("Lease", LEASE_NAMESPACE, LEASE_NAME)
        stores[0].update({**cur, "spec": {**cur["spec"], "holderIdentity": ""}})
        assert not b.try_acquire_or_renew() and a.try_acquire_or_renew()
        a.flush_lease_object()
        assert stores[0].etcd.call("/v3/lease/timetolive", {"ID": str(a.lease_id)})["grantedTTL"] == "15"
        a.release()  # a clean stop revokes the lease: the key goes with it, b wins at its next attempt
        assert _holder_key(stores[0]) is None and not a.leading
        assert b.try_acquire_or_renew()
        b.flush_lease_object()
        assert lease(stores[0])["holderIdentity"] == "c1"
        assert lease(stores[0])["leaseTransitions"] == 1
    finally:
        for c in (a, b):
            c.release()
        for s in stores:
            s.close()


def test_on_etcd_a_dead_leaders_key_expires_with_its_lease_and_a_standby_wins(request):
    # TTL 2 s (etcd's minimum): the leader stops renewing (its process died: no release), etcd deletes the
    # key when the lease expires (its lessor checks every 500 ms) and the standby's next attempt wins.
    import random
    import time
    stores, cfg, (a, b) = _etcd_candidates(request, 2, 2.0)
    try:
        assert a.try_acquire_or_renew()
        last_renewal = time.monotonic()
        assert not b.try_acquire_or_renew()
        while not b.try_acquire_or_renew():
            assert time.monotonic() - last_renewal < 2 + 0.5 + 2.2 * cfg.retry_period + 2.0, "no takeover"
            time.sleep(cfg.retry_period * (1 + random.random() * 1.2))
        took = time.monotonic() - last_renewal
        assert took >= 1.5  # not before the lease ran out
        assert _holder_key(stores[0]).value == b"c1"
        # the old leader, back, finds its lease gone at its keep-alive and stops leading
        assert not a.try_acquire_or_renew() and not a.leading
    finally:
        for c in (a, b):
            c.release()
        for s in stores:
            s.close()


def test_on_etcd_a_leader_whose_keepalive_finds_the_lease_gone_stops_leading(request):
    stores, cfg, (a, b) = _etcd_candidates(request, 2, 15.0)
    try:
        assert a.try_acquire_or_renew() and a.leading
        stores[1].etcd.lease_revoke(a.lease_id)  # etcd lost it (e.g. expired while the process was stalled)
        assert not a.try_acquire_or_renew() and not a.leading
        assert b.try_acquire_or_renew()  # the key went with the lease: no lease period to wait
        assert not a.try_acquire_or_renew()
    finally:
        for c in (a, b):
            c.release()
        for s in stores:
            s.close()


def test_on_etcd_a_long_store_transaction_does_not_hold_up_the_election(request):
    """The Lease object is written off the election's thread: while another process's transaction block
    holds the store lock (up to the store's lock wait), an attempt still keeps the election lease alive and
    returns; the object catches up once the lock is free."""
    import threading

    stores, cfg, (a, b) = _etcd_candidates(request, 2, 15.0)
    inside, leave = threading.Event(), threading.Event()

    def long_block():
        with stores[1].transaction():
            inside.set()
            leave.wait(8)  # a synchronous object write would wait this out: the thread would be gone below
    t = threading.Thread(target=long_block)
    try:
        t.start()
        assert inside.wait(10)
        assert a.try_acquire_or_renew() and a.try_acquire_or_renew()  # won and renewed, the lock held all along
        assert t.is_alive() and stores[0].get("Lease", LEASE_NAMESPACE, LEASE_NAME) is None
        leave.set()
        t.join(10)
        a.flush_lease_object()
        assert lease(stores[0])["holderIdentity"] == "c0"
    finally:
        leave.set()
        t.join(10)
        for c in (a, b):
            c.release()
        for s in stores:
            s.close()


def test_on_etcd_a_gone_holder_of_this_machine_is_taken_over_at_once(request):
    import time

    from netsim.leader import elector_for
    stores, cfg, (a, _b) = _etcd_candidates(request, 2, 15.0)
    b = elector_for(stores[1], "c1", cfg, time.time, holder_gone=lambda h: h == "c0")
    try:
        assert a.try_acquire_or_renew()
        assert b.try_acquire_or_renew() and _holder_key(stores[0]).value == b"c1"
    finally:
        for c in (a, b):
            c.release()
        for s in stores:
            s.close()


def test_elector_threads_on_etcd_elect_one_and_hand_over_on_a_clean_stop(request):
    import secrets
    import time

    from netsim.etcd.store import EtcdStore
    rec, prefix = request.getfixturevalue("etcd_server"), f"/test/{secrets.token_hex(4)}"
    cfg = LeaderConfig.for_lease(2.0)
    electors = [Elector(lambda: EtcdStore([rec.client_url], prefix), f"cand-{i}", cfg, time.time) for i in range(2)]
    for e in electors:
        e.start()
    try:
        deadline = time.monotonic() + 5
        while sum(e.leading for e in electors) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(e.leading for e in electors) == 1
        leader = next(e for e in electors if e.leading)
        other = next(e for e in electors if e is not leader)
        t0 = time.monotonic()
        leader.stop()  # revoked: the other wins at its next attempt, not a lease period later
        while not other.leading and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        assert other.leading and time.monotonic() - t0 < (1 + 1.2) * cfg.retry_period + 0.5
    finally:
        for e in electors:
            e.stop()
