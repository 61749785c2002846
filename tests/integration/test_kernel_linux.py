"""LinuxKernel on the real kernel: the synchronous netlink path and the dump behaviours callers rely on."""

from __future__ import annotations

import errno
import threading
from concurrent.futures import ThreadPoolExecutor

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
    kernel.run(a, ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
    kernel.link_set(a, "v0", mtu=1234)  # the stale index would be ENODEV; the layer looks it up again
    assert kernel.link_get(a, "v0").mtu == 1234


def test_veth_pair_in_one_request_up_and_enslaved(kernel, two_ns):
    a, b = two_ns
    kernel.bridge_add(a, "br0")
    kernel.veth_add(a, "h1", b, "eth1", mtu=1450, mac="02:00:00:00:01:01", peer_mac="02:00:00:00:01:02",
                    master="br0")
    host, pod = kernel.link_get(a, "h1"), kernel.link_get(b, "eth1")
    assert (host.kind, host.master, host.up, host.mtu, host.mac) == ("veth", "br0", True, 1450, "02:00:00:00:01:01")
    assert (pod.kind, pod.master, pod.up, pod.mtu, pod.mac) == ("veth", None, True, 1450, "02:00:00:00:01:02")
    assert "LOWER_UP" in kernel.run(b, ["ip", "-o", "link", "show", "eth1"]).stdout  # carrier: both ends up
    kernel.veth_add(a, "h2", b, "eth2", up=False)
    assert not kernel.link_get(a, "h2").up and not kernel.link_get(b, "eth2").up
    kernel.veth_add(a, "h3", a, "h4")  # both ends in one namespace
    assert kernel.link_get(a, "h3").up and kernel.link_get(a, "h4").up
    with pytest.raises(KernelError) as exc:
        kernel.veth_add(a, "h1", b, "eth9")
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(KernelError):
        kernel.veth_add(a, "h5", b, "eth5", master="nope")
    assert kernel.link_get(a, "h5") is None


def test_hairpin_and_address_dump(kernel, two_ns):
    a, b = two_ns
    kernel.bridge_add(a, "br0")
    kernel.link_set(a, "v0", master="br0", up=True)
    kernel.brport_set(a, "v0", hairpin=True)
    assert "hairpin on" in kernel.run(a, ["ip", "-d", "link", "show", "v0"]).stdout
    kernel.brport_set(a, "v0", hairpin=False)
    assert "hairpin off" in kernel.run(a, ["ip", "-d", "link", "show", "v0"]).stdout
    kernel.addr_add(a, "br0", "10.66.0.1/24")
    kernel.addr_add(a, "v0", "10.67.0.1/32")
    assert kernel.addrs(a, "br0") == [("br0", "10.66.0.1/24")]
    assert sorted(kernel.addrs(a)) == [("br0", "10.66.0.1/24"), ("lo", "127.0.0.1/8"), ("v0", "10.67.0.1/32")]


def test_batch_runs_its_calls_on_the_kernel_thread(kernel, two_ns):
    a, _ = two_ns

    def work() -> tuple[str, bool]:
        kernel.link_set(a, "v0", up=True)  # inline: a hop to the kernel thread from here would deadlock
        return threading.current_thread().name, kernel.link_get(a, "v0").up
    assert kernel.batch(work) == ("netsim-kernel", True)


def test_link_del_from_many_threads_and_from_a_batch(kernel, two_ns):
    a, b = two_ns
    for i in range(8):
        kernel.veth_add(a, f"d{i}", b, f"p{i}")
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda i: kernel.link_del(a, f"d{i}"), range(8))) == [True] * 8
    assert not {f"d{i}" for i in range(8)} & {link.name for link in kernel.links(a)}
    assert not {f"p{i}" for i in range(8)} & {link.name for link in kernel.links(b)}  # the peers went too
    assert kernel.link_del(a, "d0") is False
    kernel.veth_add(a, "d9", b, "p9")
    assert kernel.batch(lambda: kernel.link_del(a, "d9")) is True  # the kernel thread may wait for it
    with pytest.raises(KernelError) as exc:
        kernel.link_del("netsim-no-such-ns", "x")
    assert exc.value.errno == errno.ENOENT


def test_deletes_say_whether_something_went(kernel, two_ns):
    a, b = two_ns
    kernel.neigh_replace(b, "eth0", "10.77.0.9", "02:00:00:00:00:09")
    assert kernel.neigh_del(b, "eth0", "10.77.0.9") is True
    assert kernel.neigh_del(b, "eth0", "10.77.0.9") is False
    kernel.neigh_proxy_add(b, "eth0", "10.77.0.10")
    assert kernel.neigh_proxy_del(b, "eth0", "10.77.0.10") is True
    assert kernel.neigh_proxy_del(b, "eth0", "10.77.0.10") is False
    route = Route(dst="10.55.0.0/16", dev="eth0", scope="link")
    kernel.route_replace(b, route)
    assert kernel.route_del(b, route) is True
    assert kernel.route_del(b, route) is False
    assert kernel.fdb_del(a, "v0", "02:00:00:00:00:77", "172.16.0.9") is False


def test_many_namespaces_go_at_once_and_their_names_are_free_again(kernel):
    """netns_delete_many (what `down` uses): every namespace and its links gone, the sockets kept for them
    dropped, and the names usable again straight away (the kernel frees the rest asynchronously)."""
    tag = unique_name("km")
    node = f"netsim-{tag}-node"
    pods = [f"netsim-{tag}-p{i}" for i in range(40)]
    kernel.netns_create(node)
    try:
        for i, p in enumerate(pods):
            kernel.netns_create(p)
            kernel.veth_add(node, f"v{i}", p, "eth0")
            kernel.addr_add(p, "eth0", f"10.78.0.{i + 2}/24")
        kernel.netns_delete_many(pods + ["netsim-" + tag + "-absent"])
        assert kernel.netns_list(f"netsim-{tag}-p") == []
        assert not any(n in kernel._fast or n in kernel._socks for n in pods)
        assert not [k for k in kernel._index if k[0] in pods]
        kernel.netns_create(pods[0])
        kernel.veth_add(node, "w0", pods[0], "eth0")  # (the old v0 goes when the kernel's cleanup runs)
    finally:
        kernel.netns_delete_many([pods[0], node])
    assert not kernel.netns_exists(node)


def test_many_namespaces_go_with_one_task_per_helper_thread_not_one_per_name(kernel, monkeypatch):
    """netns_delete_many hands its helper threads one task each, which take the next name themselves: a
    future per namespace cost the caller ~0.1 ms each, a second of a 10,000-pod `down`."""
    from netsim.kernel.linux import UNLINK_WORKERS
    tag = unique_name("kt")
    pods = [f"netsim-{tag}-p{i}" for i in range(3 * UNLINK_WORKERS)]
    submits = []
    real_submit = kernel._unlinker.submit
    monkeypatch.setattr(kernel._unlinker, "submit", lambda *a, **kw: submits.append(1) or real_submit(*a, **kw))
    try:
        for p in pods:
            kernel.netns_create(p)
        kernel.netns_delete_many(pods)
        assert kernel.netns_list(f"netsim-{tag}-") == []
        assert len(submits) <= UNLINK_WORKERS
    finally:
        for p in pods:
            kernel.netns_delete(p)


def test_the_kernel_layer_lifts_its_descriptor_limit_as_far_as_it_may():
    """A daemon serving 20,000 pods holds more descriptors than the 20,000 a container may start with. Started
    with a soft limit of 512 under a hard one of 1024, a LinuxKernel ends at fs.nr_open when it may raise
    its hard limit (CAP_SYS_RESOURCE, as root normally has), else at its hard limit (1024)."""
    import resource
    import subprocess
    import sys

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 1024))

    out = subprocess.run([sys.executable, "-c", (
        "import resource; from netsim.kernel.linux import LinuxKernel; k = LinuxKernel(); "
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE)); k.close()")],
        preexec_fn=low, capture_output=True, text=True, timeout=60, check=True).stdout.split()
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    with open("/proc/self/status") as f:
        cap_eff = int(next(line.split()[1] for line in f if line.startswith("CapEff:")), 16)
    may_raise = bool(cap_eff & (1 << 24))  # CAP_SYS_RESOURCE
    assert out == [str(nr_open if may_raise else 1024)] * 2, (out, may_raise)
