"""Kernel layer: the only code that talks to the kernel.

`api.Kernel` is the interface; `linux.LinuxKernel` implements it with netlink (pyroute2) and in-process
namespace handling; `fake.FakeKernel` records calls and keeps an in-memory model for unit tests.
"""

from netsim.kernel.api import Kernel, KernelError, Link, Route

__all__ = ["Kernel", "KernelError", "Link", "Route"]
