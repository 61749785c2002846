"""A NETLINK_NETFILTER listener inside a namespace, shared by trace's nftrace and ctnetlink event readers.

Messages are packed and unpacked by the one netlink codec, `netsim.kernel.nlcodec`.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from netsim.kernel.api import Kernel
from netsim.netns_sockets import open_in_netns

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1


class NfnetlinkListener:
    """A NETLINK_NETFILTER socket opened inside `ns` and joined to multicast `groups`.

    Opened on the kernel thread (the socket belongs to the namespace it was created in) and read from
    any thread afterwards. The kernel queues messages until read, so callers open the listener before
    the traffic and read afterwards; a full buffer is remembered in `overrun`.
    """

    def __init__(self, kernel: Kernel, ns: str, groups: Iterable[int], *, what: str, rcvbuf: int = 4 << 20):
        self.ns = ns
        self.overrun = False
        groups = list(groups)

        def _setup(s: socket.socket) -> None:
            s.bind((0, 0))
            for group in groups:
                s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self._sock = open_in_netns(kernel, ns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER,
                                   rcvbuf=rcvbuf, setup=_setup, what=f"listen for {what}")

    def fileno(self) -> int:
        return self._sock.fileno()

    def datagrams(self) -> list[bytes]:
        """Everything queued now, without blocking."""
        out = []
        while True:
            try:
                out.append(self._sock.recv(1 << 16))
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overrun = True

    def close(self) -> None:
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
