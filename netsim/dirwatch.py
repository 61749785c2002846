"""Sleeping until a file in a directory is replaced, woken by the kernel rather than by polling.

`netsim apply` waits for the daemon's convergence marker (daemonctl.read_marker): the daemon, and each host
agent, writes its marker to a temporary name and renames it over the old one (atomic for readers), which
inotify(7) reports on the directory as IN_MOVED_TO. The wait used to read the marker every 30 ms: ~33 reads
a second of a JSON file and of /proc, in a process that shares two cores with the daemon it waits for, and a
marker seen up to 30 ms late. `DirWatch.wait(timeout)` sleeps in select(2) on an inotify descriptor until a
file is renamed into the directory (a temporary file's close is not a marker yet), so a wait looks again
when something changed; the caller still looks at least every `timeout` seconds for what no file announces (the daemon's
death, its deadline). Without an inotify instance (`fs.inotify.max_user_instances` is 128 per user, shared
by the machine) or the directory, `wait` is a plain sleep: the old polling.

The same kernel interface as netsim.storewatch (which watches the SQLite write-ahead log); this one is for
short-lived waiters, so it holds its instance for one wait only.
"""

from __future__ import annotations

import ctypes
import os
import select
import time

IN_MOVED_TO = 0x080
_libc: ctypes.CDLL | None = None


def inotify_watch(path: str, mask: int) -> int | None:
    """A non-blocking inotify descriptor watching `path` for the events in `mask`, or None (no such path, no
    inotify instance left: the caller polls instead). netsim.storewatch uses it too."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if _libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
        os.close(fd)
        return None
    return fd


class DirWatch:
    """An inotify watch on `path` (a directory) for files renamed into it. A context manager."""

    def __init__(self, path: str):
        self.fd: int | None = inotify_watch(path, IN_MOVED_TO)

    @property
    def notified(self) -> bool:
        """Woken by the kernel (inotify) rather than by a sleep."""
        return self.fd is not None

    def _drain(self) -> bool:
        assert self.fd is not None
        changed = False
        while True:
            try:
                changed = bool(os.read(self.fd, 65536)) or changed
            except BlockingIOError:
                return changed

    def wait(self, timeout: float) -> bool:
        """Sleep until a file was renamed into the directory since the watch was made or the last call returned
        (True, at once when that was meanwhile), or `timeout` seconds (False)."""
        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return False
        if self._drain():
            return True
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        return bool(ready) and self._drain()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DirWatch"]
