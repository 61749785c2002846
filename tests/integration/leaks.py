"""What a deleted pod sandbox may leave behind, looked up on the kernel: its netns mount, its /etc/netns
entry, processes inside it, and sockets of another process (the daemon) that live in it. A socket keeps its
network namespace alive after the namespace's mount is gone, so a leaked one is invisible to `ip netns`;
it is found by duplicating the process's socket descriptors (pidfd_getfd) and asking each for its namespace
(the SIOCGSKNS ioctl)."""

from __future__ import annotations

import ctypes
import fcntl
import os

SYS_PIDFD_GETFD = 438  # x86_64 and the generic syscall table alike
SIOCGSKNS = 0x894C
_libc = ctypes.CDLL(None, use_errno=True)


def netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


class HeldNetns:
    """An open reference to a namespace about to be deleted: while it is held its inode cannot be given to
    a new namespace (nsfs reuses freed numbers at once), so `inode` names this namespace and no other."""

    def __init__(self, name: str):
        self.fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        self.inode = os.fstat(self.fd).st_ino

    def close(self) -> None:
        os.close(self.fd)


def sockets_in_netns(pid: int, inode: int) -> int:
    """How many of `pid`'s sockets live in the network namespace with `inode`."""
    pidfd = os.pidfd_open(pid)
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    continue
            except OSError:
                continue
            mine = _libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            if mine < 0:
                continue
            try:
                ns = fcntl.ioctl(mine, SIOCGSKNS)
            except OSError:
                continue
            finally:
                os.close(mine)
            try:
                count += os.fstat(ns).st_ino == inode
            finally:
                os.close(ns)
    finally:
        os.close(pidfd)
    return count


def processes_in_netns(inode: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def etc_netns(name: str) -> bool:
    return os.path.exists(f"/etc/netns/{name}")
