"""The idle daemon's loop sleeps until a commit wakes it (inotify on the store's write-ahead log,
netsim/storewatch.py), not by polling the resourceVersion up to twenty times a second: counted as store
reads during an idle wait, never as time."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from netsim.daemon import Daemon
from netsim.store import SQLiteStore


class CountingStore(SQLiteStore):
    reads = 0

    def current_rv(self) -> int:
        self.reads += 1
        return super().current_rv()


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}


def test_an_idle_wait_reads_the_store_a_few_times_not_twenty_a_second(tmp_path):
    store = CountingStore(str(tmp_path / "store.db"))
    store.create(_pod("a"))  # the write-ahead log exists from the first commit on
    loop = SimpleNamespace(store=store, _waiter=None)
    rv = store.current_rv()
    store.reads = 0
    assert Daemon._wait_for_change(loop, rv, 1.0) is False  # type: ignore[arg-type]
    assert store.reads <= 3  # polling with a back-off to 50 ms read it ~25 times in this second
    writer = SQLiteStore(str(tmp_path / "store.db"))
    t = threading.Timer(0.2, lambda: writer.create(_pod("b")))
    t.start()
    try:
        assert Daemon._wait_for_change(loop, rv, 10.0) is True  # type: ignore[arg-type]
    finally:
        t.join()
        loop._waiter.close()
