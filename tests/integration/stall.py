"""Stop a cluster process (SIGSTOP) at a moment it holds no write lock on the SQLite store.

A process stopped inside a write transaction keeps the store's one write lock, and every other writer
(the CLI included) waits for it until its busy timeout and fails with "database is locked". A test that
stalls the daemon to look at the store between two of its steps must therefore stall it outside a write:
stop it, probe the write lock, and if the stopped process holds it, let it run on a moment and try again.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

from netsim import pidstate


def _all_threads_stopped(pid: int) -> bool:
    threads = pidstate.thread_stats(pid)
    return threads is None or all(state in ("T", "t") for state, _ in threads)


def write_lock_free(store_path: str) -> bool:
    """Whether another process could take the store's write lock right now (it is taken and let go)."""
    conn = sqlite3.connect(store_path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def stop_outside_a_write(pid: int, store_path: str, timeout: float = 30.0) -> None:
    """SIGSTOP `pid` at a moment it holds no write transaction on the SQLite store at `store_path`."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        os.kill(pid, signal.SIGSTOP)
        while not _all_threads_stopped(pid):
            time.sleep(0.001)
        if write_lock_free(store_path):
            return
        os.kill(pid, signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} held the store's write lock at every stop for {timeout} s")
        # Let it run on, longer each time and at a random phase: on a loaded machine a process let go for a
        # fixed 10 ms may not be scheduled at all before the next stop, and never leave its transaction.
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.2)
