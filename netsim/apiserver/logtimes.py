"""When each line of a container's log was written: what `pods/log?timestamps=true` and `sinceSeconds`
/`sinceTime` need.

The kubelet's log files (CRI format, pkg/kubelet/kuberuntime/logs) carry a timestamp per line, stamped by
the runtime as it reads the container's output. netsim's containers write straight into their log file
(so they outlive a daemon restart), which has no times; so this clock watches the cluster's log
directory with inotify and, each time a file grows, records in `<log>.times` the end offset of the last
complete line and the time it saw it ("END_OFFSET UNIX_TIME" per line of that file). A line's time is
that of the first record at or after its end: the time the clock saw it, a few milliseconds after it
was written, as the runtime's stamp is the time it read the pipe. Lines written while nobody watched
(before the daemon started) get the file's modification time when watching starts: never earlier than
they were written. A restart's `.previous` file and its records are renamed together; a file's
records go with it.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import logging
import os
import select
import struct
import threading
import time

log = logging.getLogger("netsim.apiserver.logtimes")

IN_MODIFY, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x80, 0x100, 0x200
_EVENT = struct.Struct("iIII")
SUFFIX = ".times"
PREVIOUS = ".previous"


def times_path(log_path: str) -> str:
    return log_path + SUFFIX


def load(log_path: str) -> tuple[list[int], list[float]]:
    """The records of a log file: end offsets (ascending) and their times."""
    offsets: list[int] = []
    times: list[float] = []
    with contextlib.suppress(FileNotFoundError), open(times_path(log_path)) as f:
        for line in f:
            off, _, t = line.partition(" ")
            with contextlib.suppress(ValueError):
                offsets.append(int(off))
                times.append(float(t))
    return offsets, times


def line_times(log_path: str, data: bytes, start: int = 0, now: float | None = None) -> list[tuple[bytes, float]]:
    """`data` (the file's bytes from offset `start`) split in lines, each with its time."""
    offsets, times = load(log_path)
    now = time.time() if now is None else now
    out = []
    pos = start
    for line in data.splitlines(keepends=True):
        pos += len(line)
        i = bisect.bisect_left(offsets, pos)
        out.append((line, times[i] if i < len(times) else now))
    return out


def rfc3339nano(t: float) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped (the kubelet's timeFormatOut)."""
    secs = int(t)
    nanos = round((t - secs) * 1e9)
    if nanos >= 1_000_000_000:
        secs, nanos = secs + 1, nanos - 1_000_000_000
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    frac = f"{nanos:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


class LogClock:
    """One thread, one inotify watch on the cluster's log directory."""

    def __init__(self, logs_dir: str):
        self.logs_dir = logs_dir
        self._seen: dict[str, tuple[int, int]] = {}  # log name -> (inode, bytes accounted for)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd = -1

    def start(self) -> None:
        os.makedirs(self.logs_dir, mode=0o700, exist_ok=True)
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(fd, self.logs_dir.encode(), IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0:
            os.close(fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {self.logs_dir}")
        self._fd = fd
        for name in os.listdir(self.logs_dir):  # what was written before: its modification time at most
            if name.endswith(".log"):
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(self.logs_dir, name))
                    self._record(name, st.st_ino, st.st_size, st.st_mtime)
        self._thread = threading.Thread(target=self._run, name="netsim-logclock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _record(self, name: str, ino: int, end: int, when: float) -> None:
        self._seen[name] = (ino, end)
        if end > 0:
            with open(os.path.join(self.logs_dir, name + SUFFIX), "a") as f:
                f.write(f"{end} {when:.9f}\n")

    def _grown(self, name: str) -> None:
        path = os.path.join(self.logs_dir, name)
        now = time.time()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        ino, done = self._seen.get(name, (st.st_ino, 0))
        if ino != st.st_ino:  # replaced by a restart before we read the old one's tail
            done = 0
        if st.st_size <= done:
            return
        with open(path, "rb") as f:
            f.seek(done)
            chunk = f.read(st.st_size - done)
        last = chunk.rfind(b"\n")
        if last < 0:  # no complete line yet
            self._seen[name] = (st.st_ino, done)
            return
        self._record(name, st.st_ino, done + last + 1, now)

    def _moved(self, name: str) -> None:
        if name.endswith(".log" + PREVIOUS):  # the kubelet kept the last instance's log
            current = name[: -len(PREVIOUS)]
            with contextlib.suppress(FileNotFoundError):
                os.replace(os.path.join(self.logs_dir, current + SUFFIX), os.path.join(self.logs_dir, name + SUFFIX))
            self._seen.pop(current, None)

    def _deleted(self, name: str) -> None:
        if name.endswith(".log") or name.endswith(".log" + PREVIOUS):
            self._seen.pop(name, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.logs_dir, name + SUFFIX))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.5)
                if not ready:
                    continue
                buf = os.read(self._fd, 65536)
            except OSError as e:
                log.error("log clock stopped: %s", e)
                return
            pos, grown = 0, []
            while pos + _EVENT.size <= len(buf):
                _, mask, _, n = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size: pos + _EVENT.size + n].rstrip(b"\0").decode(errors="replace")
                pos += _EVENT.size + n
                try:
                    if mask & IN_MOVED_TO:
                        self._moved(name)
                    elif mask & IN_DELETE:
                        self._deleted(name)
                    elif mask & (IN_MODIFY | IN_CREATE) and name.endswith(".log") and name not in grown:
                        grown.append(name)
                        self._grown(name)
                except OSError as e:  # one file's trouble never stops the clock
                    log.debug("log clock: %s: %s", name, e)
