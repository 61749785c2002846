"""Named network namespaces, made in process.

`ip netns add` forks `ip`, which unshares and bind-mounts. We do the same two system calls from one
long-lived kernel thread: unshare(CLONE_NEWNET) moves only that thread into a fresh namespace; binding
/proc/self/task/<tid>/ns/net onto /run/netns/<name> keeps the namespace alive and makes it visible to
`ip netns exec`; setns() brings the thread back. Network namespaces are per thread, so the rest of the
process never leaves the namespace it started in, and the root namespace is never modified.

Sockets (netlink included) stay in the namespace they were opened in, whichever thread uses them later;
that is what lets one thread own all the netlink sockets of a cluster.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind `fd`."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def open_netns(name: str) -> int:
    """An O_RDONLY fd on a named namespace (the caller closes it)."""
    try:
        return os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"network namespace {name} does not exist") from None


def create_here(name: str) -> None:
    """Create `name` and leave the CALLING THREAD inside it. The caller must setns() back afterwards.

    Fails with FileExistsError if the name is taken. On any failure the mount point is removed and the
    thread is not moved.
    """
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    path = netns_path(name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    os.close(fd)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        _check(_libc.mount(src, path.encode(), b"none", MS_BIND, None), f"bind mount {path}")
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise


def remove(name: str) -> bool:
    """Unmount and unlink /run/netns/<name>; the namespace dies when its last user goes. Idempotent."""
    path = netns_path(name)
    if not os.path.lexists(path):
        return False
    ret = _libc.umount2(path.encode(), MNT_DETACH)
    if ret != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point (half-made) - just unlink
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        # umount said "not a mount point" yet the name is one: its mount lies under a mount of /run/netns
        # over itself (the first `ip netns add` on a machine makes one), out of reach by path until reboot.
        raise OSError(errno.EBUSY, f"{path}: its namespace mount is hidden under a later mount of "
                                   f"{NETNS_RUN_DIR} over itself (`ip netns add` makes one the first time it "
                                   "runs); it cannot be removed by name until the machine restarts") from None
    return True


def list_names(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def pids_in(name: str) -> list[int]:
    """Processes whose network namespace is `name` (by inode), for cleanup after a crash."""
    try:
        target = os.stat(netns_path(name))
    except FileNotFoundError:
        return []
    return pids_by_netns().get((target.st_ino, target.st_dev), [])


def pids_in_all(names: list[str]) -> set[int]:
    """Processes in any of the named namespaces, from one /proc walk (a walk per name made `down` of a
    10,000-pod cluster stat every process ten thousand times)."""
    wanted = {i for i in (identity(n) for n in names) if i is not None}
    if not wanted:
        return set()
    return {pid for key, pids in pids_by_netns().items() if key in wanted for pid in pids}


def pids_by_netns() -> dict[tuple[int, int], list[int]]:
    """Every process by its network namespace's (inode, device): one /proc walk for many namespaces."""
    out: dict[tuple[int, int], list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        out.setdefault((st.st_ino, st.st_dev), []).append(int(entry))
    return out


def identity(name: str) -> tuple[int, int] | None:
    """(inode, device) of a named namespace, None when it is gone."""
    try:
        st = os.stat(netns_path(name))
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_dev
