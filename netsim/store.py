"""The cluster's source of truth, in etcd's role: objects with resourceVersions and a change log.

Objects are plain Kubernetes manifest dicts (what `to_dict()` of the model gives, plus `status`). The store
stamps the metadata the API server owns: `uid` (uuid4), `creationTimestamp` (RFC 3339, UTC),
`resourceVersion` (a string, as the API shows it) and `generation` (bumped when anything outside
`metadata` and `status` changes, as the API server does for spec changes).

Every stored object is at most 1.5 MiB as JSON, etcd's default value limit (InvalidObject otherwise).

resourceVersions are global and monotonic, as etcd's revision: every write appends one row to the change
log and the row's number is the object's new resourceVersion. Watchers ask for `changes_since(rv)`. The log
is compacted as etcd's is (`compact(rv)`, run by `Compactor` every 5 minutes in the daemon); a watch from a
compacted resourceVersion raises `Compacted` (the API's 410 "too old resource version") and must relist.

`SQLiteStore(path)` keeps objects in SQLite in WAL mode (readers never block the writer) so that several
processes (the daemon, `netsim apply`, node agents) can share `/run/netsim/<cluster>/store.db`. Every write
runs in `BEGIN IMMEDIATE` (the write lock is taken up front, so two writers never deadlock upgrading a read
lock) with a busy timeout, and `transaction()` hands out the same API inside one transaction, which is how a
reconcile pass or `apply` of many objects is all-or-nothing. `MemoryStore()` is the same code on an in-memory
database, for unit tests.

`wait_for_change(rv, timeout)` polls `MAX(rv)` of the change table (a single index lookup) every few
milliseconds, backing off to 50 ms. Polling was chosen over inotify/file mtimes because WAL writes do not
reliably touch the main database file and it works unchanged across processes and for the in-memory store;
the cost is one cheap query per poll.

Events (the control-plane timeline) live in their own append-only table with their own sequence numbers so
that a busy timeline does not churn the object change log; see netsim.controlplane.events.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netsim.model.builtin_kinds import BUILTIN_KINDS, builtin
from netsim.model.errors import NetsimError
from netsim.model.limits import MAX_OBJECT_BYTES, object_too_large
from netsim.model.selectors import LabelSelector
from netsim.objcache import ObjectCache

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

# Built-in kinds that live outside namespaces (Namespace, Node, ClusterRole, ...).
CLUSTER_SCOPED = frozenset(b.kind for b in BUILTIN_KINDS if not b.namespaced)


def scoped_namespace(kind: str, namespace: str | None) -> str | None:
    """The namespace an object of `kind` is stored under: None for cluster-scoped built-in kinds, "default"
    when a namespaced built-in kind names none (as the API server defaults it), and for kinds a
    CustomResourceDefinition defines the namespace as given (the caller knows the CRD's scope)."""
    if kind in CLUSTER_SCOPED:
        return None
    if builtin(kind) is None:
        return namespace
    return namespace or "default"


class StoreError(NetsimError):
    """A store operation that cannot be done as asked."""


class NotFound(StoreError):
    def __init__(self, kind: str, namespace: str | None, name: str):
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(f'{kind} "{_key(namespace, name)}" not found')


class AlreadyExists(StoreError):
    def __init__(self, kind: str, namespace: str | None, name: str):
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(f'{kind} "{_key(namespace, name)}" already exists')


class Conflict(StoreError):
    """A compare-and-swap lost: the object changed since the caller read it (the API's 409)."""

    def __init__(self, kind: str, namespace: str | None, name: str, expected: str, actual: str):
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(f'Operation cannot be fulfilled on {kind} "{_key(namespace, name)}": the object has '
                         f"been modified (resourceVersion {actual}, expected {expected}); please apply your "
                         "changes to the latest version and try again")


class InvalidObject(StoreError):
    exit_code = 2


class StoreLocked(StoreError):
    """The SQLite store's one write lock stayed taken for the whole busy timeout. Another process holds it
    inside a write transaction: usually one that is stopped (SIGSTOP, a debugger) or stuck. The message
    names the processes that have the file open, and which of them are stopped, so the user can find it."""

    def __init__(self, path: str, waited_s: float, holders: Sequence[str]):
        self.path, self.waited_s, self.holders = path, waited_s, tuple(holders)
        who = "; ".join(holders) if holders else "no other process has it open now"
        super().__init__(f"the store {path} stayed locked for {waited_s:g} s: another process holds its write "
                         f"lock (processes with it open: {who})")


def _store_holders(path: str) -> list[str]:
    """The other processes that have the store file (or its WAL) open, as "pid N (comm, state)"; read from
    /proc only on the error path."""
    names = {os.path.realpath(path), os.path.realpath(path) + "-wal", os.path.realpath(path) + "-shm"}
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if not any(os.readlink(f"/proc/{entry}/fd/{fd}") in names for fd in fds):
                continue
            with open(f"/proc/{entry}/stat") as f:
                comm, rest = f.read().split(" (", 1)[1].rsplit(") ", 1)
        except OSError:
            continue
        state = {"T": "stopped", "t": "stopped by a tracer", "D": "in uninterruptible sleep",
                 "Z": "a zombie"}.get(rest.split()[0], "running")
        out.append(f"pid {entry} ({comm}, {state})")
    return out


class Compacted(StoreError):
    """A watch from a resourceVersion whose history was compacted away: the API's 410 Gone. The watcher
    must relist (read the objects afresh) and watch from the current resourceVersion."""

    def __init__(self, rv: int, compacted: int):
        self.rv, self.compacted = rv, compacted
        super().__init__(f"too old resource version: {rv} ({compacted}): the change log before {compacted} was "
                         "compacted; list again and watch from the current resourceVersion")


@dataclass(frozen=True)
class Change:
    """One entry of the change log: what happened to which object at which resourceVersion."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    kind: str
    namespace: str | None
    name: str
    object: dict[str, Any]  # the object after the change (before it, for DELETED)


_set = object.__setattr__


class _TextChange(Change):
    """A change-log entry that keeps its JSON text and decodes `object` each time it is read. A reader of
    the log (a controller's work queue, the garbage collector) looks at every change since its last pass,
    most of them for their kind and name only or once each: holding them all decoded at once made the
    daemon's heap spike by several times the pods' size during a big rollout (issue #18). Equal to a
    Change with the same fields; `object` is a fresh dict on every read (keep it if you need it twice)."""

    def __init__(self, rv: int, type: str, kind: str, namespace: str | None, name: str, body: str):
        for k, v in (("rv", rv), ("type", type), ("kind", kind), ("namespace", namespace), ("name", name),
                     ("body", body)):
            _set(self, k, v)

    @property
    def object(self) -> dict[str, Any]:  # type: ignore[override]
        return json.loads(self.body)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return (self.rv, self.type, self.kind, self.namespace, self.name, self.object) == \
            (other.rv, other.type, other.kind, other.namespace, other.name, other.object)

    __hash__ = None  # type: ignore[assignment]


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def rfc3339(t: float) -> str:
    """Seconds since the epoch as the API writes times: `2024-01-02T03:04:05Z`."""
    return dt.datetime.fromtimestamp(int(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str | None) -> float | None:
    """An RFC 3339 time (as `rfc3339` writes, fractions and offsets accepted) to seconds since the epoch."""
    if not s:
        return None
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def identity(obj: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """(kind, namespace, name) of a manifest dict, defaulting the namespace as the API server does."""
    if not isinstance(obj, Mapping):
        raise InvalidObject(f"an object must be a mapping, got {type(obj).__name__}")
    kind = obj.get("kind")
    md = obj.get("metadata")
    name = md.get("name") if isinstance(md, Mapping) else None
    if not isinstance(kind, str) or not kind:
        raise InvalidObject("object has no kind")
    if not isinstance(name, str) or not name:
        raise InvalidObject(f"{kind} has no metadata.name")
    return kind, scoped_namespace(kind, md.get("namespace")), name


def as_dict(obj: Any) -> dict[str, Any]:
    """A typed model object or a manifest mapping, as a fresh dict."""
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        return obj.to_dict()
    if not isinstance(obj, Mapping):
        raise InvalidObject(f"an object must be a mapping or a model object, got {type(obj).__name__}")
    return copy_manifest(dict(obj))


_SCALARS = (str, int, float, bool, type(None))


def copy_manifest(v: Any) -> Any:
    """A deep copy of manifest data (dicts, lists, tuples, scalars), several times faster than
    copy.deepcopy, which was most of the cost of applying 20,000 objects; anything else goes to deepcopy."""
    if isinstance(v, dict):
        return {k: x if isinstance(x, _SCALARS) else copy_manifest(x) for k, x in v.items()}
    if isinstance(v, list):
        return [x if isinstance(x, _SCALARS) else copy_manifest(x) for x in v]
    if isinstance(v, tuple):
        return tuple(x if isinstance(x, _SCALARS) else copy_manifest(x) for x in v)
    if isinstance(v, _SCALARS):
        return v
    return copy.deepcopy(v)


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def loads_many(bodies: Sequence[str]) -> list[Any]:
    """Decode stored JSON bodies in one `json.loads` of a JSON array: the same objects as one call per
    body, but the decoder reuses one string object per distinct key within a call (its key memo), so the
    objects of a batch share their keys (`metadata`, `creationTimestamp`, `lastTransitionTime`, ...), a
    third of a decoded Pod's size, instead of each holding copies (issue #18: the daemon keeps every
    pod in its caches). Also one call instead of thousands."""
    if len(bodies) < 2:
        return [json.loads(b) for b in bodies]
    out: list[Any] = []
    for i in range(0, len(bodies), LOADS_CHUNK):  # the joined text of a chunk is the only extra copy
        out.extend(json.loads("[" + ",".join(bodies[i:i + LOADS_CHUNK]) + "]"))
    return out


LOADS_CHUNK = 2000


def matches(obj: Mapping[str, Any], selector: LabelSelector | Mapping[str, str] | None) -> bool:
    if selector is None:
        return True
    return labels_match((obj.get("metadata") or {}).get("labels") or {}, selector)


def labels_match(labels: Mapping[str, str], selector: LabelSelector | Mapping[str, str]) -> bool:
    if isinstance(selector, LabelSelector):
        return selector.matches(labels)
    return all(labels.get(k) == v for k, v in selector.items())


class Store(ABC):
    """What every backend offers. Objects in and out are manifest dicts; callers get copies."""

    # -- typed reads: the object model (netsim.objcache) -----------------------------------------------
    _object_cache: ObjectCache | None = None

    def object_cache(self) -> ObjectCache:
        """This store's parse cache (typed objects by identity and resourceVersion), made on first use."""
        cache = self._object_cache
        if cache is None:
            cache = self._object_cache = ObjectCache()
        return cache

    def decode(self, obj: Mapping[str, Any]) -> Any:
        """The typed object (netsim.model) of a manifest dict this store handed out, decoded once per
        resourceVersion. Raises NetsimError when the stored object does not parse."""
        return self.object_cache().decode(obj)

    def typed(self, kind: str, namespace: str | None, name: str) -> Any | None:
        """`get` as a typed object (None when absent)."""
        obj = self.get(kind, namespace, name)
        return None if obj is None else self.object_cache().decode(obj, kind)

    def typed_list(self, kind: str, namespace: str | None = None,
                   selector: LabelSelector | Mapping[str, str] | None = None) -> list[Any]:
        """`list` as typed objects, each decoded once per resourceVersion. An object that does not parse
        is left out (logged once per version): one bad object never stops the others."""
        cache = self.object_cache()
        out = []
        for x in self.list(kind, namespace, selector):
            try:
                out.append(cache.decode(x, kind))
            except NetsimError:
                continue
        return out

    @abstractmethod
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Objects of `kind` (in `namespace` if given) whose labels match `selector`, by namespace/name."""

    @abstractmethod
    def create(self, obj: Any) -> dict[str, Any]:
        """Store a new object (AlreadyExists if its name is taken); returns it as stored."""

    @abstractmethod
    def update(self, obj: Any, expected_rv: str | int | None = None) -> dict[str, Any]:
        """Replace an object. With `expected_rv` (or metadata.resourceVersion given) it is a compare-and-
        swap: Conflict if the stored version differs. The stored status is kept when `obj` has none."""

    @abstractmethod
    def update_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any],
                      expected_rv: str | int | None = None) -> dict[str, Any]:
        """Replace only `status` (the /status subresource): generation does not move."""

    @abstractmethod
    def delete(self, kind: str, namespace: str | None, name: str,
               expected_rv: str | int | None = None) -> dict[str, Any]:
        """Remove an object and return its last state (NotFound if absent)."""

    @abstractmethod
    def apply(self, objects: Iterable[Any]) -> list[dict[str, Any]]:
        """kubectl apply of a whole batch in one transaction: all objects are written or none is."""

    @abstractmethod
    def changes_since(self, rv: int, limit: int | None = None) -> list[Change]:
        """Change-log entries with resourceVersion greater than `rv`, oldest first."""

    def kinds_changed_since(self, rv: int) -> set[str]:
        """The kinds written after `rv` (cheap: no object bodies), so watchers can skip work that only
        other kinds' changes would need."""
        return {c.kind for c in self.changes_since(rv)}

    def changes_of(self, kinds: Collection[str], rv: int) -> list[Change]:
        """The change-log entries after `rv` of objects of `kinds` only, oldest first (a watch on a few
        resources, as an informer watches one: the bodies of other kinds' writes, such as every node
        heartbeat, are never decoded). Same contract as `changes_since` otherwise: raises Compacted when
        `rv` is older than the compacted history. Backends may override this with a cheaper query."""
        wanted = set(kinds)
        return [c for c in self.changes_since(rv) if c.kind in wanted]

    def latest_changes_of(self, kinds: Collection[str], rv: int) -> list[Change]:
        """`changes_of`, but only the newest entry of each object, oldest first: what a watcher that keeps
        only the current state of each object (an informer's store, a change tracker) needs; the bodies
        of the versions it would drop at once are never decoded (under load a pod is written several
        times between two polls, and a poll decoded and held all of them at once). Same contract as
        `changes_of` otherwise. Backends may override this with a cheaper query."""
        newest: dict[tuple[str, str | None, str], Change] = {}
        for c in self.changes_of(kinds, rv):
            newest.pop((c.kind, c.namespace, c.name), None)  # re-inserted last: the dict stays in rv order
            newest[(c.kind, c.namespace, c.name)] = c
        return list(newest.values())

    @abstractmethod
    def current_rv(self) -> int:
        """The newest resourceVersion (0 for an empty store)."""

    def kinds_in(self, namespace: str) -> set[str]:
        """The kinds of the objects stored in `namespace` (what deleting the namespace must delete)."""
        raise NotImplementedError

    def compact(self, rv: int) -> int:
        """Drop change-log entries before `rv`, as etcd's compaction; returns how many went."""
        with self.transaction() as tx:
            return tx.compact(rv)

    def compacted_rv(self) -> int:
        """The resourceVersion the change log was last compacted at (0: never)."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional: a backend with nothing to let go of needs none
        """Let go of connections (and, on etcd, the lease of the store lock)."""

    def snapshot(self) -> contextlib.AbstractContextManager[Store]:
        """A consistent read-only view: a LIST and the resourceVersion it reports belong together even
        while others write (SQLite: one read transaction; etcd: reads pinned at one revision)."""
        raise NotImplementedError

    @abstractmethod
    def wait_for_change(self, rv: int, timeout: float) -> bool:
        """Block until something newer than `rv` is written (True) or `timeout` seconds pass (False)."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Store]:
        """A view of this store whose writes commit together when the block ends (rolled back on error)."""

    # Events: an append-only timeline, separate from objects (see netsim.controlplane.events).
    @abstractmethod
    def append_events(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Append event records; returns the sequence number of the last one."""

    @abstractmethod
    def events_since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Event records with sequence number greater than `seq` (each carries its `seq`)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS changes (
    rv INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY, value INTEGER NOT NULL
);
"""


class WriteSemantics(ABC):
    """What a write means, whatever the backend: the metadata the API server owns (uid, creationTimestamp,
    generation), compare-and-swap on resourceVersion, status kept across updates, kubectl apply's merge.
    A backend gives `get` (seeing its own pending writes) and `_write` (record one change); SQLite's `_Ops`
    and etcd's transaction (netsim.etcd.store) share these rules so the two stores cannot drift apart."""

    clock: Callable[[], float]

    @abstractmethod
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _write(self, typ: str, kind: str, ns: str | None, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Record `obj` as the new state (`typ` ADDED/MODIFIED; DELETED: `obj` is the last state), stamping
        its resourceVersion; returns it."""

    def create(self, obj: Any) -> dict[str, Any]:
        obj = as_dict(obj)
        kind, ns, name = identity(obj)
        if self.get(kind, ns, name) is not None:
            raise AlreadyExists(kind, ns, name)
        return self._create(obj, kind, ns, name)

    def _create(self, obj: dict[str, Any], kind: str, ns: str | None, name: str) -> dict[str, Any]:
        """Store `obj` (a fresh dict the caller gave up) as new; the caller checked the name is free."""
        md = obj["metadata"]
        if ns is not None:
            md["namespace"] = ns
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = rfc3339(self.clock())
        md["generation"] = 1
        md.pop("resourceVersion", None)
        return self._write(ADDED, kind, ns, name, obj)

    def _check_rv(self, current: dict[str, Any], expected: str | int | None, kind: str, ns: str | None,
                  name: str) -> None:
        actual = current["metadata"]["resourceVersion"]
        if expected is not None and str(expected) != actual:
            raise Conflict(kind, ns, name, str(expected), actual)

    def update(self, obj: Any, expected_rv: str | int | None = None) -> dict[str, Any]:
        obj = as_dict(obj)
        kind, ns, name = identity(obj)
        current = self.get(kind, ns, name)
        if current is None:
            raise NotFound(kind, ns, name)
        if expected_rv is None:
            expected_rv = obj["metadata"].get("resourceVersion")
        self._check_rv(current, expected_rv, kind, ns, name)
        md, cur_md = obj["metadata"], current["metadata"]
        if ns is not None:
            md["namespace"] = ns
        for owned in ("uid", "creationTimestamp"):
            md[owned] = cur_md[owned]
        generation = cur_md.get("generation", 1)
        if _canon(_spec_part(obj)) != _canon(_spec_part(current)):
            generation += 1
        md["generation"] = generation
        if "status" not in obj and "status" in current:
            obj["status"] = current["status"]
        return self._write(MODIFIED, kind, ns, name, obj)

    def update_status(self, kind: str, namespace: str | None, name: str, status: dict[str, Any],
                      expected_rv: str | int | None = None) -> dict[str, Any]:
        ns = scoped_namespace(kind, namespace)
        current = self.get(kind, ns, name)
        if current is None:
            raise NotFound(kind, ns, name)
        self._check_rv(current, expected_rv, kind, ns, name)
        current["status"] = copy.deepcopy(status)
        return self._write(MODIFIED, kind, ns, name, current)

    def delete(self, kind: str, namespace: str | None, name: str,
               expected_rv: str | int | None = None) -> dict[str, Any]:
        ns = scoped_namespace(kind, namespace)
        current = self.get(kind, ns, name)
        if current is None:
            raise NotFound(kind, ns, name)
        self._check_rv(current, expected_rv, kind, ns, name)
        return self._write(DELETED, kind, ns, name, current)

    def apply(self, objects: Iterable[Any]) -> list[dict[str, Any]]:
        out = []
        for raw in objects:
            obj = as_dict(raw)
            kind, ns, name = identity(obj)
            current = self.get(kind, ns, name)
            if current is None:
                out.append(self._create(obj, kind, ns, name))
                continue
            # kubectl apply: the applied fields win; what the cluster added (status, annotations the
            # controllers set, ownerReferences, metadata the server owns) stays.
            merged = copy.deepcopy(current)
            for k, v in obj.items():
                if k not in ("metadata", "status"):
                    merged[k] = v
            for k in list(merged):
                if k not in obj and k not in ("metadata", "status", "apiVersion", "kind"):
                    del merged[k]
            md_new, md = obj.get("metadata") or {}, merged["metadata"]
            md["labels"] = dict(md_new.get("labels") or {})
            if not md["labels"]:
                del md["labels"]
            annotations = {**(md.get("annotations") or {}), **(md_new.get("annotations") or {})}
            if annotations:
                md["annotations"] = annotations
            if _canon(merged) == _canon(current):
                out.append(current)
                continue
            out.append(self.update(merged, expected_rv=current["metadata"]["resourceVersion"]))
        return out



def size_checked_body(kind: str, ns: str | None, name: str, obj: dict[str, Any], typ: str) -> None:
    """Refuse an object over etcd's value limit (InvalidObject), measured with a resourceVersion as wide as
    any real one so that the check is exact."""
    obj["metadata"]["resourceVersion"] = "0" * 20
    size = len(json.dumps(obj, sort_keys=True).encode())
    if typ != DELETED and size > MAX_OBJECT_BYTES:
        raise InvalidObject(f"{kind} {_key(ns, name)}: {object_too_large(size)}")


def typed_rows(kind: str, rows: Sequence[tuple[str, str, int, str]],
               selector: LabelSelector | Mapping[str, str] | None, cache: ObjectCache) -> list[Any]:
    """Typed objects of store rows: a row whose resourceVersion the cache holds is not even JSON-decoded;
    a row that does not parse is left out."""
    out = []
    misses: list[int] = []
    for i, (ns, name, rv, _) in enumerate(rows):
        try:
            typed = cache.lookup((kind, ns, name), rv)
        except NetsimError:
            typed = _SKIP
        if typed is None:
            misses.append(i)
        out.append(typed)
    if misses:  # decoded together (loads_many): their typed objects share the key strings they keep
        for i, obj in zip(misses, loads_many([rows[i][3] for i in misses]), strict=True):
            try:
                out[i] = cache.decode(obj, kind)
            except NetsimError:
                out[i] = _SKIP
    return [t for t in out if t is not _SKIP and (selector is None or labels_match(t.meta.labels, selector))]


_SKIP = object()  # typed_rows: a row that does not parse


def _changes(rows: Sequence[tuple[int, str, str, str, str, str]]) -> list[Change]:
    """Change-log rows as Changes, their bodies decoded together (loads_many)."""
    return [Change(r[0], r[1], r[2], r[3] or None, r[4], obj)
            for r, obj in zip(rows, loads_many([r[5] for r in rows]), strict=True)]


class _Ops(WriteSemantics):
    """The store's operations over one connection that is already inside a write transaction."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float]):
        self.conn = conn
        self.clock = clock
        self._last_rv: int | None = None  # the newest resourceVersion, once this transaction wrote
        self.first_rv: int | None = None  # the first resourceVersion this transaction wrote

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?",
                                (kind, namespace or "", name)).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            rows = self.conn.execute("SELECT body FROM objects WHERE kind=? ORDER BY namespace, name", (kind,))
        else:
            rows = self.conn.execute("SELECT body FROM objects WHERE kind=? AND namespace=? ORDER BY name",
                                     (kind, namespace))
        out = loads_many([r[0] for r in rows])
        return [o for o in out if matches(o, selector)] if selector is not None else out

    def versions(self, kind: str, namespace: str | None) -> list[tuple[str, str, int, str]]:
        """(namespace, name, resourceVersion, JSON body) of the objects of `kind`, by namespace/name."""
        if namespace is None:
            return self.conn.execute("SELECT namespace, name, rv, body FROM objects WHERE kind=? "
                                     "ORDER BY namespace, name", (kind,)).fetchall()
        return self.conn.execute("SELECT namespace, name, rv, body FROM objects WHERE kind=? AND namespace=? "
                                 "ORDER BY name", (kind, namespace)).fetchall()

    def typed_list(self, kind: str, namespace: str | None, selector: LabelSelector | Mapping[str, str] | None,
                   cache: ObjectCache) -> list[Any]:
        return typed_rows(kind, self.versions(kind, namespace), selector, cache)

    def current_rv(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(rv), 0) FROM changes").fetchone()[0]

    def kinds_in(self, namespace: str) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT kind FROM objects WHERE namespace=?", (namespace,))}

    def compacted_rv(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key='compacted'").fetchone()
        return row[0] if row else 0

    def _check_compacted(self, rv: int) -> None:
        compacted = self.compacted_rv()
        if int(rv) + 1 < compacted:
            raise Compacted(int(rv), compacted)

    def kinds_changed_since(self, rv: int) -> set[str]:
        self._check_compacted(rv)
        return {r[0] for r in self.conn.execute("SELECT DISTINCT kind FROM changes WHERE rv > ?", (int(rv),))}

    def compact(self, rv: int) -> int:
        """Drop the change log before `rv` (never its newest entry, which carries the current
        resourceVersion); watches from before it then get Compacted. Returns the entries dropped."""
        rv = min(int(rv), self.current_rv())
        if rv <= self.compacted_rv():
            return 0
        n = self.conn.execute("DELETE FROM changes WHERE rv < ?", (rv,)).rowcount
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?)", (rv,))
        return n

    def changes_of(self, kinds: Collection[str], rv: int) -> list[Change]:
        self._check_compacted(rv)
        kinds = sorted(set(kinds))
        marks = ",".join("?" * len(kinds))
        rows = self.conn.execute(f"SELECT rv, type, kind, namespace, name, body FROM changes WHERE rv > ? "
                                 f"AND kind IN ({marks}) ORDER BY rv", (int(rv), *kinds)).fetchall()
        return [_TextChange(r[0], r[1], r[2], r[3] or None, r[4], r[5]) for r in rows]

    def latest_changes_of(self, kinds: Collection[str], rv: int) -> list[Change]:
        self._check_compacted(rv)
        kinds = sorted(set(kinds))
        marks = ",".join("?" * len(kinds))
        rows = self.conn.execute(f"SELECT rv, type, kind, namespace, name, body FROM changes WHERE rv IN "
                                 f"(SELECT MAX(rv) FROM changes WHERE rv > ? AND kind IN ({marks}) "
                                 f"GROUP BY kind, namespace, name) ORDER BY rv", (int(rv), *kinds)).fetchall()
        return _changes(rows)

    def changes_since(self, rv: int, limit: int | None = None) -> list[Change]:
        self._check_compacted(rv)
        rows = self.conn.execute("SELECT rv, type, kind, namespace, name, body FROM changes WHERE rv > ? "
                                 "ORDER BY rv LIMIT ?", (int(rv), -1 if limit is None else limit)).fetchall()
        return [_TextChange(r[0], r[1], r[2], r[3] or None, r[4], r[5]) for r in rows]

    # -- writes --------------------------------------------------------------------------------------
    def _next_rv(self) -> int:
        """The resourceVersion the next write gets. Writes run under the write lock (BEGIN IMMEDIATE), so
        nobody else appends meanwhile; AUTOINCREMENT's counter (sqlite_sequence) never goes back, even
        after compaction, and an explicit rowid above it moves it on."""
        if self._last_rv is None:
            row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name='changes'").fetchone()
            self._last_rv = max(row[0] if row else 0, self.current_rv())
        return self._last_rv + 1

    def _write(self, typ: str, kind: str, ns: str | None, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        # One encoding per write: the resourceVersion is known before the row is written, and the size
        # check counts it as wide as any real one (20 digits), as before.
        rv = self._next_rv()
        if self.first_rv is None:
            self.first_rv = rv
        obj["metadata"]["resourceVersion"] = str(rv)
        body = json.dumps(obj, sort_keys=True)
        if typ != DELETED:
            size = len(body.encode()) + 20 - len(str(rv))
            if size > MAX_OBJECT_BYTES:
                obj["metadata"].pop("resourceVersion", None)
                raise InvalidObject(f"{kind} {_key(ns, name)}: {object_too_large(size)}")
        self.conn.execute("INSERT INTO changes (rv, type, kind, namespace, name, body) VALUES (?,?,?,?,?,?)",
                          (rv, typ, kind, ns or "", name, body))
        self._last_rv = rv
        if typ == DELETED:
            self.conn.execute("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, ns or "", name))
        else:
            self.conn.execute("INSERT OR REPLACE INTO objects (kind, namespace, name, rv, body) VALUES (?,?,?,?,?)",
                              (kind, ns or "", name, rv, body))
        return obj

    def append_events(self, events: Iterable[Mapping[str, Any]]) -> int:
        last = 0
        for e in events:
            last = self.conn.execute("INSERT INTO events (body) VALUES (?)", (json.dumps(dict(e)),)).lastrowid
        return last

    def events_since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                 (int(seq), -1 if limit is None else limit))
        return [{**json.loads(b), "seq": s} for s, b in rows]


class _TxStore(Store):
    """The Store API inside one open transaction (from `SQLiteStore.transaction()`)."""

    def __init__(self, ops: _Ops, cache: ObjectCache | None = None):
        self._ops = ops
        self._object_cache = cache  # the store's: shared, and cleaned by the store if the transaction rolls back

    def get(self, kind, namespace, name):
        return self._ops.get(kind, scoped_namespace(kind, namespace), name)

    def list(self, kind, namespace=None, selector=None):
        return self._ops.list(kind, namespace, selector)

    def typed_list(self, kind, namespace=None, selector=None):
        return self._ops.typed_list(kind, namespace, selector, self.object_cache())

    def create(self, obj):
        return self._ops.create(obj)

    def update(self, obj, expected_rv=None):
        return self._ops.update(obj, expected_rv)

    def update_status(self, kind, namespace, name, status, expected_rv=None):
        return self._ops.update_status(kind, namespace, name, status, expected_rv)

    def delete(self, kind, namespace, name, expected_rv=None):
        return self._ops.delete(kind, namespace, name, expected_rv)

    def apply(self, objects):
        return self._ops.apply(objects)

    def changes_since(self, rv, limit=None):
        return self._ops.changes_since(rv, limit)

    def changes_of(self, kinds, rv):
        return self._ops.changes_of(kinds, rv)

    def latest_changes_of(self, kinds, rv):
        return self._ops.latest_changes_of(kinds, rv)

    def current_rv(self):
        return self._ops.current_rv()

    def kinds_in(self, namespace):
        return self._ops.kinds_in(namespace)

    def compact(self, rv):
        return self._ops.compact(rv)

    def compacted_rv(self):
        return self._ops.compacted_rv()

    def wait_for_change(self, rv, timeout):
        raise StoreError("wait_for_change inside a transaction would wait for ever")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        yield self  # nested: part of the enclosing transaction

    def append_events(self, events):
        return self._ops.append_events(events)

    def events_since(self, seq=0, limit=None):
        return self._ops.events_since(seq, limit)


class SQLiteStore(Store):
    """The embedded store: one SQLite file in WAL mode, shared by any number of processes."""

    BUSY_TIMEOUT_MS = 10_000

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time):
        self.path = str(path)
        self.clock = clock
        self._lock = threading.RLock()  # one connection per store object; threads take turns on it
        if self.path != ":memory:" and not os.path.exists(self.path):
            # Created 0600 whoever opens it first; SQLite gives the -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        self._conn = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout={self.BUSY_TIMEOUT_MS}")
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # durable enough on tmpfs; WAL stays consistent
            # The WAL file shrinks back to this after a checkpoint instead of keeping its largest size.
            self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        with self._lock:
            self._begin_write()
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._in_tx = False

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _begin_write(self) -> None:
        """Take the write lock (BEGIN IMMEDIATE), waiting up to the busy timeout; StoreLocked after it."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise StoreLocked(self.path, self.BUSY_TIMEOUT_MS / 1000, _store_holders(self.path)) from exc

    def journal_mode(self) -> str:
        with self._lock:
            return self._conn.execute("PRAGMA journal_mode").fetchone()[0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        with self._lock:
            if self._in_tx:
                raise StoreError("a transaction is already open on this store object")
            self._begin_write()
            self._in_tx = True
            ops = _Ops(self._conn, self.clock)
            try:
                yield _TxStore(ops, self.object_cache())
            except BaseException:
                self._conn.execute("ROLLBACK")
                if ops.first_rv is not None:  # its resourceVersions will be handed out again
                    self.object_cache().forget_from(ops.first_rv)
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._in_tx = False

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Store]:
        """A consistent read view: one SQLite read transaction (WAL snapshot isolation), so a LIST and the
        resourceVersion it reports belong together even while other processes write. Read only."""
        with self._lock:
            if self._in_tx:
                raise StoreError("a transaction is already open on this store object")
            self._conn.execute("BEGIN")
            self._in_tx = True
            try:
                yield _TxStore(_Ops(self._conn, self.clock), self.object_cache())
            finally:
                self._in_tx = False
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[_Ops]:
        with self._lock:
            yield _Ops(self._conn, self.clock)

    def get(self, kind, namespace, name):
        with self._read() as ops:
            return ops.get(kind, scoped_namespace(kind, namespace), name)

    def list(self, kind, namespace=None, selector=None):
        with self._read() as ops:
            return ops.list(kind, namespace, selector)

    def typed_list(self, kind, namespace=None, selector=None):
        with self._read() as ops:
            rows = ops.versions(kind, namespace)
        return typed_rows(kind, rows, selector, self.object_cache())  # decoded outside the store's lock

    def current_rv(self):
        with self._read() as ops:
            return ops.current_rv()

    def kinds_in(self, namespace):
        with self._read() as ops:
            return ops.kinds_in(namespace)

    def changes_since(self, rv, limit=None):
        with self._read() as ops:
            return ops.changes_since(rv, limit)

    def kinds_changed_since(self, rv):
        with self._read() as ops:
            return ops.kinds_changed_since(rv)

    def changes_of(self, kinds, rv):
        with self._read() as ops:
            return ops.changes_of(kinds, rv)

    def latest_changes_of(self, kinds, rv):
        with self._read() as ops:
            return ops.latest_changes_of(kinds, rv)

    def compacted_rv(self):
        with self._read() as ops:
            return ops.compacted_rv()

    def events_since(self, seq=0, limit=None):
        with self._read() as ops:
            return ops.events_since(seq, limit)

    def create(self, obj):
        with self.transaction() as tx:
            return tx.create(obj)

    def update(self, obj, expected_rv=None):
        with self.transaction() as tx:
            return tx.update(obj, expected_rv)

    def update_status(self, kind, namespace, name, status, expected_rv=None):
        with self.transaction() as tx:
            return tx.update_status(kind, namespace, name, status, expected_rv)

    def delete(self, kind, namespace, name, expected_rv=None):
        with self.transaction() as tx:
            return tx.delete(kind, namespace, name, expected_rv)

    def apply(self, objects):
        objects = list(objects)  # materialise first so a bad generator cannot leave half a batch
        with self.transaction() as tx:
            return tx.apply(objects)

    def append_events(self, events):
        with self.transaction() as tx:
            return tx.append_events(events)

    def wait_for_change(self, rv: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            if self.current_rv() > rv:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)


WAL_SIZE_LIMIT = 4 * 1024 * 1024
COMPACTION_INTERVAL = 300.0  # kube-apiserver --etcd-compaction-interval default (5 min)


class Compactor:
    """Compacts a store's change log as kube-apiserver's compactor compacts etcd (k8s.io/apiserver
    pkg/storage/etcd3/compact.go): every `interval` it compacts to the revision it recorded one interval
    earlier, so watchers always have at least one interval of history and the log stops growing (a
    3-node cluster's heartbeats alone wrote ~8.6 MB an hour, into RAM-backed /run). Call `tick` often."""

    def __init__(self, store: Store, interval: float = COMPACTION_INTERVAL):
        self.store = store
        self.interval = interval
        self._last: float | None = None
        self._recorded: int | None = None

    def tick(self, now: float) -> int:
        """Compact if an interval has passed since the last tick that did; returns entries dropped."""
        if self._last is not None and now - self._last < self.interval:
            return 0
        self._last = now
        dropped = self.store.compact(self._recorded) if self._recorded else 0
        self._recorded = self.store.current_rv()
        return dropped


class MemoryStore(SQLiteStore):
    """The same store on a private in-memory database: for unit tests and one-process tools."""

    def __init__(self, *, clock: Callable[[], float] = time.time):
        super().__init__(":memory:", clock=clock)
