"""The tests' stall helper stops a process only outside a write on the SQLite store (tests/integration/stall.py).

A writer that holds the lock most of the time (50 ms in, 5 ms out) is stopped ten times; each time the lock
must be free, which a bare SIGSTOP would get right about one time in ten."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from netsim.store import SQLiteStore
from tests.integration.stall import stop_outside_a_write, write_lock_free

WRITER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
print("writing", flush=True)
while True:
    c.execute("BEGIN IMMEDIATE"); time.sleep(0.05); c.execute("COMMIT"); time.sleep(0.005)
"""


def test_the_stall_helper_stops_a_busy_writer_outside_its_transactions(tmp_path):
    path = str(tmp_path / "s.db")
    SQLiteStore(path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        for _ in range(10):
            stop_outside_a_write(writer.pid, path)
            assert write_lock_free(path)
            os.kill(writer.pid, signal.SIGCONT)
    finally:
        writer.kill()
        writer.wait()
