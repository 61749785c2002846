"""Calico-style block IPAM: /26 blocks carved from the pool, each affine to one node.

Behaviour after projectcalico/calico `libcalico-go/lib/ipam/`:
* `ipam.go` autoAssign: a node first uses free addresses in blocks already affine to it, then claims a new
  block, and (no strict affinity, the default) finally borrows a free address from another node's block;
* `ipam_block_reader_writer.go` findUsableBlock / randomBlockGenerator: new blocks are searched from a
  pseudo-random start index seeded from the hostname (FNV-1 32-bit hash of the name, `determineSeed`), and
  the walk wraps round the pool; so which block a node gets is deterministic per node name, not "pool base
  first". (Go's math/rand stream is not reproduced bit for bit: we draw the start index with Python's
  Random seeded with the same FNV-1 hash. Same property, different numbers.)
* `ipam_block.go` newBlock/assign/release: a block's free ordinals are a list, taken from the front and
  returned to the back, so a freed address is not immediately reused.
* allocations are keyed by a handle (`<network>.<containerID>` for pods, as the calico CNI plugin's
  handle ID; `vxlan-tunnel-addr-<node>` for a node's VXLAN tunnel address).

Store: one JSON document `ipam.json` in a cluster-wide directory (e.g. /run/netsim/<c>/calico-ipam/),
read-modified-written under a flock on `lock`, so concurrent ADDs on any node never collide.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cni_plugins.common import flocked, write_atomic
from cni_plugins.types import ERR_EXHAUSTED, ERR_INVALID_CONFIG, CniError

DEFAULT_BLOCK_SIZE = 26


def fnv1_32(data: bytes) -> int:
    """FNV-1 (not 1a) 32-bit, as Go's hash/fnv New32 that calico seeds its block walk with."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def block_order(pool: str, block_size: int, node: str) -> list[ipaddress.IPv4Network]:
    """All blocks of the pool in the order `node` tries them: from a start index seeded by its name."""
    net = ipaddress.IPv4Network(pool)
    blocks = list(net.subnets(new_prefix=block_size))
    start = random.Random(fnv1_32(node.encode())).randrange(len(blocks))
    return blocks[start:] + blocks[:start]


@dataclass(frozen=True)
class Allocation:
    ip: str
    block: str
    handle: str
    attrs: dict[str, str]


class CalicoIpam:
    """The block store for one pool. Every public method takes the lock for its whole read-modify-write."""

    def __init__(self, directory: str | Path, pool: str = "10.244.0.0/16", block_size: int = DEFAULT_BLOCK_SIZE):
        try:
            net = ipaddress.IPv4Network(pool)
        except ValueError as exc:
            raise CniError(ERR_INVALID_CONFIG, f"invalid IP pool {pool!r}", str(exc)) from exc
        if not net.prefixlen <= block_size <= 32:
            raise CniError(ERR_INVALID_CONFIG, f"block size /{block_size} does not fit pool {pool}")
        self.dir = Path(directory)
        self.pool = str(net)
        self.block_size = block_size

    # -- persistence -------------------------------------------------------------------------------
    @property
    def _file(self) -> Path:
        return self.dir / "ipam.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._file.read_text())
        except FileNotFoundError:
            data = {}
        data.setdefault("pool", self.pool)
        data.setdefault("blockSize", self.block_size)
        if data["pool"] != self.pool or data["blockSize"] != self.block_size:
            raise CniError(ERR_INVALID_CONFIG, f"IPAM store {self._file} holds pool {data['pool']}/"
                           f"{data['blockSize']}, not {self.pool}/{self.block_size}")
        data.setdefault("blocks", {})
        return data

    def _save(self, data: dict[str, Any]) -> None:
        # Compact on purpose: `indent` switches json to its pure-Python encoder, ~1.5 ms per ADD/DEL.
        write_atomic(self._file, json.dumps(data, sort_keys=True, separators=(",", ":")))

    def _locked(self):
        return flocked(self.dir / "lock")

    # -- blocks ------------------------------------------------------------------------------------
    def _new_block(self, cidr: ipaddress.IPv4Network, node: str) -> dict[str, Any]:
        return {"affinity": f"host:{node}", "unallocated": list(range(cidr.num_addresses)), "allocations": {}}

    def _free_in(self, block: dict[str, Any]) -> bool:
        return bool(block["unallocated"])

    def _take(self, data: dict[str, Any], cidr: str, handle: str, attrs: dict[str, str]) -> str:
        block = data["blocks"][cidr]
        ordinal = block["unallocated"].pop(0)
        block["allocations"][str(ordinal)] = {"handle": handle, "attrs": attrs}
        return str(ipaddress.IPv4Network(cidr).network_address + ordinal)

    def _blocks_of(self, data: dict[str, Any], node: str) -> list[str]:
        return sorted((c for c, b in data["blocks"].items() if b["affinity"] == f"host:{node}"),
                      key=lambda c: ipaddress.IPv4Network(c))

    def auto_assign(self, node: str, handle: str, attrs: dict[str, str] | None = None) -> tuple[str, str]:
        """One IPv4 for `handle` on `node`: (ip, block cidr). Reuses the handle's address if it has one."""
        attrs = dict(attrs or {})
        with self._locked():
            data = self._load()
            existing = self._by_handle(data, handle)
            if existing:
                return existing[0].ip, existing[0].block
            cidr = next((c for c in self._blocks_of(data, node) if self._free_in(data["blocks"][c])), None)
            if cidr is None:
                cidr = self._claim(data, node)
            if cidr is None:  # borrow from any block (non-strict affinity)
                cidr = next((c for c, b in sorted(data["blocks"].items()) if self._free_in(b)), None)
            if cidr is None:
                raise CniError(ERR_EXHAUSTED, f"no free IP addresses in pool {self.pool}",
                               f"every /{self.block_size} block is claimed and full")
            ip = self._take(data, cidr, handle, attrs)
            self._save(data)
            return ip, cidr

    def _claim(self, data: dict[str, Any], node: str) -> str | None:
        for block in block_order(self.pool, self.block_size, node):
            if str(block) not in data["blocks"]:
                data["blocks"][str(block)] = self._new_block(block, node)
                return str(block)
        return None

    def claim_block(self, node: str) -> str:
        """Make sure `node` owns at least one block (felix needs it for the blackhole route and tunnel IP)."""
        with self._locked():
            data = self._load()
            mine = self._blocks_of(data, node)
            if mine:
                return mine[0]
            cidr = self._claim(data, node)
            if cidr is None:
                raise CniError(ERR_EXHAUSTED, f"no free /{self.block_size} block left in pool {self.pool}")
            self._save(data)
            return cidr

    # -- queries -----------------------------------------------------------------------------------
    def _matching(self, data: dict[str, Any], handle_matches: Callable[[str], bool]) -> list[Allocation]:
        """Allocations whose handle matches; the test runs on the stored strings first, so the per-ADD and
        per-DEL lookup does not build an address for every allocation of the cluster."""
        out = []
        for cidr, block in data["blocks"].items():
            base = None
            for ordinal, alloc in block["allocations"].items():
                if handle_matches(alloc["handle"]):
                    base = base or ipaddress.IPv4Network(cidr).network_address
                    out.append(Allocation(str(base + int(ordinal)), cidr, alloc["handle"],
                                          dict(alloc.get("attrs") or {})))
        return out

    def _by_handle(self, data: dict[str, Any], handle: str) -> list[Allocation]:
        return self._matching(data, handle.__eq__)

    def allocations(self) -> list[Allocation]:
        with self._locked():
            return sorted(self._matching(self._load(), lambda _: True), key=lambda a: ipaddress.IPv4Address(a.ip))

    def by_handle(self, handle: str) -> list[Allocation]:
        with self._locked():
            return self._by_handle(self._load(), handle)

    def blocks(self) -> dict[str, str]:
        """Every claimed block -> the node it is affine to."""
        with self._locked():
            data = self._load()
        return {c: b["affinity"].split(":", 1)[1] for c, b in data["blocks"].items()}

    def blocks_of(self, node: str) -> list[str]:
        with self._locked():
            return self._blocks_of(self._load(), node)

    # -- release -----------------------------------------------------------------------------------
    def release_by_handle(self, handle: str) -> list[str]:
        """Free what `handle` holds; nothing held is fine. Blocks stay affine (as calico keeps them)."""
        with self._locked():
            data = self._load()
            freed = self._release(data, handle.__eq__)
            if freed:
                self._save(data)
            return freed

    def _release(self, data: dict[str, Any], handle_matches: Callable[[str], bool]) -> list[str]:
        freed = []
        for alloc in self._matching(data, handle_matches):
            block = data["blocks"][alloc.block]
            ordinal = int(ipaddress.IPv4Address(alloc.ip)) - int(ipaddress.IPv4Network(alloc.block).network_address)
            del block["allocations"][str(ordinal)]
            block["unallocated"].append(ordinal)
            freed.append(alloc.ip)
        return freed

    def gc(self, keep_handles: set[str], handle_prefix: str) -> list[str]:
        """Free allocations whose handle starts with `handle_prefix` and is not in `keep_handles`."""
        with self._locked():
            data = self._load()
            freed = self._release(data, lambda h: h.startswith(handle_prefix) and h not in keep_handles)
            if freed:
                self._save(data)
            return freed
