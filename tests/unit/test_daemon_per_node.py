"""The daemon's per-node fan-out for data-plane syncs (no root: plain functions on a thread pool)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from netsim.daemon import per_node


def test_nodes_sync_side_by_side():
    barrier = threading.Barrier(3, timeout=5)  # times out unless three syncs are under way at once
    done = []

    def sync(name: str) -> None:
        barrier.wait()
        done.append(name)

    with ThreadPoolExecutor(max_workers=4) as pool:
        per_node(pool, sync, ["a", "b", "c"])
    assert sorted(done) == ["a", "b", "c"]


def test_every_node_runs_before_the_first_failure_is_raised():
    done = []

    def sync(name: str) -> None:
        if name in ("b", "c"):
            raise RuntimeError(f"sync of {name} failed")
        done.append(name)

    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(RuntimeError, match="sync of b failed"):
        per_node(pool, sync, ["a", "b", "c", "d"])
    assert sorted(done) == ["a", "d"]


def test_one_node_runs_inline():
    seen = []
    per_node(None, lambda n: seen.append((n, threading.current_thread().name)), ["x"])  # type: ignore[arg-type]
    assert seen == [("x", threading.current_thread().name)]
