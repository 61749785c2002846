"""A change tracker over the store's change log: what an agent reads instead of listing every object.

An agent that listed and re-parsed every object of its kinds on each pass does work that follows the size of
the cluster. The tracker reads the store's change log (`Store.changes_of`, etcd's watch from a revision on the agent's kinds)
from where the agent left off and hands over only what changed since, collapsed to the newest state of each
object, as felix's calculation graph receives updates (`OnUpdate`, calico felix/calc/calc_graph.go) and the
dataplane driver applies them in one batch (`CompleteDeferredWork`, felix/dataplane/linux/int_dataplane.go).

The first poll, and any poll after the log was compacted past the agent's position (the API's 410 Gone),
is a resync: the whole current state of the kinds, which the agent takes as the new truth (dropping what is
not in it), as an informer relists. Each agent holds its own position in the log, so it runs wherever the
store can be read, in this process or another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netsim.store import Compacted, Store

Key = tuple[str, str | None, str]  # (kind, namespace, name)


@dataclass
class Batch:
    """What changed since the last poll: the newest object per key (None: deleted). `resync`: this is the
    whole state of the kinds, anything the agent holds that is not in it is gone."""

    rv: int
    resync: bool = False
    objects: dict[Key, dict[str, Any] | None] = field(default_factory=dict)

    def of(self, kind: str) -> dict[Key, dict[str, Any] | None]:
        return {k: v for k, v in self.objects.items() if k[0] == kind}

    def __bool__(self) -> bool:
        return self.resync or bool(self.objects)


class ChangeTracker:
    """Reads the change log for `kinds` from the last position on (see the module docstring)."""

    def __init__(self, store: Store, kinds: Iterable[str]):
        self.store = store
        self.kinds = frozenset(kinds)
        self.rv: int | None = None  # the last resourceVersion taken in; None: never synced

    def poll(self) -> Batch:
        current = self.store.current_rv()  # read first: what is written meanwhile comes again next poll
        if self.rv is not None:
            try:
                # other kinds' bodies, and the versions of an object a newer one replaced, stay undecoded
                changes = self.store.latest_changes_of(self.kinds, self.rv)
            except Compacted:
                changes = None
            if changes is not None:
                batch = Batch(current)
                for c in changes:
                    batch.rv = max(batch.rv, c.rv)
                    batch.objects[(c.kind, c.namespace, c.name)] = None if c.type == "DELETED" else c.object
                self.rv = batch.rv
                return batch
        return self.relist(current)

    def relist(self, current: int | None = None) -> Batch:
        """The whole current state of the kinds (the first poll, or after the log was compacted)."""
        current = self.store.current_rv() if current is None else current
        batch = Batch(current, resync=True)
        for kind in sorted(self.kinds):
            for obj in self.store.list(kind):
                md = obj.get("metadata") or {}
                batch.objects[(kind, md.get("namespace"), md["name"])] = obj
        self.rv = current
        return batch


__all__ = ["Batch", "ChangeTracker", "Key"]
