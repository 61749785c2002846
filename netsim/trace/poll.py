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
        ready, _, _ = select.select(list(sources), [], [], wait)
        for s in ready:
            items = read(s)
            if items:
                got[s].extend(items)
                quiet_until = time.monotonic() + settle
    return got
