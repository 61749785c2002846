"""Wait for queued observations on several sockets at once, until things go quiet."""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from typing import Any


def drain(sources: Sequence[Any], *, timeout: float, settle: float,
          read: Callable[[Any], list] = lambda s: s.read()) -> dict[Any, list]:
    """Read from objects with fileno() until nothing arrived for `settle` s (or `timeout` s in total).

    Returns {source: [items]}; shared by trace listeners and packet captures.
    """
    got: dict = {s: [] for s in sources}
    deadline = time.monotonic() + timeout
    quiet_until = time.monotonic() + settle
    for s in sources:  # what is already queued
        got[s].extend(read(s))
    while sources:
        now = time.monotonic()
        wait = min(deadline, quiet_until) - now
        if wait <= 0:
            break
        for s in wait_readable(list(sources), wait):
            items = read(s)
            if items:
                got[s].extend(items)
                quiet_until = time.monotonic() + settle
    return got


def wait_readable(sources: list, timeout: float) -> list:
    """The sources (objects with fileno()) readable within `timeout` seconds. poll(2), not select(2): a
    daemon of a large cluster holds thousands of descriptors, and select() cannot watch one above 1024."""
    poller = select.poll()
    by_fd = {}
    for s in sources:
        fd = s.fileno()
        by_fd[fd] = s
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(max(0.0, timeout) * 1000)]
