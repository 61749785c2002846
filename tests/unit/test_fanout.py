"""fan_out: pod teardown and per-node data-plane syncs side by side (no root: plain functions on a pool)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from netsim.fanout import fan_out


def test_nodes_sync_side_by_side():
    barrier = threading.Barrier(3, timeout=5)  # times out unless three syncs are under way at once
    done = []

    def sync(name: str) -> None:
        barrier.wait()
        done.append(name)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert fan_out(pool, sync, ["a", "b", "c"]) == [None, None, None]
    assert sorted(done) == ["a", "b", "c"]


def test_every_node_runs_before_the_first_failure_is_raised():
    done = []

    def sync(name: str) -> None:
        if name in ("b", "c"):
            raise RuntimeError(f"sync of {name} failed")
        done.append(name)

    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(RuntimeError, match="sync of b failed"):
        fan_out(pool, sync, ["a", "b", "c", "d"])
    assert sorted(done) == ["a", "d"]


def test_one_node_runs_inline():
    assert fan_out(None, lambda n: (n, threading.current_thread().name), ["x"]) == [  # type: ignore[arg-type]
        ("x", threading.current_thread().name)]


def test_results_come_in_item_order():
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert fan_out(pool, lambda i: i * i, list(range(10))) == [i * i for i in range(10)]
