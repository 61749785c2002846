"""Where the daemon's memory goes: an opt-in tracemalloc switch (issue #18, peak memory at 10,000 pods).

With `NETSIM_TRACEMALLOC=N` in the daemon's environment (N frames per allocation; 1 is enough to group by
line, and costs least), the daemon starts `tracemalloc` before it builds anything and, on SIGUSR2, writes
the live allocations grouped by file:line (and by file, and with N > 1 by whole traceback) to
`<state dir>/tracemalloc-<pid>-<k>.txt`, with the traced total and peak; with `NETSIM_TRACEMALLOC_PEAK=1`
also what the heap held when it was biggest (PeakWatch). Off by default: tracing slows every allocation
several fold. Benchmarks set it (`benchmarks.bench_scale --tracemalloc`) and signal the daemon when every
pod is Ready and once the cluster has converged.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
import tracemalloc
from types import FrameType

ENV = "NETSIM_TRACEMALLOC"
PEAK_ENV = "NETSIM_TRACEMALLOC_PEAK"
TOP_LINES = 60
TOP_FILES = 40
TOP_TRACEBACKS = 25

_dumps = itertools.count(1)


def frames_from_env() -> int:
    """Frames to trace per allocation as the environment asks (0: off; an unreadable value is off)."""
    try:
        return max(0, int(os.environ.get(ENV, "0")))
    except ValueError:
        return 0


def report(snapshot: tracemalloc.Snapshot, top_lines: int = TOP_LINES, top_files: int = TOP_FILES) -> str:
    """Text of a snapshot: traced current/peak, then the biggest files and lines (size, count)."""
    cur, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    out = [f"# traced now {cur / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, at {time.time():.0f}"]
    out.append("## by file")
    for s in snapshot.statistics("filename")[:top_files]:
        out.append(f"{s.size / 2**20:9.2f} MiB {s.count:9d}  {s.traceback[0].filename}")
    out.append("## by line")
    for s in snapshot.statistics("lineno")[:top_lines]:
        f = s.traceback[0]
        out.append(f"{s.size / 2**20:9.2f} MiB {s.count:9d}  {f.filename}:{f.lineno}")
    if tracemalloc.get_traceback_limit() > 1:  # where the biggest sites were called from
        out.append("## by traceback (innermost frame first)")
        for s in snapshot.statistics("traceback")[:TOP_TRACEBACKS]:
            out.append(f"{s.size / 2**20:9.2f} MiB {s.count:9d}")
            out.extend(f"      {f.filename}:{f.lineno}" for f in reversed(s.traceback))
    return "\n".join(out) + "\n"


def install(directory: str) -> bool:
    """Start tracing if the environment asks, and dump a report into `directory` on SIGUSR2. True if on."""
    frames = frames_from_env()
    if not frames:
        return False
    tracemalloc.start(frames)

    watch = PeakWatch()
    if os.environ.get(PEAK_ENV) == "1":
        threading.Thread(target=watch.run, name="netsim-memtrace-peak", daemon=True).start()

    def dump(_sig: int, _frame: FrameType | None) -> None:
        path = os.path.join(directory, f"tracemalloc-{os.getpid()}-{next(_dumps)}.txt")
        text = report(tracemalloc.take_snapshot())
        if watch.text:
            text += "\n# the biggest heap seen so far (NETSIM_TRACEMALLOC_PEAK)\n" + watch.text
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR2, dump)
    return True


class PeakWatch:
    """With NETSIM_TRACEMALLOC_PEAK=1: every `period` seconds, when the traced heap has grown by a fifth
    over the last one reported, report it again, so a dump also says what the heap held near its peak
    (a transient batch, not what stays). Each report stalls the process while it is taken."""

    def __init__(self, period: float = 1.0, growth: float = 1.2):
        self.period, self.growth = period, growth
        self.size = 0
        self.text = ""

    def check(self) -> bool:
        cur, _ = tracemalloc.get_traced_memory()
        if cur <= self.size * self.growth or not tracemalloc.is_tracing():
            return False
        self.size = cur
        self.text = report(tracemalloc.take_snapshot(), top_lines=30, top_files=15)
        return True

    def run(self) -> None:
        while tracemalloc.is_tracing():
            self.check()
            time.sleep(self.period)
