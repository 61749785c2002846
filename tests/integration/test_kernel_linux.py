"""LinuxKernel on the real kernel: the synchronous netlink path and the dump behaviours callers rely on."""

from __future__ import annotations

import errno

import pytest

from netsim.kernel.api import KernelError, Route
from tests.conftest import unique_name

pytestmark = pytest.mark.root


@pytest.fixture
def two_ns(kernel):
    a, b = f"netsim-{unique_name('k')}-a", f"netsim-{unique_name('k')}-b"
    kernel.netns_create(a)
    kernel.netns_create(b)
    try:
        kernel.veth_add(a, "v0", b, "eth0", mtu=1400, peer_mac="02:00:00:00:00:42")
        yield a, b
    finally:
        kernel.netns_delete(a)
        kernel.netns_delete(b)


def test_new_namespace_has_loopback_up_and_no_pyroute2_socket(kernel, two_ns):
    _, b = two_ns
    assert kernel.link_get(b, "lo").up
    assert b not in kernel._socks  # pod namespaces are served by the plain netlink socket only


def test_fast_requests_do_what_they_say(kernel, two_ns):
    a, b = two_ns
    kernel.bridge_add(a, "br0")
    kernel.link_set(a, "v0", master="br0", mtu=1300)
    link = kernel.link_get(a, "v0")
    assert (link.master, link.mtu, link.up) == ("br0", 1300, True)
    kernel.link_set(a, "v0", nomaster=True)
    assert kernel.link_get(a, "v0").master is None
    kernel.addr_add(b, "eth0", "10.77.0.2/24")
    kernel.addr_add(b, "eth0", "10.77.0.2/24")  # idempotent
    assert ("eth0", "10.77.0.2/24") in kernel.addrs(b, "eth0")
    kernel.route_replace(b, Route(dst="10.88.0.0/16", via="10.77.0.1", dev="eth0"))
    kernel.route_replace(b, Route(dst="10.99.0.0/24", kind="blackhole", proto=80))
    kernel.route_replace(b, Route(dst="169.254.1.1/32", dev="eth0", scope="link"))
    routes = {r.dst: r for r in kernel.routes(b)}
    assert routes["10.88.0.0/16"].via == "10.77.0.1" and routes["10.88.0.0/16"].proto == 4
    assert routes["10.99.0.0/24"].kind == "blackhole" and routes["10.99.0.0/24"].proto == 80
    assert routes["169.254.1.1/32"].scope == "link"
    with pytest.raises(KernelError) as exc:
        kernel.route_add(b, Route(dst="10.88.0.0/16", via="10.77.0.1", dev="eth0"))
    assert exc.value.errno == errno.EEXIST
    kernel.neigh_replace(b, "eth0", "10.77.0.1", "ee:ee:ee:ee:ee:ee", permanent=True)
    assert [(n.ip, n.mac, n.permanent) for n in kernel.neighs(b, "eth0")] == [("10.77.0.1", "ee:ee:ee:ee:ee:ee", True)]
    with pytest.raises(KernelError) as exc:
        kernel.link_set(b, "nope", up=True)
    assert exc.value.errno == errno.ENODEV


def test_dumps_skip_interfaces_that_vanish(kernel, two_ns):
    a, _ = two_ns
    # An index that no longer names an interface (as when a pod's veth is deleted mid-dump) resolves to
    # None rather than failing the whole dump.
    assert kernel._do(lambda: kernel._name_of(kernel._ipr(a), 999_999)) is None


def test_cached_index_is_refreshed_when_a_link_is_recreated(kernel, two_ns):
    a, b = two_ns
    kernel.link_set(a, "v0", up=True)  # caches v0's index
    kernel.run(a, ["ip", "link", "del", "v0"])  # behind the layer's back: its cached index goes stale
    assert (a, "v0") in kernel._index
    kernel.veth_add(a, "v0", b, "eth1")
    kernel.link_set(a, "v0", mtu=1234)  # the stale index would be ENODEV; the layer looks it up again
    assert kernel.link_get(a, "v0").mtu == 1234
