"""Whether a process of this machine is gone: dead, a zombie, or killed and only waiting to leave the kernel.

Locks and leases held by a process of this machine (the etcd store's transaction lock, the control plane's
election key) need not be waited out when their holder is known gone: on one machine the pid says it for
sure, as the kernel says it for SQLite's locks (released when the holder's descriptors close).
"""

from __future__ import annotations

import os
import socket

SIGKILL_BIT = 1 << (9 - 1)  # SIGKILL in /proc/<pid>/status's signal masks (bit n-1 for signal n)


def thread_stats(pid: int) -> list[tuple[str, int]] | None:
    """(state, flags) of every thread of `pid` from /proc/PID/task/TID/stat (state "R", "S", "T", "Z", ...;
    flags as include/linux/sched.h PF_*); None when the process is gone. A thread that ends meanwhile is
    left out."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    out = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 6:
            out.append((fields[0].decode(), int(fields[6])))
    return out


def killed(status: str) -> bool:
    """A /proc/<pid>/status text of a process that is dead or dying: a zombie or dead state, or a SIGKILL
    pending. A killed process leaves the kernel only when the call it is in returns: a thread blocked in
    an uninterruptible netlink or namespace operation (waiting on rtnl_lock while other clusters' namespaces
    are torn down) keeps it looking alive for seconds, though it can never run another instruction of its own
    (kernel/signal.c complete_signal: a fatal signal sets SIGKILL pending on every thread of the group)."""
    masks = 0
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "State" and value.split()[:1] in (["Z"], ["X"]):
            return True
        if key in ("SigPnd", "ShdPnd"):
            try:
                masks |= int(value.strip(), 16)
            except ValueError:
                pass
    return bool(masks & SIGKILL_BIT)


def dying(pid: int) -> bool:
    """`pid` is gone, or killed and only waiting to leave the kernel (`killed`)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return killed(f.read())
    except OSError:
        return True


def holder_tag() -> str:
    """`<hostname>:<pid>`: what a holder of this process writes, for `holder_gone` elsewhere to read."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_gone(tag: str) -> bool:
    """A `holder_tag` of a process of this machine that is gone or dying; False for other machines' holders
    (left to their lease's expiry) and for anything that is not such a tag."""
    host, _, pid = tag.partition(":")
    pid = pid.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and dying(int(pid))
