"""Throwaway namespaces for workload and probe tests, always removed, also when a test fails.

Imported by the conftest of tests/integration/workload and tests/integration/probe (made importable there).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest


@dataclass
class NetPair:
    """Client netns `a` and server netns `b` joined by a veth pair on 10.250.<x>.0/24."""

    a: str
    b: str
    ip_a: str
    ip_b: str
    subnet: int


def make_pair(kernel, made: list[str]) -> NetPair:
    tag = secrets.token_hex(3)
    x = secrets.randbelow(200) + 20
    pair = NetPair(f"netsim-twl{tag}-a", f"netsim-twl{tag}-b", f"10.250.{x}.1", f"10.250.{x}.2", x)
    for ns in (pair.a, pair.b):
        kernel.netns_create(ns)
        made.append(ns)
    kernel.veth_add(pair.a, "eth0", pair.b, "eth0")
    kernel.addr_add(pair.a, "eth0", f"{pair.ip_a}/24")
    kernel.addr_add(pair.b, "eth0", f"{pair.ip_b}/24")
    return pair


@pytest.fixture
def made_namespaces(kernel):
    """Names appended here are deleted at teardown, whatever happened."""
    made: list[str] = []
    yield made
    for ns in made:
        kernel.netns_delete(ns)


@pytest.fixture
def netpair(kernel, made_namespaces) -> NetPair:
    return make_pair(kernel, made_namespaces)


@pytest.fixture
def workload(kernel):
    from netsim.workload.server import WorkloadServer
    srv = WorkloadServer(kernel)
    srv.start()
    yield srv
    srv.stop()


@dataclass
class Hub:
    """Client netns `hub` with bridge br0 (10.250.<x>.1/24) and pod namespaces on it (.10, .11, ...)."""

    hub: str
    hub_ip: str
    pods: list[tuple[str, str]]  # (netns, ip)


def make_hub(kernel, made: list[str], n_pods: int) -> Hub:
    tag = secrets.token_hex(3)
    x = secrets.randbelow(200) + 20
    hub = f"netsim-twl{tag}-hub"
    kernel.netns_create(hub)
    made.append(hub)
    kernel.bridge_add(hub, "br0")
    kernel.addr_add(hub, "br0", f"10.250.{x}.1/24")
    pods = []
    for i in range(n_pods):
        ns, ip = f"netsim-twl{tag}-p{i}", f"10.250.{x}.{10 + i}"
        kernel.netns_create(ns)
        made.append(ns)
        kernel.veth_add(ns, "eth0", hub, f"v{i}")
        kernel.link_set(hub, f"v{i}", master="br0")
        kernel.addr_add(ns, "eth0", f"{ip}/24")
        pods.append((ns, ip))
    return Hub(hub, f"10.250.{x}.1", pods)
