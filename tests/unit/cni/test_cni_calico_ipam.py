"""Calico-style block IPAM: FNV seed, deterministic start block, affinity, new blocks, borrowing, GC."""

from __future__ import annotations

import ipaddress
import json
import threading
from pathlib import Path

import pytest

from cni_plugins.ipam import calico_ipam
from cni_plugins.ipam.calico_ipam import CalicoIpam, block_order, fnv1_32
from cni_plugins.types import CniError


def test_fnv1_matches_go_hash_fnv_new32():
    # Known FNV-1 32-bit vectors (offset basis for "", and for "a").
    assert fnv1_32(b"") == 0x811C9DC5
    assert fnv1_32(b"a") == 0x050C5D7E
    assert fnv1_32(b"foobar") == 0x31F0B262


def test_start_block_is_deterministic_per_node_and_not_pool_base():
    order_a = block_order("10.244.0.0/16", 26, "node-a")
    assert order_a == block_order("10.244.0.0/16", 26, "node-a")
    assert len(order_a) == 1024 and len(set(order_a)) == 1024
    firsts = {block_order("10.244.0.0/16", 26, f"node-{i}")[0] for i in range(10)}
    assert len(firsts) > 5  # different names spread over the pool
    assert firsts != {ipaddress.IPv4Network("10.244.0.0/26")}
    # the walk wraps round the pool from the start index
    idx = list(ipaddress.IPv4Network("10.244.0.0/16").subnets(new_prefix=26)).index(order_a[0])
    assert order_a[1] == list(ipaddress.IPv4Network("10.244.0.0/16").subnets(new_prefix=26))[(idx + 1) % 1024]


def test_first_address_comes_from_the_nodes_block(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.244.0.0/16")
    ip, block = ipam.auto_assign("node-a", "net.c1")
    assert block == str(block_order("10.244.0.0/16", 26, "node-a")[0])
    assert ipaddress.IPv4Address(ip) == ipaddress.IPv4Network(block).network_address  # ordinal 0 first
    assert ipam.blocks() == {block: "node-a"}
    assert ipam.auto_assign("node-a", "net.c1") == (ip, block)  # same handle -> same address
    ip2, block2 = ipam.auto_assign("node-a", "net.c2")
    assert block2 == block and ip2 != ip


def test_node_takes_another_block_when_full(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.0.0.0/24", block_size=29)  # 32 blocks of 8
    blocks = {ipam.auto_assign("n1", f"h{i}")[1] for i in range(9)}
    assert len(blocks) == 2
    assert sorted(ipam.blocks_of("n1")) == sorted(blocks)
    other = ipam.auto_assign("n2", "x")[1]
    assert other not in blocks


def test_release_returns_address_to_the_back(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.0.0.0/24", block_size=29)
    first, block = ipam.auto_assign("n1", "h1")
    assert ipam.release_by_handle("h1") == [first]
    assert ipam.release_by_handle("h1") == []
    again, _ = ipam.auto_assign("n1", "h2")
    assert again != first  # freed ordinal went to the end of the free list
    assert ipam.blocks_of("n1") == [block]  # block stays affine


def test_borrow_then_exhaustion(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.0.0.0/28", block_size=29)  # two blocks of 8
    for i in range(8):
        ipam.auto_assign("n1", f"a{i}")
    ipam.auto_assign("n2", "b0")
    for i in range(7):  # n3 finds no free block: borrows from n2's block
        ipam.auto_assign("n3", f"c{i}", {"node": "n3"})
    assert ipam.blocks_of("n3") == []
    with pytest.raises(CniError) as exc:
        ipam.auto_assign("n3", "last")
    assert exc.value.code == 100


def test_gc_and_store_mismatch(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.0.0.0/24", block_size=29)
    for h in ("k8s.keep", "k8s.drop", "vxlan-tunnel-addr-n1"):
        ipam.auto_assign("n1", h)
    freed = ipam.gc({"k8s.keep"}, "k8s.")
    assert len(freed) == 1
    assert sorted(a.handle for a in ipam.allocations()) == ["k8s.keep", "vxlan-tunnel-addr-n1"]
    with pytest.raises(CniError) as exc:
        CalicoIpam(tmp_path, "10.1.0.0/24", block_size=29).allocations()
    assert exc.value.code == 7
    with pytest.raises(CniError):
        CalicoIpam(tmp_path, "10.0.0.0/24", block_size=20)


def test_concurrent_assignments_are_unique(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.244.0.0/16")
    got: list[str] = []

    def worker(node: str, i: int) -> None:
        got.append(ipam.auto_assign(node, f"{node}.{i}")[0])

    threads = [threading.Thread(target=worker, args=(f"n{i % 3}", i)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 60 == len(set(got))
    assert len(ipam.blocks()) == 3


def _io_bytes(monkeypatch) -> list[int]:
    """Bytes the IPAM reads and writes from now on (every document goes through Path.read_text and
    write_atomic)."""
    seen = [0]
    real_read, real_write = Path.read_text, calico_ipam.write_atomic

    def read(self, *a, **kw):
        text = real_read(self, *a, **kw)
        seen[0] += len(text)
        return text

    def write(path, text, *a, **kw):
        seen[0] += len(text)
        return real_write(path, text, *a, **kw)
    monkeypatch.setattr(Path, "read_text", read)
    monkeypatch.setattr(calico_ipam, "write_atomic", write)
    return seen


def test_an_address_costs_the_same_whatever_the_size_of_the_cluster(tmp_path, monkeypatch):
    """One ADD's and one DEL's IPAM work is a block and a handle (upstream assignFromExistingBlock: one
    block read and CAS-written, the handle incremented), not the whole pool: with 30 pods on each node, the
    bytes read and written for one more pod are the same on 2 nodes as on 10 (60 and 300 addresses; the
    one-file store read and wrote 5x more on 10)."""
    seen = _io_bytes(monkeypatch)
    costs = []
    for nodes in (2, 10):
        ipam = CalicoIpam(tmp_path / str(nodes), "10.244.0.0/16")
        for i in range(30 * nodes):
            node = f"node-{i % nodes}"
            ipam.auto_assign(node, f"k8s-pod-network.{i}", {"node": node, "pod": f"web-{i}"})
        seen[0] = 0
        ipam.auto_assign("node-1", "k8s-pod-network.probe", {"node": "node-1", "pod": "probe"})
        ipam.release_by_handle("k8s-pod-network.probe")
        costs.append(seen[0])
    assert costs[1] <= costs[0] * 1.2, costs


def test_routing_reads_only_blocks_tunnels_and_borrowed_addresses(tmp_path):
    ipam = CalicoIpam(tmp_path, "10.0.0.0/28", block_size=29)  # two blocks of 8
    b1 = ipam.claim_block("n1")
    tunnel, _ = ipam.auto_assign("n1", "vxlan-tunnel-addr-n1", {"node": "n1", "type": "vxlanTunnelAddress"})
    for i in range(7):
        ipam.auto_assign("n1", f"pod{i}", {"node": "n1"})
    b2 = ipam.claim_block("n2")
    borrowed, block = ipam.auto_assign("n3", "pod-on-n3", {"node": "n3"})  # no block left: borrows n2's
    assert block == b2
    blocks, noted = ipam.routing()
    assert blocks == {b1: "n1", b2: "n2"}
    assert [(a.ip, a.handle) for a in noted] == sorted([(tunnel, "vxlan-tunnel-addr-n1"),
                                                        (borrowed, "pod-on-n3")])
    ipam.release_by_handle("pod-on-n3")
    assert [a.handle for a in ipam.routing()[1]] == ["vxlan-tunnel-addr-n1"]


def test_a_store_in_the_one_file_form_is_converted(tmp_path):
    """Clusters made before the per-block layout kept every block in one `ipam.json`."""
    legacy = {"pool": "10.0.0.0/24", "blockSize": 29, "blocks": {
        "10.0.0.8/29": {"affinity": "host:n1", "unallocated": [2, 3, 4, 5, 6, 7, 0],
                        "allocations": {"1": {"handle": "k8s.a", "attrs": {"node": "n1"}}}}}}
    (tmp_path / "ipam.json").write_text(json.dumps(legacy))
    ipam = CalicoIpam(tmp_path, "10.0.0.0/24", block_size=29)
    assert [(a.ip, a.handle) for a in ipam.allocations()] == [("10.0.0.9", "k8s.a")]
    assert not (tmp_path / "ipam.json").exists()
    assert ipam.auto_assign("n1", "k8s.b") == ("10.0.0.10", "10.0.0.8/29")  # the free list's order kept
    assert ipam.release_by_handle("k8s.a") == ["10.0.0.9"]
