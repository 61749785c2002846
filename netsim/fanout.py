"""One function over many items at once, for work that mostly waits: on the kernel (a veth deletion's RCU
barrier) or on a child process (a node's iptables-restore). Used by the kubelet step's pod teardown and by
the daemon's per-node data-plane syncs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fan_out(pool: Executor, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """fn(item) for every item, on `pool` when there is more than one (a single item runs inline); results
    in item order. Every call runs to its end before the first failure, in item order, is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    futures = [pool.submit(fn, item) for item in items]
    for f in futures:
        f.exception()  # wait for all before raising any
    return [f.result() for f in futures]
