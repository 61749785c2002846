"""What controllers see (a Snapshot of the store) and what they return (Actions), and applying them.

Controllers are pure: `reconcile_x(snap, ctx) -> list[Action]`. A driver (netsim.controlplane.loop) takes a
snapshot, runs a controller, and applies its actions to the store inside a transaction. Updates carry the
resourceVersion the controller read, so an action computed from a stale view fails with Conflict and is
skipped; the next pass recomputes it from fresh state, as a real controller requeues.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from netsim.controlplane import objects as o
from netsim.controlplane.events import Event
from netsim.model.errors import NetsimError
from netsim.objcache import decode_stored
from netsim.store import (
    DELETED,
    AlreadyExists,
    Compacted,
    Conflict,
    InvalidObject,
    NotFound,
    Store,
    rfc3339,
    scoped_namespace,
)

WATCHED_KINDS = ("Node", "Namespace", "Pod", "Service", "EndpointSlice", "Deployment", "ReplicaSet",
                 "DaemonSet", "StatefulSet", "Job", "CronJob", "HorizontalPodAutoscaler", "Lease", "KnativeService",
                 "PodDisruptionBudget", "ReplicationController")


@dataclass
class Config:
    """Timings of the control plane; Kubernetes' defaults, shortened where tests need it."""

    node_monitor_grace_seconds: float = 40.0  # kube-controller-manager --node-monitor-grace-period
    pod_eviction_seconds: float = 300.0  # DefaultTolerationSeconds for not-ready/unreachable NoExecute
    autoscaling: Any = None  # netsim.controlplane.hpa.AutoscalingConfig (its defaults when None)
    endpointslice_batch_period: float = 0.0  # kube-controller-manager --endpointslice-updates-batch-period

    def __post_init__(self) -> None:
        if self.autoscaling is None:
            from netsim.controlplane.hpa import AutoscalingConfig
            self.autoscaling = AutoscalingConfig()


@dataclass
class Context:
    now: float
    rng: random.Random = field(default_factory=random.Random)
    config: Config = field(default_factory=Config)
    metrics: Any = None  # netsim.model.metrics.MetricsView, when the daemon samples usage
    memory: dict[str, Any] = field(default_factory=dict)  # controllers' state kept between passes
    # The store's change log as this controller runs (the pass's transaction: earlier controllers' writes
    # included), for controllers that work only on what changed since their last pass, as upstream ones
    # queue only the keys their informers' events name. None: reconcile everything.
    feed: Store | None = None


@dataclass
class Action:
    """One write a controller wants. `verb`: create | update | status | delete (hard) | terminate
    (graceful pod deletion: deletionTimestamp set, the kubelet finishes it)."""

    verb: str
    obj: dict[str, Any]
    event: Event | None = None

    def describe(self) -> str:
        return f"{self.verb} {o.ref(self.obj)}"


class Snapshot:
    """All watched objects at one moment, indexed the ways controllers ask."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]],
                 decode: Callable[[dict[str, Any]], Any] | None = None, indexes: CacheIndexes | None = None):
        self.objects = objects
        # The informer cache's own indexes, kept up to date from the change log between passes (None: a
        # snapshot listed afresh, whose indexes are built on first use by walking the objects).
        self._indexes = indexes
        # The typed object of a snapshot dict: the store's parse cache (Store.decode) when the snapshot
        # comes from a store, so a version is parsed once whichever controller or agent reads it.
        self._decode = decode or decode_stored
        # Built on first use (most passes ask only a few of these questions): objects per (kind, namespace)
        # and per (kind, namespace, label key) -> label value, so that a controller looking up one Service's
        # slices or pods does not scan every object of the kind (that made 10k Services quadratic).
        self._by_ns: dict[str, dict[str | None, list[dict[str, Any]]]] = {}
        self._by_label: dict[tuple[str, str | None, str], dict[str, list[dict[str, Any]]]] = {}
        self._by_key: dict[str, dict[tuple[str | None, str], dict[str, Any]]] = {}  # per kind, on first use
        self._by_owner_index: dict[str, list[dict[str, Any]]] | None = None
        # kind -> owner uid -> objects: an owner's ReplicaSets are found without walking every Service and
        # EndpointSlice (at 10,000 Services that walk was most of an idle daemon's CPU)
        self._owned_of_kind: dict[str, dict[str, list[dict[str, Any]]]] = {}
        # Typed views, built on first use per pass: the decodes themselves are the store's parse cache's
        # (once per resourceVersion), these only save re-asking it for every owner a controller reconciles.
        self._typed: dict[tuple[str, str | None], list[Any]] = {}
        self._typed_owner: dict[str, dict[str | None, list[Any]]] = {}

    def _keyed(self, kind: str) -> dict[tuple[str | None, str], dict[str, Any]]:
        index = self._by_key.get(kind)
        if index is None:  # built on first use, per kind: a quiet pass asks for a few kinds only
            index = self._by_key[kind] = {(o.namespace(obj), o.name(obj)): obj for obj in self.objects.get(kind, [])}
        return index

    @property
    def _by_owner(self) -> dict[str, list[dict[str, Any]]]:
        if self._by_owner_index is None:
            self._by_owner_index = defaultdict(list)
            for items in self.objects.values():
                for obj in items:
                    ref = o.controller_ref(obj)
                    if ref is not None:
                        self._by_owner_index[ref.get("uid")].append(obj)
        return self._by_owner_index

    @classmethod
    def load(cls, store: Store, kinds: Iterable[str] = WATCHED_KINDS) -> Snapshot:
        return cls({k: store.list(k) for k in kinds}, store.decode)

    def typed(self, kind: str, namespace: str | None = None) -> list[Any]:
        """`of(kind, namespace)` as typed objects (netsim.model); one that does not parse is left out.
        The list is shared for the pass: callers must not mutate it."""
        out = self._typed.get((kind, namespace))
        if out is None:
            out = self._typed[(kind, namespace)] = []
            for x in self.of(kind, namespace):
                try:
                    out.append(self._decode(x))
                except NetsimError:
                    continue
        return out

    def decode(self, obj: dict[str, Any]) -> Any:
        """The typed object of one snapshot dict (the store's parse cache: once per resourceVersion).
        Raises NetsimError when it does not parse."""
        return self._decode(obj)

    def typed_get(self, kind: str, namespace: str | None, name: str) -> tuple[Any, dict[str, Any]] | None:
        """One object typed (the store's parse cache) with its stored dict, which its writes start from; None
        when there is none or it does not parse (logged once per version by the cache)."""
        raw = self.get(kind, namespace, name)
        if raw is None:
            return None
        try:
            return self._decode(raw), raw
        except NetsimError:
            return None

    def typed_with_raw(self, kind: str, namespace: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
        """Each object of `kind` typed with its stored dict (for the writes), in the store's order; one that
        does not parse is left out. Built on `typed`, so a pass asks the parse cache once per object."""
        out = []
        for typed in self.typed(kind, namespace):
            raw = self.get(kind, typed.meta.namespace, typed.meta.name)
            if raw is not None:
                out.append((typed, raw))
        return out

    def typed_owned(self, owner_uid: str | None, kind: str) -> list[Any]:
        """Typed objects of `kind` whose controller ownerReference names `owner_uid` (the informer
        indexer a workload controller looks its pods up by)."""
        if self._indexes is not None and kind in self._indexes.owned:
            out = []
            for x in self._indexes.owned_of(kind, owner_uid):
                try:
                    out.append(self._decode(x))
                except NetsimError:
                    continue
            return out
        index = self._typed_owner.get(kind)
        if index is None:
            index = self._typed_owner[kind] = defaultdict(list)
            for x in self.typed(kind):
                ref = next((r for r in x.meta.owner_references if isinstance(r, dict) and r.get("controller")),
                           None)
                if ref is not None:
                    index[ref.get("uid")].append(x)
        return list(index.get(owner_uid, []))

    def of(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of `kind` (in `namespace` if given), in the store's order. Callers must not mutate the list."""
        items = self.objects.get(kind, [])
        if namespace is None:
            return items
        by_ns = self._by_ns.get(kind)
        if by_ns is None:
            by_ns = self._by_ns[kind] = defaultdict(list)
            for x in items:
                by_ns[o.namespace(x)].append(x)
        return by_ns.get(namespace, [])

    def labelled(self, kind: str, namespace: str | None, label: str, value: str) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` whose label `label` is `value` (an index, as an informer's
        indexer: kube-controller-manager looks up a Service's EndpointSlices by the service-name label)."""
        index = self._by_label.get((kind, namespace, label))
        if index is None:
            index = self._by_label[(kind, namespace, label)] = defaultdict(list)
            for x in self.of(kind, namespace):
                v = o.labels(x).get(label)
                if v is not None:
                    index[v].append(x)
        return index.get(value, [])

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._keyed(kind).get((scoped_namespace(kind, namespace), name))

    def owned(self, owner: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            return list(self._by_owner.get(o.uid(owner), []))
        if self._indexes is not None and kind in self._indexes.owned:
            return self._indexes.owned_of(kind, o.uid(owner))
        index = self._owned_of_kind.get(kind)
        if index is None:  # per kind, as an informer's owner index lives with that kind's informer
            index = self._owned_of_kind[kind] = defaultdict(list)
            for obj in self.objects.get(kind, []):
                ref = o.controller_ref(obj)
                if ref is not None:
                    index[ref.get("uid")].append(obj)
        return list(index.get(o.uid(owner), []))

    def orphans(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace` without a controller ownerReference (what a workload controller
        may adopt), in the store's order; from the cache's index when there is one, not a walk of the kind."""
        if self._indexes is not None and kind in self._indexes.orphans:
            by_key = self._indexes.orphans[kind].get(namespace or "", {})
            return [by_key[k] for k in sorted(by_key)]
        return [x for x in self.of(kind, namespace) if o.controller_ref(x) is None]

    def unbound_pods(self) -> list[dict[str, Any]]:
        """Pods without spec.nodeName (what the scheduler looks at), in the store's order; from the cache's
        index when there is one (kube-scheduler's queue holds only these, filled by its pod informer)."""
        if self._indexes is not None:
            by_key = self._indexes.unbound
            return [by_key[k] for k in sorted(by_key)]
        return [p for p in self.of("Pod") if not o.node_name(p)]

    def names(self, kind: str, namespace: str | None) -> set[str]:
        return {o.name(x) for x in self.of(kind, namespace)}

    def uids(self) -> set[str]:
        return {o.uid(x) for items in self.objects.values() for x in items}


Key = tuple[str, str]  # (namespace or "", name)


class CacheIndexes:
    """The informer cache's indexes, updated per change (as client-go's thread-safe store updates its
    indexers on every Add/Update/Delete): objects by controller owner uid, per kind; objects without a
    controller (adoption candidates) per kind and namespace; pods without a node. A pass asks an owner for
    its pods without a walk over every pod of the cluster."""

    OWNED_KINDS = ("Pod", "ReplicaSet", "Job")
    ORPHAN_KINDS = ("Pod",)

    def __init__(self, kinds: Iterable[str] = WATCHED_KINDS) -> None:
        kinds = set(kinds)
        self.owned: dict[str, dict[str | None, dict[Key, dict[str, Any]]]] = {
            k: {} for k in self.OWNED_KINDS if k in kinds}
        self.orphans: dict[str, dict[str, dict[Key, dict[str, Any]]]] = {k: {} for k in self.ORPHAN_KINDS if k in kinds}
        self.unbound: dict[Key, dict[str, Any]] = {}
        self._owner_of: dict[tuple[str, Key], str | None] = {}  # (kind, key) -> owner uid it is indexed under

    def owned_of(self, kind: str, owner_uid: str | None) -> list[dict[str, Any]]:
        by_key = self.owned[kind].get(owner_uid)
        return [by_key[k] for k in sorted(by_key)] if by_key else []

    def reset(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        if kind in self.owned:
            self.owned[kind] = {}
            self._owner_of = {k: v for k, v in self._owner_of.items() if k[0] != kind}
        if kind in self.orphans:
            self.orphans[kind] = {}
        if kind == "Pod":
            self.unbound = {}
        for x in items:
            self.put(kind, (o.namespace(x) or "", o.name(x)), x)

    def remove(self, kind: str, key: Key) -> None:
        if kind in self.owned and (kind, key) in self._owner_of:
            uid = self._owner_of.pop((kind, key))
            by_key = self.owned[kind].get(uid)
            if by_key is not None:
                by_key.pop(key, None)
                if not by_key:
                    del self.owned[kind][uid]
        if kind in self.orphans:
            by_ns = self.orphans[kind].get(key[0])
            if by_ns is not None:
                by_ns.pop(key, None)
                if not by_ns:
                    del self.orphans[kind][key[0]]
        if kind == "Pod":
            self.unbound.pop(key, None)

    def put(self, kind: str, key: Key, obj: dict[str, Any]) -> None:
        self.remove(kind, key)
        ref = o.controller_ref(obj) if kind in self.owned or kind in self.orphans else None
        if kind in self.owned and ref is not None:
            self.owned[kind].setdefault(ref.get("uid"), {})[key] = obj
            self._owner_of[(kind, key)] = ref.get("uid")
        if kind in self.orphans and ref is None:
            self.orphans[kind].setdefault(key[0], {})[key] = obj
        if kind == "Pod" and not o.node_name(obj):
            self.unbound[key] = obj


class SnapshotCache:
    """The controllers' informer cache: the watched objects kept between passes and brought up to date from
    the store's change log (`Store.changes_of`), so a pass decodes only the objects written since the last
    one instead of every object of the cluster (kube-controller-manager's shared informers list once and
    then watch). A compacted history (410) or a pass whose transaction rolled back (`invalidate`) makes the
    next `load` list everything again.

    Controllers must treat snapshot objects as read-only (they copy before they change one, as they must
    with an informer's cache upstream); `CHECK` (tests) compares the cache with a fresh listing each load."""

    CHECK = False

    def __init__(self, kinds: Iterable[str] = WATCHED_KINDS):
        self.kinds = tuple(kinds)
        self._rv: int | None = None
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in self.kinds}
        self._lists: dict[str, list[dict[str, Any]]] = {k: [] for k in self.kinds}
        self.indexes = CacheIndexes(self.kinds)
        self.decoded = 0  # objects taken from the store so far (for tests and benchmarks)

    def invalidate(self) -> None:
        self._rv = None

    def load(self, store: Store) -> Snapshot:
        rv = store.current_rv()
        changes = None
        if self._rv is not None:
            try:
                changes = store.latest_changes_of(self.kinds, self._rv)  # the newest version of each
            except Compacted:
                changes = None
        if changes is None:
            for k in self.kinds:
                items = store.list(k)
                self.decoded += len(items)
                self._lists[k] = items
                self._objects[k] = {(o.namespace(x) or "", o.name(x)): x for x in items}
                self.indexes.reset(k, items)
        else:
            dirty: set[str] = set()
            for c in changes:
                key = (c.namespace or "", c.name)
                if c.type == DELETED:
                    self._objects[c.kind].pop(key, None)
                    self.indexes.remove(c.kind, key)
                else:
                    obj = c.object  # once: a change-log entry may decode its body on each read
                    self._objects[c.kind][key] = obj
                    self.indexes.put(c.kind, key, obj)
                dirty.add(c.kind)
                rv = max(rv, c.rv)
            self.decoded += len(changes)
            for k in dirty:  # in the store's listing order: namespace, then name
                by_key = self._objects[k]
                self._lists[k] = [by_key[key] for key in sorted(by_key)]
        self._rv = rv
        if self.CHECK:
            for k in self.kinds:
                fresh = store.list(k)
                if fresh != self._lists[k]:
                    diff = next((f"{o.ref(a)}" for a, b in zip(fresh, self._lists[k]) if a != b), "the listing")
                    raise AssertionError(f"snapshot cache out of step with the store ({k}): {diff} (a "
                                         "controller changed a snapshot object in place?)")
            fresh_indexes = CacheIndexes(self.kinds)
            for k in self.kinds:
                fresh_indexes.reset(k, self._lists[k])
            for attr in ("owned", "orphans", "unbound"):
                if getattr(fresh_indexes, attr) != getattr(self.indexes, attr):
                    raise AssertionError(f"snapshot cache's {attr} index out of step with its objects")
        return Snapshot(dict(self._lists), store.decode, self.indexes)


def status_action(obj: dict[str, Any], status: dict[str, Any]) -> Action | None:
    """An Action writing `status` if it differs from the object's current status."""
    if (obj.get("status") or {}) == status:
        return None
    new = copy.deepcopy(obj)
    new["status"] = status
    return Action("status", new)


def apply_actions(store: Store, actions: Iterable[Action], now: float,
                  on_skip: Callable[[Action, Exception], None] | None = None) -> tuple[int, list[Event]]:
    """Apply actions to `store` (normally a transaction view); returns (applied, events). Actions that lost
    a race (Conflict, NotFound, AlreadyExists) are skipped: the next pass decides again."""
    applied = 0
    events: list[Event] = []
    for a in actions:
        kind, ns, name = a.obj["kind"], o.namespace(a.obj), o.name(a.obj)
        rv = o.meta(a.obj).get("resourceVersion")
        try:
            if a.verb == "create":
                store.create(a.obj)
            elif a.verb == "update":
                store.update(a.obj, expected_rv=rv)
            elif a.verb == "status":
                store.update_status(kind, ns, name, a.obj.get("status") or {}, expected_rv=rv)
            elif a.verb == "delete":
                store.delete(kind, ns, name)
            elif a.verb == "event":  # only the event: nothing to write (e.g. a status that did not change)
                if a.event is not None:
                    events.append(a.event)
                continue
            elif a.verb == "terminate":
                cur = store.get(kind, ns, name)
                if cur is None or o.is_terminating(cur):
                    continue
                if kind == "Pod" and (o.node_name(cur) is None):
                    store.delete(kind, ns, name)  # never ran anywhere: nothing for a kubelet to stop
                else:
                    cur["metadata"]["deletionTimestamp"] = rfc3339(now)
                    store.update(cur)
            else:
                raise ValueError(f"unknown action verb {a.verb!r}")
        except (Conflict, NotFound, AlreadyExists) as e:
            if on_skip:
                on_skip(a, e)
            continue
        except InvalidObject as e:
            # The API server refused the write (e.g. over etcd's size limit): this object only; reported as
            # the workload controllers report a refused create (FailedCreate / FailedUpdate events).
            reason = "FailedCreate" if a.verb == "create" else "FailedUpdate"
            events.append(Event(now, "controller-manager", o.ref(a.obj), reason, str(e)[:1000]))
            continue
        applied += 1
        if a.event is not None:
            events.append(a.event)
    if events:
        store.append_events(e.to_record() for e in events)
    return applied, events
