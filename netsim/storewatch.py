"""Sleeping until the store changes, woken by the change itself rather than by polling.

An informer does not poll: its watch delivers each write as it is committed. `Store.wait_for_change` on the
SQLite store polls the newest resourceVersion with a back-off up to 50 ms, so a write that lands while a
waiter sleeps is seen up to 50 ms late (a fifth of the kernel's own cost for a one-rule change at 10,000
Services). A commit in WAL mode is a write(2) to the database's `-wal` file, which inotify reports to any
process watching it (inotify(7), IN_MODIFY): `ChangeWaiter` sleeps in select(2) on an inotify descriptor
watching that file and looks at the resourceVersion only when something was written. Other stores (etcd,
which has a real watch; an in-memory database, which no other process can write) use their own
`wait_for_change`.

Each waiter holds one inotify instance for its life (`fs.inotify.max_user_instances` is 128 per user by
default, shared by the whole machine): only long-lived watchers make one. When an instance cannot be had,
or the file goes, the waiter falls back to the store's own polling.
"""

from __future__ import annotations

import logging
import os
import select
import time

from netsim.dirwatch import inotify_watch
from netsim.store import SQLiteStore, Store

log = logging.getLogger("netsim.store")
IN_MODIFY, IN_DELETE_SELF, IN_MOVE_SELF = 0x002, 0x400, 0x800
SETTLE_SECONDS = 0.005  # how soon a write that was seen but not yet visible is looked for again


def _inotify(path: str) -> int | None:
    """A non-blocking inotify descriptor watching `path` for writes, or None (no such file, no instance)."""
    fd = inotify_watch(path, IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF)
    if fd is None:
        log.debug("no inotify watch on %s: polling the store", path)
    return fd


class ChangeWaiter:
    """`wait(rv, timeout)`: True as soon as the store's resourceVersion is past `rv`, False at the timeout."""

    def __init__(self, store: Store):
        self.store = store
        self.fd: int | None = None
        if isinstance(store, SQLiteStore) and store.path != ":memory:":
            self.fd = _inotify(f"{store.path}-wal")

    @property
    def notified(self) -> bool:
        """Woken by the kernel (inotify) rather than by polling."""
        return self.fd is not None

    def _drain(self) -> bool:
        """Read the queued events; True when there were any (when the watched file went, the waiter closes
        its watch and polls from then on)."""
        assert self.fd is not None
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return False
        # struct inotify_event: int wd; uint32 mask, cookie, len; char name[len]
        off = 0
        while off + 16 <= len(data):
            mask = int.from_bytes(data[off + 4:off + 8], "little")
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF | 0x8000):  # 0x8000: IN_IGNORED, the watch went
                self.close()
                return True
            off += 16 + int.from_bytes(data[off + 12:off + 16], "little")
        return True

    def wait(self, rv: int, timeout: float) -> bool:
        if self.fd is None:
            return self.store.wait_for_change(rv, timeout)
        deadline = time.monotonic() + timeout
        while True:
            written = self._drain()  # what was queued before this look is covered by it
            if self.fd is None:
                return self.store.wait_for_change(rv, max(0.0, deadline - time.monotonic()))
            if self.store.current_rv() > rv:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # A commit writes its frames to the log (the event) before it publishes them in the shared
            # index that readers consult: a write seen but not yet visible is looked at again shortly.
            select.select([self.fd], [], [], min(remaining, SETTLE_SECONDS) if written else remaining)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


__all__ = ["ChangeWaiter"]
