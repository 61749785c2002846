"""One function over many items at once, for work that mostly waits: on the kernel (a veth deletion's RCU
barrier) or on a child process (a node's iptables-restore). Used by the kubelet step's pod teardown and by
the daemon's per-node data-plane syncs (`fan_out`, a future per item, results in order), and by `down`'s
sweeps over thousands of namespaces and directories (`each`: a few threads that each take the next item
themselves; a future per item cost the submitting thread ~0.1 ms each, a second of a 10,000-pod `down`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class _Shared:
    """A thread-safe `next()` over the items, and the first exception any worker raised."""

    def __init__(self, items: Iterable[T]) -> None:
        self._it: Iterator = iter(items)
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def next(self) -> tuple[bool, object]:
        with self._lock:
            for item in self._it:
                return True, item
            return False, None


def _drain(fn: Callable[[T], object], shared: _Shared) -> None:
    while True:
        more, item = shared.next()
        if not more:
            return
        try:
            fn(item)  # type: ignore[arg-type]
        except BaseException as e:  # every item is still tried; the first failure is raised at the end
            if shared.error is None:
                shared.error = e


def each(fn: Callable[[T], object], items: Iterable[T], workers: int,
         executor: Executor | None = None) -> None:
    """Call `fn` on every item, on at most `workers` threads (the executor's, else threads of our own);
    returns when all are done. Every item is tried; the first exception raised is re-raised then."""
    todo = list(items)
    n = min(workers, len(todo))
    shared = _Shared(todo)
    if n <= 1:
        _drain(fn, shared)
    else:
        if executor is not None:
            for f in [executor.submit(_drain, fn, shared) for _ in range(n)]:
                f.result()
        else:
            threads = [threading.Thread(target=_drain, args=(fn, shared), name="netsim-fanout", daemon=True)
                       for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    if shared.error is not None:
        raise shared.error
