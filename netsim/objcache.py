"""The parse cache: each stored object version decoded into its typed object once.

The store holds manifest dicts (JSON rows); the agents, controllers, DNS, policy and trace want typed
objects (netsim.model: `metadata`, `spec`, `status`). Before this cache each of them parsed the dicts it
listed on every pass, so one Pod was decoded several times per pass. Here the typed object of a version
is kept under its identity (kind, namespace, name) with the resourceVersion it was decoded at: a read at
the same resourceVersion returns the same (frozen, shared) object, a newer one decodes again. This is
the role of client-go's informer cache (tools/cache: a thread-safe store of decoded objects keyed by
namespace/name, replaced when a watch event carries a newer resourceVersion).

Bounded (least recently used identities go first) and thread-safe (the daemon's agents share one store).
A decode that fails is remembered too (one bad object is logged once per version, not once per pass), and
queued for the controller loop, which reports it on the object as a Warning event (`take_failures`,
netsim.controlplane.parsefailures): one bad object never stops the rest, and stays visible on itself.
Typed objects are shared: they are frozen dataclasses, but their dict fields (labels, `raw`) must be
treated as read-only, as an informer's objects must.

A resourceVersion names one version of one object only once a write commits: a rolled-back transaction's
resourceVersions are handed out again (SQLite's AUTOINCREMENT counter rolls back with it), so the store
drops what such a transaction decoded (`forget_from`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from netsim.model.errors import NetsimError, Source

STORE_SOURCE = Source("<store>")
MAX_QUEUED_FAILURES = 1_000  # decodes that failed since the controller loop last took them (oldest dropped)
DEFAULT_MAX_OBJECTS = 50_000  # 10,000 pods, Services and slices each fit; ~3 KB a typed Pod, ~1.5 KB a Service

Identity = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


def decode_stored(obj: Mapping[str, Any], kind: str | None = None) -> Any:
    """The typed object of one stored manifest dict (raises NetsimError when it does not parse).

    Kinds netsim models get their parsers (netsim.model.registry); Node its lenient reader
    (netsim.model.node); every other kind a `StoredObject` (metadata checked, the rest kept as given).
    """
    kind = kind or obj.get("kind")
    if kind == "Node":
        from netsim.model.node import parse_node
        return parse_node(obj, STORE_SOURCE)
    from netsim.model.loader import parse_object
    return parse_object(obj, STORE_SOURCE, skip_unknown=True)


def rv_of(obj: Mapping[str, Any]) -> int | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(rv) if rv is not None else None
    except (TypeError, ValueError):
        return None


class _Failed:
    """A version that did not decode (kept so it is not decoded, and logged, again)."""

    __slots__ = ("error",)

    def __init__(self, error: NetsimError):
        self.error = error


class ObjectCache:
    """Typed objects by (kind, namespace, name) at one resourceVersion each; see the module docstring."""

    def __init__(self, max_objects: int = DEFAULT_MAX_OBJECTS):
        self.max_objects = max_objects
        self._lock = threading.Lock()
        self._entries: OrderedDict[Identity, tuple[int, Any]] = OrderedDict()
        self.decodes = 0  # objects parsed (misses), for tests and benchmarks
        self.hits = 0
        # (identity, resourceVersion, error) of each version whose decode failed, until taken
        self._failures: deque[tuple[Identity, int, NetsimError]] = deque(maxlen=MAX_QUEUED_FAILURES)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ident: Identity, rv: int) -> Any:
        """The cached typed object of `ident` at `rv`, or None (a miss). Raises what its decode raised."""
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None or entry[0] != rv:
                return None
            self._entries.move_to_end(ident)
            self.hits += 1
        if isinstance(entry[1], _Failed):
            raise entry[1].error
        return entry[1]

    def put(self, ident: Identity, rv: int, typed: Any) -> None:
        with self._lock:
            cur = self._entries.get(ident)
            if cur is not None and cur[0] > rv:
                return  # a newer version is already here: an old reader must not push it out
            self._entries[ident] = (rv, typed)
            self._entries.move_to_end(ident)
            while len(self._entries) > self.max_objects:
                self._entries.popitem(last=False)

    def decode(self, obj: Mapping[str, Any], kind: str | None = None) -> Any:
        """The typed object of a stored manifest dict, decoded once per resourceVersion. A dict without a
        resourceVersion (never stored) is decoded every time, uncached."""
        kind = kind or obj.get("kind") or ""
        md = obj.get("metadata") or {}
        rv = rv_of(obj)
        if not rv:  # never stored, or an optimistic write's placeholder ("0") before its commit
            return decode_stored(obj, kind)
        ident = (kind, md.get("namespace") or "", md.get("name") or "")
        hit = self.lookup(ident, rv)
        if hit is not None:
            return hit
        with self._lock:
            self.decodes += 1
        try:
            typed = decode_stored(obj, kind)
        except NetsimError as e:
            import logging  # only here: every command that opens the store imports this module
            logging.getLogger(__name__).warning("stored %s %s/%s (resourceVersion %d) does not parse: %s", kind, ident[1], ident[2], rv, e)
            self.put(ident, rv, _Failed(e))
            with self._lock:
                self._failures.append((ident, rv, e))
            raise
        self.put(ident, rv, typed)
        return typed

    def take_failures(self) -> list[tuple[Identity, int, NetsimError]]:
        """The versions whose decode failed since the last call (each once: a version's failure is cached)."""
        with self._lock:
            out = list(self._failures)
            self._failures.clear()
        return out

    def forget(self, ident: Identity) -> None:
        with self._lock:
            self._entries.pop(ident, None)

    def forget_from(self, rv: int) -> None:
        """Drop every version at `rv` or later (what a rolled-back transaction wrote and decoded)."""
        with self._lock:
            for ident in [k for k, (v, _) in self._entries.items() if v >= rv]:
                del self._entries[ident]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
