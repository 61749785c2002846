"""The store on etcd: the same `Store` contract as the SQLite store, with etcd as the engine.

Layout under a per-cluster prefix P (default `/netsim/<cluster>`), as kube-apiserver lays out its keys
(k8s.io/apiserver pkg/storage/etcd3/store.go: `<prefix>/<resource>/<namespace>/<name>`, cluster-scoped
objects without the namespace; the resource prefixes from pkg/registry, e.g. nodes under `minions`, Services
under `services/specs`, Endpoints under `services/endpoints`):

    P/registry/<resource>/<namespace>/<name>   an object, JSON, without its resourceVersion
    P/meta/rv          touched by every transaction that writes objects: its mod_revision is current_rv()
    P/meta/compacted   the revision the change feed was last compacted at (as compact.go's compact_rev_key)
    P/meta/lock        held (on a lease) by whoever runs a multi-object transaction
    P/meta/eventseq    the events' sequence counter;  P/events/<seq, 20 digits>: one event record each

Semantics, as the API server gets them from etcd:
- resourceVersion = the key's mod_revision (k8s.io/apiserver storage/etcd3 APIObjectVersioner: the value
  stored carries none; it is filled in from the revision on every read). A deleted object carries the
  revision of its deletion (etcd3/watcher.go parseEvent).
- Compare-and-swap: every write is one etcd Txn whose compares hold the mod_revision of each key read
  (0 for "absent"), retried afresh when another writer got in between, as GuaranteedUpdate does
  (etcd3/store.go); with an expected resourceVersion a mismatch is Conflict, never a retry.
- `apply` of many objects is one Txn: all or nothing. So is a `transaction()` block: its reads see its
  own writes, which are buffered and committed in one Txn at the end (nothing on error). Because a block
  reads many objects (a controller pass lists everything), blocks take P/meta/lock (a key on a lease:
  a crashed holder's lock goes with its lease) and single-object writes require the lock to be free
  (a compare in their Txn), so a block is serializable exactly as SQLite's BEGIN IMMEDIATE makes it. All
  objects one Txn writes share its revision; a key written twice in one block is one change (its final state).
- The change feed is an etcd watch over P/registry/ from rv+1 (with prev_kv, so a deletion carries the
  object), read until it has reached current_rv(); a watch from a compacted revision raises Compacted
  (the API's 410), as does a resourceVersion older than P/meta/compacted. ADDED is a PUT whose
  create_revision equals its mod_revision (etcd3/event.go).
- `wait_for_change` watches P/meta/rv from rv+1 (no polling).
- Node heartbeats are ordinary status writes; they do not use leases (the kubelet's Lease objects are
  not emulated).
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from netsim import pidstate
from netsim.etcd import client as ec
from netsim.model.builtin_kinds import builtin
from netsim.store import (
    ADDED,
    DELETED,
    MODIFIED,
    Change,
    Compacted,
    Store,
    StoreError,
    WriteSemantics,
    as_dict,
    identity,
    matches,
    scoped_namespace,
    size_checked_body,
)

log = logging.getLogger(__name__)

# Where kube-apiserver keeps the kinds whose etcd prefix is not their plural (pkg/registry/*/storage).
_RESOURCE_PATHS = {"Node": "minions", "Service": "services/specs", "Endpoints": "services/endpoints"}
_TWO_PART = {"services"}  # resource paths of two segments start with one of these

LOCK_TTL = 10  # seconds: a crashed lock holder blocks writers at most this long
LOCK_WAIT = 30.0  # seconds a writer waits for the lock before giving up (SQLite's busy timeout is 10 s)
FEED_TIMEOUT = 10.0
TXN_READS = 128
CACHE_EVENTS = 10_000  # the feed cache keeps at most this many events (whole revisions)  # etcd's default --max-txn-ops: reads batched into Txns of at most this many  # a change feed read that stops short of current_rv gives up after this long


def resource_path(kind: str) -> str:
    if kind in _RESOURCE_PATHS:
        return _RESOURCE_PATHS[kind]
    b = builtin(kind)
    return b.plural if b is not None else kind  # a custom kind: its Kind (never clashes: plurals are lowercase)


_KIND_OF_PATH: dict[str, str] = {}


def kind_of_path(path: str) -> str:
    if not _KIND_OF_PATH:
        from netsim.model.builtin_kinds import BUILTIN_KINDS
        _KIND_OF_PATH.update({resource_path(b.kind): b.kind for b in BUILTIN_KINDS})
    return _KIND_OF_PATH.get(path, path)


def _encode(obj: dict[str, Any]) -> str:
    md = obj["metadata"]
    rv = md.pop("resourceVersion", None)
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    finally:
        if rv is not None:
            md["resourceVersion"] = rv


def _decode(kv: ec.KV, rv: int | None = None) -> dict[str, Any]:
    obj = json.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(rv if rv is not None else kv.mod_revision)
    return obj


class EtcdStore(Store):
    """A Store on an etcd cluster (etcd >= 3.4, through its JSON gateway)."""

    def __init__(self, endpoints: list[str] | tuple[str, ...], prefix: str, *,
                 clock: Callable[[], float] = time.time):
        self.endpoints = list(endpoints)
        self.etcd = ec.Etcd(self.endpoints)
        self.clock = clock
        p = "/" + prefix.strip("/")
        self.prefix = p
        self.registry = p + "/registry/"
        self.meta = p + "/meta/"
        self.rv_key, self.compacted_key = p + "/meta/rv", p + "/meta/compacted"
        self.lock_key, self.seq_key = p + "/meta/lock", p + "/meta/eventseq"
        self.events_prefix = p + "/events/"
        self._tx_lock = threading.RLock()
        self._in_tx = False
        self._lease = 0
        self._lease_lock = threading.Lock()
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None
        self._owner = f"{pidstate.holder_tag()}:{id(self):x}"  # host:pid:object (pidstate.holder_gone)
        self._cache = _FeedCache(self)

    # -- keys ----------------------------------------------------------------------------------------
    def key(self, kind: str, ns: str | None, name: str) -> str:
        return f"{self.registry}{resource_path(kind)}/{ns + '/' if ns else ''}{name}"

    def list_prefix(self, kind: str, ns: str | None) -> str:
        return f"{self.registry}{resource_path(kind)}/{ns + '/' if ns else ''}"

    def parse_key(self, key: str) -> tuple[str, str | None, str]:
        """(kind, namespace, name) of a registry key."""
        parts = key[len(self.registry):].split("/")
        n = 2 if parts[0] in _TWO_PART and len(parts) > 2 else 1
        kind, rest = kind_of_path("/".join(parts[:n])), parts[n:]
        return (kind, rest[0], rest[1]) if len(rest) == 2 else (kind, None, rest[-1])

    # -- meta ----------------------------------------------------------------------------------------
    def _meta(self, revision: int = 0) -> dict[str, ec.KV]:
        _, kvs, _ = self.etcd.range(self.meta, ec.prefix_end(self.meta), revision=revision)
        return {kv.key: kv for kv in kvs}

    def current_rv(self) -> int:
        kv = self._meta().get(self.rv_key)
        return kv.mod_revision if kv else 0

    def compacted_rv(self) -> int:
        kv = self._meta().get(self.compacted_key)
        return int(kv.value) if kv else 0

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, kind, namespace, name):
        return self._view().get(kind, namespace, name)

    def list(self, kind, namespace=None, selector=None):
        return self._view().list(kind, namespace, selector)

    def kinds_in(self, namespace):
        return self._view().kinds_in(namespace)

    def events_since(self, seq=0, limit=None):
        start = f"{self.events_prefix}{int(seq) + 1:020d}"
        _, kvs, _ = self.etcd.range(start, ec.prefix_end(self.events_prefix), limit=limit or 0)
        return [{**json.loads(kv.value), "seq": int(kv.key[len(self.events_prefix):])} for kv in kvs]

    def _view(self, revision: int = 0) -> _Tx:
        return _Tx(self, locked=False, revision=revision, read_only=True)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Reads pinned at one etcd revision (a Range with `revision`), so a LIST and the resourceVersion
        it reports belong together as in kube-apiserver's consistent LIST."""
        rev, _, _ = self.etcd.range(self.rv_key)
        yield self._view(rev)

    # -- the change feed -----------------------------------------------------------------------------
    def _feed(self, rv: int, limit: int | None, prev_kv: bool) -> list[tuple[int, ec.WatchEvent]]:
        rv = int(rv)
        meta = self._meta()
        compacted = int(meta[self.compacted_key].value) if self.compacted_key in meta else 0
        if rv + 1 < compacted:
            raise Compacted(rv, compacted)
        target = meta[self.rv_key].mod_revision if self.rv_key in meta else 0
        if target <= rv:
            return []
        cached = self._cache.read(rv, target)
        if cached is not None:
            out = cached
        else:
            out = self._watch_history(rv, limit, prev_kv, target, compacted)
        if limit and len(out) > limit:
            cut = out[limit - 1][0]
            out = [x for x in out if x[0] <= cut]
        return out

    def _watch_history(self, rv: int, limit: int | None, prev_kv: bool, target: int,
                       compacted: int) -> list[tuple[int, ec.WatchEvent]]:
        """History from etcd itself: a watch from rv+1 read up to `target`. etcd serves a watch from a past
        revision from its sync loop (every 100 ms: mvcc/watchable_store.go syncWatchersLoop), hence the
        cache for the usual case."""
        out: list[tuple[int, ec.WatchEvent]] = []
        try:
            # start_revision 0 would mean "from now": a watch from before the first write starts at 1.
            with self.etcd.watch(self.registry, ec.prefix_end(self.registry), max(rv + 1, 1), prev_kv=prev_kv,
                                 timeout=FEED_TIMEOUT) as w:
                # Responses end at revision boundaries (mvcc watchable_store.go eventBatch), so cutting
                # after one never splits a revision: a watcher resuming from the last rv misses nothing.
                for _, events in w.responses():
                    out += [(e.kv.mod_revision, e) for e in events]
                    if events[-1].kv.mod_revision >= target or (limit and len(out) >= limit):
                        break
        except ec.EtcdCompacted as exc:
            raise Compacted(rv, exc.compact_revision or compacted) from None
        except TimeoutError:
            log.warning("etcd change feed from %d stopped short of %d after %ss", rv, target, FEED_TIMEOUT)
        return out

    def changes_since(self, rv, limit=None):
        return self._changes(rv, limit, None)

    def changes_of(self, kinds, rv):
        """Only `kinds`' changes: other kinds' values are never decoded (the kind is in the key)."""
        return self._changes(rv, None, set(kinds))

    def _changes(self, rv: int, limit: int | None, kinds: set[str] | None) -> list[Change]:
        out = []
        for rev, e in self._feed(rv, limit, prev_kv=True):
            kind, ns, name = self.parse_key(e.kv.key)
            if kinds is not None and kind not in kinds:
                continue
            if e.type == "DELETE":
                obj = _decode(e.prev, rev) if e.prev else {"kind": kind, "metadata": {"name": name}}
                out.append(Change(rev, DELETED, kind, ns, name, obj))
            else:
                typ = ADDED if e.kv.create_revision == e.kv.mod_revision else MODIFIED
                out.append(Change(rev, typ, kind, ns, name, _decode(e.kv)))
        return out

    def kinds_changed_since(self, rv):
        return {self.parse_key(e.kv.key)[0] for _, e in self._feed(rv, None, prev_kv=False)}

    def wait_for_change(self, rv: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if self.current_rv() > rv:
            return True
        try:
            # Set up with the client's timeout (a loaded etcd may take a while to answer the create);
            # only the wait itself is bounded by `timeout`.
            with self.etcd.watch(self.rv_key, None, max(int(rv) + 1, 1)) as w:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self.current_rv() > rv
                w.settimeout(remaining)
                for _ in w.responses():
                    return True
        except TimeoutError:
            return False
        except ec.EtcdError as exc:  # compacted past rv, or etcd unreachable for now: poll until the deadline
            log.debug("waiting for a change by polling: %s", exc)
        while time.monotonic() < deadline:
            with contextlib.suppress(ec.EtcdError):
                if self.current_rv() > rv:
                    return True
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return False

    # -- compaction ----------------------------------------------------------------------------------
    def compact(self, rv: int) -> int:
        """Compact etcd's history before `rv` (never past current_rv), recording it first in
        P/meta/compacted with a compare-and-swap so that of several compactors one wins, as
        kube-apiserver's compactor does with its compact_rev_key (k8s.io/apiserver storage/etcd3/compact.go).
        Returns how many revisions were dropped (etcd does not count the entries)."""
        meta = self._meta()
        current = meta[self.rv_key].mod_revision if self.rv_key in meta else 0
        prev_kv = meta.get(self.compacted_key)
        prev = int(prev_kv.value) if prev_kv else 0
        rv = min(int(rv), current)
        if rv <= prev:
            return 0
        ok, _, _ = self.etcd.txn([ec.mod_is(self.compacted_key, prev_kv.mod_revision if prev_kv else 0)],
                                 [ec.put(self.compacted_key, str(rv))])
        if not ok:
            return 0
        try:
            self.etcd.compact(rv)
        except ec.EtcdCompacted:
            pass  # etcd was compacted further already (another client, or --auto-compaction)
        return rv - prev

    # -- writes --------------------------------------------------------------------------------------
    def _optimistic(self, fn: Callable[[_Tx], Any]) -> Any:
        """Run `fn` against a fresh view and commit its writes in one Txn conditional on everything it read;
        run it again when another writer got in between (k8s GuaranteedUpdate), wait while a block holds
        the lock."""
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.001
        while True:
            tx = _Tx(self, locked=False)
            result = fn(tx)
            ok, lock = tx.commit()
            if ok:
                return result
            locked = lock is not None
            if locked:
                self._break_dead_lock(lock)
            if time.monotonic() > deadline:
                raise StoreError(f"etcd store {self.prefix}: gave up after {LOCK_WAIT:g}s waiting for "
                                 + ("the store lock" if locked else "a write without conflicts"))
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    # Each attempt starts from the caller's object afresh: WriteSemantics copies it (as_dict).
    def create(self, obj):
        return self._optimistic(lambda tx: tx.create(obj))

    def update(self, obj, expected_rv=None):
        return self._optimistic(lambda tx: tx.update(obj, expected_rv))

    def update_status(self, kind, namespace, name, status, expected_rv=None):
        return self._optimistic(lambda tx: tx.update_status(kind, namespace, name, status, expected_rv))

    def delete(self, kind, namespace, name, expected_rv=None):
        return self._optimistic(lambda tx: tx.delete(kind, namespace, name, expected_rv))

    def apply(self, objects):
        objects = list(objects)  # materialise first so a bad generator cannot leave half a batch
        return self._optimistic(lambda tx: tx.apply(objects))

    def append_events(self, events):
        events = [dict(e) for e in events]
        return self._optimistic(lambda tx: tx.append_events(events))

    # -- the lock for transaction blocks --------------------------------------------------------------
    def _lease_id(self) -> int:
        with self._lease_lock:
            if not self._lease:
                self._lease = self.etcd.lease_grant(LOCK_TTL)
                if self._keeper is None:
                    self._keeper = threading.Thread(target=self._keep_alive, daemon=True,
                                                    name=f"etcd-lease-{self.prefix}")
                    self._keeper.start()
            return self._lease

    def _keep_alive(self) -> None:
        while not self._closed.wait(LOCK_TTL / 3):
            with self._lease_lock:
                lease = self._lease
            if not lease:
                continue
            try:
                alive = self.etcd.lease_keepalive(lease)
            except ec.EtcdError as exc:
                log.warning("etcd lease keepalive failed: %s", exc)
                continue
            if not alive:
                with self._lease_lock:
                    if self._lease == lease:
                        self._lease = 0  # expired (the process stalled): the next lock takes a new one

    def _acquire(self) -> int:
        """Take P/meta/lock; its create_revision (the revision our lock put made)."""
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.001
        while True:
            ok, rev, responses = self.etcd.txn([ec.absent(self.lock_key)],
                                               [ec.put(self.lock_key, self._owner, self._lease_id())],
                                               [ec.get(self.lock_key)])
            if ok:
                return rev
            lock = _lock_kv(responses)
            if lock is not None:
                self._break_dead_lock(lock)
            if time.monotonic() > deadline:
                raise StoreError(f"etcd store {self.prefix}: gave up after {LOCK_WAIT:g}s waiting for the "
                                 "store lock")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _break_dead_lock(self, lock: ec.KV) -> None:
        """Delete the lock of a holder of this machine that is gone or dying (a process killed inside its
        transaction block), guarded by the lock's create_revision: the waiter goes on at once, as SQLite's
        waiters do when the kernel drops a dead holder's file lock, instead of after the lock's lease
        (LOCK_TTL). A holder on another machine, or one alive, is left alone. The dead holder's commit,
        should it still reach etcd, fails its compare on the lock's create_revision."""
        owner = lock.value.decode(errors="replace")
        if owner == self._owner or not pidstate.holder_gone(owner):
            return
        with contextlib.suppress(ec.EtcdError):
            ok, _, _ = self.etcd.txn([ec.created_at(self.lock_key, lock.create_revision)], [ec.delete(self.lock_key)])
            if ok:
                log.info("etcd store %s: the store lock's holder %s is gone; lock broken", self.prefix, owner)

    def _release(self, lock_rev: int) -> None:
        with contextlib.suppress(ec.EtcdError):
            self.etcd.txn([ec.created_at(self.lock_key, lock_rev)], [ec.delete(self.lock_key)])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        with self._tx_lock:
            if self._in_tx:
                raise StoreError("a transaction is already open on this store object")
            self._in_tx = True
            try:
                lock_rev = self._acquire()
                done = ok = False
                try:
                    tx = _Tx(self, locked=True, lock_rev=lock_rev)
                    yield tx
                    ok, _ = tx.commit()
                    done = True  # the commit released the lock with it
                    if not ok:
                        raise StoreError(f"etcd store {self.prefix}: the store lock was lost during a "
                                         "transaction (its lease expired); nothing was written")
                finally:
                    if not ok:  # its provisional resourceVersion will be handed out again
                        self.object_cache().forget_from(lock_rev + 1)
                    if not done:
                        self._release(lock_rev)
            finally:
                self._in_tx = False

    def close(self) -> None:
        self._closed.set()
        self._cache.stop()
        with self._lease_lock:
            lease, self._lease = self._lease, 0
        if lease:
            with contextlib.suppress(ec.EtcdError):
                self.etcd.lease_revoke(lease)
        self.etcd.close()

    def drop_all(self) -> None:
        """Delete every key under this store's prefix (what `down` does to a cluster on a shared etcd)."""
        p = self.prefix + "/"
        self.etcd.txn([], [ec.delete(p, ec.prefix_end(p))])


class _FeedCache:
    """The recent change feed in memory, from one watch kept open on P/registry/, as kube-apiserver keeps
    a watch cache in front of etcd (k8s.io/apiserver pkg/storage/cacher: watch once, serve watchers from
    memory). A watch from the current revision is served by etcd at once, one from a past revision only
    by its 100 ms sync loop: so a store object that reads the feed repeatedly (the daemon's agents, the API
    endpoint's watches) gets its changes from here, and only a resourceVersion older than the cache goes
    to etcd. A dropped watch resumes from the revision after the last event it delivered; a compacted one
    starts afresh (older history then comes from etcd, which answers Compacted where it is gone)."""

    def __init__(self, store: EtcdStore):
        self.s = store
        self.cond = threading.Condition()
        self.events: list[tuple[int, ec.WatchEvent]] = []
        self.start = 1 << 62  # every event from this revision on is in `events` (once started)
        self.progress = 0  # every event up to this revision has arrived
        self.thread: threading.Thread | None = None
        self.watch: ec.Watch | None = None
        self.stopped = False

    def read(self, rv: int, target: int) -> list[tuple[int, ec.WatchEvent]] | None:
        """Events after `rv`, once every event up to `target` is in; None when the cache cannot answer."""
        with self.cond:
            if self.thread is None and not self.stopped:
                self.thread = threading.Thread(target=self._run, daemon=True, name=f"etcd-feed-{self.s.prefix}")
                self.thread.start()
            if rv + 1 < self.start:
                return None
            if not self.cond.wait_for(lambda: self.progress >= target or rv + 1 < self.start, timeout=2.0):
                return None
            if rv + 1 < self.start:
                return None
            i = bisect.bisect_right(self.events, rv, key=lambda x: x[0])
            return self.events[i:]

    def _run(self) -> None:
        nxt = 0
        while not self.stopped and not self.s._closed.is_set():
            try:
                if not nxt:
                    rev, _, _ = self.s.etcd.range(self.s.rv_key)
                    with self.cond:
                        self.events.clear()
                        self.start, self.progress = rev + 1, rev
                        self.cond.notify_all()
                    nxt = rev + 1
                w = self.watch = self.s.etcd.watch(self.s.registry, ec.prefix_end(self.s.registry), nxt,
                                                   prev_kv=True, timeout=None)
                w.settimeout(None)
                with w:
                    for _, events in w.responses():
                        with self.cond:
                            # Only a deletion needs the state before it (its object); keep no more.
                            self.events += [(e.kv.mod_revision, e if e.type == "DELETE" else
                                             ec.WatchEvent(e.type, e.kv, None)) for e in events]
                            self.progress = max(self.progress, events[-1].kv.mod_revision)
                            if len(self.events) > CACHE_EVENTS:
                                cut = self.events[len(self.events) - CACHE_EVENTS][0]  # whole revisions go
                                i = bisect.bisect_right(self.events, cut, key=lambda x: x[0])
                                del self.events[:i]
                                self.start = cut + 1
                            self.cond.notify_all()
                        nxt = self.progress + 1
            except ec.EtcdCompacted:
                nxt = 0
            except Exception as exc:  # noqa: BLE001 - a dropped stream fails in many ways inside http.client
                if self.stopped or self.s._closed.is_set():
                    return
                log.info("etcd change feed watch ended (%s); resuming from revision %d", exc, nxt)
                time.sleep(0.1)

    def stop(self) -> None:
        self.stopped = True
        w = self.watch
        if w is not None:
            with contextlib.suppress(OSError):
                sock = w._conn.sock
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            w.close()


class _Tx(WriteSemantics, Store):
    """The Store API over buffered writes: reads see them, `commit` writes them in one Txn. Read-only
    views (`revision` pinned or not) serve the store's plain reads and snapshots."""

    def __init__(self, store: EtcdStore, *, locked: bool, lock_rev: int = 0, revision: int = 0,
                 read_only: bool = False):
        self.s = store
        self.clock = store.clock
        self.locked, self.lock_rev = locked, lock_rev
        self.revision = revision
        self.read_only = read_only
        self.seen: dict[str, int] = {}  # key -> mod_revision when first read (0: absent)
        self.cache: dict[str, ec.KV | None] = {}  # key -> what it held when first read
        self.writes: dict[str, tuple[str, str | None, dict[str, Any]]] = {}  # key -> (type, body, object)
        self.events: list[str] = []
        self.seq: tuple[int, int] | None = None  # (counter value, its mod_revision) when first read
        self._object_cache = store.object_cache()  # the store's parse cache (cleaned if a transaction fails)
        self.written: set[tuple[str, str, str]] = set()  # identities written (kind, namespace, name)

    # -- reads ---------------------------------------------------------------------------------------
    def _provisional_rv(self) -> str:
        # Inside a locked block nobody else writes: the commit will be the revision after the lock's.
        return str(self.lock_rev + 1) if self.locked else "0"

    def get(self, kind, namespace, name):
        ns = scoped_namespace(kind, namespace)
        key = self.s.key(kind, ns, name)
        if key in self.writes:
            typ, _, obj = self.writes[key]
            return None if typ == DELETED else copy.deepcopy(obj)
        if key not in self.cache:
            _, kvs, _ = self.s.etcd.range(key, revision=self.revision)
            self._remember(key, kvs[0] if kvs else None)
        kv = self.cache[key]
        return _decode(kv) if kv is not None else None

    def _remember(self, key: str, kv: ec.KV | None) -> None:
        self.cache[key] = kv
        self.seen.setdefault(key, kv.mod_revision if kv else 0)

    def prefetch(self, keys: list[str]) -> None:
        """Read many keys in one round trip each TXN_READS (a Txn of Range requests), for `apply`."""
        todo = [k for k in dict.fromkeys(keys) if k not in self.cache and k not in self.writes]
        for i in range(0, len(todo), TXN_READS):
            chunk = todo[i:i + TXN_READS]
            _, _, responses = self.s.etcd.txn([], [ec.get(k) for k in chunk])
            for key, r in zip(chunk, responses, strict=True):
                kvs = (r.get("response_range") or {}).get("kvs") or []
                self._remember(key, ec.KV.of(kvs[0]) if kvs else None)

    def apply(self, objects):
        objects = list(objects)
        keys = []
        for raw in objects:
            with contextlib.suppress(Exception):  # a bad object is refused by apply itself, in order
                kind, ns, name = identity(as_dict(raw))
                keys.append(self.s.key(kind, ns, name))
        self.prefetch(keys)
        return super().apply(objects)

    def list(self, kind, namespace=None, selector=None):
        prefix = self.s.list_prefix(kind, namespace)
        _, kvs, _ = self.s.etcd.range(prefix, ec.prefix_end(prefix), revision=self.revision)
        objs = {kv.key: _decode(kv) for kv in kvs}
        for key, (typ, _, obj) in self.writes.items():
            if key.startswith(prefix):
                if typ == DELETED:
                    objs.pop(key, None)
                else:
                    objs[key] = copy.deepcopy(obj)
        out = sorted(objs.values(), key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return [o for o in out if matches(o, selector)] if selector is not None else out

    def kinds_in(self, namespace):
        _, kvs, _ = self.s.etcd.range(self.s.registry, ec.prefix_end(self.s.registry), keys_only=True,
                                      revision=self.revision)
        live = {kv.key for kv in kvs}
        for key, (typ, _, _) in self.writes.items():
            (live.discard if typ == DELETED else live.add)(key)
        kinds = set()
        for key in live:
            kind, ns, _ = self.s.parse_key(key)
            if ns == namespace:
                kinds.add(kind)
        return kinds

    def current_rv(self):
        if self.writes and self.locked:
            return int(self._provisional_rv())
        kv = self.s._meta(self.revision).get(self.s.rv_key)
        return kv.mod_revision if kv else 0

    def compacted_rv(self):
        kv = self.s._meta(self.revision).get(self.s.compacted_key)
        return int(kv.value) if kv else 0

    def changes_since(self, rv, limit=None):
        return self.s.changes_since(rv, limit)

    def kinds_changed_since(self, rv):
        return self.s.kinds_changed_since(rv)

    def changes_of(self, kinds, rv):
        """What is committed, then this block's own writes (their final state, at the provisional rv)."""
        out = self.s.changes_of(kinds, rv)
        wanted = set(kinds)
        for key, (typ, _, obj) in self.writes.items():
            kind, ns, name = self.s.parse_key(key)
            if kind in wanted:
                if typ != DELETED and not self.seen.get(key):
                    typ = ADDED
                out.append(Change(int(obj["metadata"]["resourceVersion"]), typ, kind, ns, name, copy.deepcopy(obj)))
        return out

    def compact(self, rv):
        return self.s.compact(rv)

    def events_since(self, seq=0, limit=None):
        return self.s.events_since(seq, limit)

    def wait_for_change(self, rv, timeout):
        raise StoreError("wait_for_change inside a transaction would wait for ever")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        yield self  # nested: part of the enclosing transaction

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
        yield self

    # -- writes --------------------------------------------------------------------------------------
    def _write(self, typ, kind, ns, name, obj):
        if self.read_only:
            raise StoreError("this view of the store is read-only")
        size_checked_body(kind, ns, name, obj, typ)
        key = self.s.key(kind, ns, name)
        if key not in self.seen:  # written blind: it must still be as it is now when we commit
            self.get(kind, ns, name)
        obj["metadata"]["resourceVersion"] = self._provisional_rv()
        self.writes[key] = (typ, None if typ == DELETED else _encode(obj), obj)
        # Every write of a transaction carries the same resourceVersion (the one revision its Txn commits
        # at), so an earlier version of this object decoded in the same transaction (a pod created, then
        # bound, in one controller pass) would be the parse cache's answer for the committed one too.
        ident = (kind, ns or "", name)
        self.written.add(ident)
        self._object_cache.forget(ident)
        return obj

    def append_events(self, events):
        if self.read_only:
            raise StoreError("this view of the store is read-only")
        if self.seq is None:
            _, kvs, _ = self.s.etcd.range(self.s.seq_key)
            self.seq = (int(kvs[0].value), kvs[0].mod_revision) if kvs else (0, 0)
        for e in events:
            self.events.append(json.dumps(dict(e)))
        return self.seq[0] + len(self.events)

    def commit(self) -> tuple[bool, ec.KV | None]:
        """Write everything in one Txn: (committed, the store lock when a failure found it held)."""
        s = self.s
        compares: list[dict[str, Any]] = []
        ops: list[dict[str, Any]] = []
        for key, (typ, body, _) in self.writes.items():
            existed = self.seen.get(key, 0)
            compares.append(ec.mod_is(key, existed))
            if typ == DELETED:
                if existed:
                    ops.append(ec.delete(key))
            else:
                ops.append(ec.put(key, body or ""))
        if not self.locked:  # everything read counts (serializable), not just what is written
            compares += [ec.mod_is(k, r) for k, r in self.seen.items() if k not in self.writes]
        if ops:
            ops.append(ec.put(s.rv_key, ""))
        if self.events:
            assert self.seq is not None
            base, seq_rev = self.seq
            compares.append(ec.mod_is(s.seq_key, seq_rev))
            ops += [ec.put(f"{s.events_prefix}{base + i + 1:020d}", body) for i, body in enumerate(self.events)]
            ops.append(ec.put(s.seq_key, str(base + len(self.events))))
        if self.locked:
            compares.append(ec.created_at(s.lock_key, self.lock_rev))
            ops.append(ec.delete(s.lock_key))
        elif not ops:
            return True, None
        else:
            compares.append(ec.absent(s.lock_key))
        ok, rev, responses = s.etcd.txn(compares, ops, [ec.get(s.lock_key)])
        if not ok:
            return False, _lock_kv(responses)
        for _typ, _, obj in self.writes.values():
            obj["metadata"]["resourceVersion"] = str(rev)
        for ident in self.written:  # what was decoded of them inside the transaction may not be what committed
            self._object_cache.forget(ident)
        return True, None


def _lock_kv(responses: list[dict]) -> ec.KV | None:
    """The store lock as a failed Txn's `get` of it read it; None when nobody holds it."""
    kvs = ((responses[0] if responses else {}).get("response_range") or {}).get("kvs") or []
    return ec.KV.of(kvs[0]) if kvs else None


__all__ = ["EtcdStore", "resource_path"]
