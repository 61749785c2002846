"""Named points in long operations where a test can kill the process (NETSIM_TEST_HOOK=kill:POINT, or
kill:POINT@N to kill on the N-th pass through it).

`netsim up` passes several points where a SIGKILL used to leave things `down` could not find, and the
daemon's kubelets one inside every sandbox they make; the root tests kill at each one and check that `down`
(or a restarted daemon) leaves nothing behind. Unset (always, outside tests) a checkpoint costs one
environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "NETSIM_TEST_HOOK"


_hits: dict[str, int] = {}


def checkpoint(point: str) -> None:
    """SIGKILL this process here when NETSIM_TEST_HOOK is `kill:<point>` (or `kill:<point>@<n>` and this is
    the n-th time here)."""
    hook = os.environ.get(ENV)
    if not hook or not hook.startswith(f"kill:{point}"):
        return
    _hits[point] = _hits.get(point, 0) + 1
    rest = hook[len(f"kill:{point}"):]
    if rest == "" or rest == f"@{_hits[point]}":
        os.kill(os.getpid(), signal.SIGKILL)
