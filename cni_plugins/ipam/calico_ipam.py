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

Store: a cluster-wide directory (e.g. /run/netsim/<c>/calico-ipam/), laid out as calico's datastore keeps
IPAM, one document per object, so an address costs the same whatever the size of the cluster:
* `blocks/<10-244-1-0-26>.json`: one allocation block (IPAMBlock: affinity, free ordinals, allocations);
* `handles/<handle>.json`: which blocks hold a handle's addresses (IPAMHandle `spec.block`, cidr -> count);
* `index.json`: the pool, the block affinities (BlockAffinity, cidr -> node) and the "noted" allocations
  that routing depends on: tunnel addresses (attribute `type`, upstream AttributeTypeVXLAN...) and borrowed
  addresses (the allocation's node is not its block's). It changes when a block is claimed or such an
  address comes or goes, not per pod, which is what felix's route resolver needs to watch.
`ipam.go` assignFromExistingBlock reads one block, assigns, increments the handle and writes the block
back (compare-and-swap); releaseByHandle reads the handle and then only its blocks. Here every public method
holds one flock (`lock`) over its read-modify-write instead of a CAS per document, so concurrent ADDs on
any node never collide; the work under it is a few documents of at most a block each. (Before, one
`ipam.json` held every block and was read and rewritten whole per ADD: ~10 ms an ADD at 2,000 pods and
growing with the cluster, see benchmarks/README.md.) A store in that old form is converted on first use.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import re
from collections.abc import Callable, Iterator
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
    def index_file(self) -> Path:
        """The document routing depends on (affinities, noted allocations): see the module docstring."""
        return self.dir / "index.json"

    def _block_file(self, cidr: str) -> Path:
        return self.dir / "blocks" / (cidr.replace(".", "-").replace("/", "-") + ".json")

    def _handle_file(self, handle: str) -> Path:
        name = handle if _SAFE_NAME.fullmatch(handle) else "h-" + hashlib.sha256(handle.encode()).hexdigest()
        return self.dir / "handles" / (name + ".json")

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    @staticmethod
    def _write(path: Path, doc: Any) -> None:
        # Compact on purpose: `indent` switches json to its pure-Python encoder.
        write_atomic(path, json.dumps(doc, sort_keys=True, separators=(",", ":")))

    def _index(self) -> dict[str, Any]:
        """The index, created (or converted from the one-file store) on first use; the pool must match."""
        data = self._read(self.index_file)
        if data is None:
            data = self._convert_legacy()
        if data is None:
            data = {"pool": self.pool, "blockSize": self.block_size, "blocks": {}, "noted": {}}
            self._write(self.index_file, data)
        if data["pool"] != self.pool or data["blockSize"] != self.block_size:
            raise CniError(ERR_INVALID_CONFIG, f"IPAM store {self.dir} holds pool {data['pool']}/"
                           f"{data['blockSize']}, not {self.pool}/{self.block_size}")
        return data

    def _convert_legacy(self) -> dict[str, Any] | None:
        """A store written as one `ipam.json` (every block in one document): split it into the layout above,
        then remove it. Runs under the lock, once."""
        legacy = self.dir / "ipam.json"
        old = self._read(legacy)
        if old is None:
            return None
        index = {"pool": old.get("pool", self.pool), "blockSize": old.get("blockSize", self.block_size),
                 "blocks": {}, "noted": {}}
        handles: dict[str, dict[str, int]] = {}
        for cidr, block in (old.get("blocks") or {}).items():
            self._write(self._block_file(cidr), {"cidr": cidr, **block})
            index["blocks"][cidr] = _node_of(block)
            for ordinal, alloc in block["allocations"].items():
                counts = handles.setdefault(alloc["handle"], {})
                counts[cidr] = counts.get(cidr, 0) + 1
                self._note(index, cidr, int(ordinal), alloc)
        for handle, counts in handles.items():
            self._write(self._handle_file(handle), {"handle": handle, "blocks": counts})
        self._write(self.index_file, index)
        legacy.unlink()
        return index

    def _locked(self):
        return flocked(self.dir / "lock")

    # -- blocks ------------------------------------------------------------------------------------
    def _new_block(self, cidr: ipaddress.IPv4Network, node: str) -> dict[str, Any]:
        return {"cidr": str(cidr), "affinity": f"host:{node}", "unallocated": list(range(cidr.num_addresses)),
                "allocations": {}}

    def _block(self, index: dict[str, Any], cidr: str) -> dict[str, Any]:
        """A claimed block's document; a claim whose block was never written (the affinity is written first,
        as upstream claimAffineBlock creates the BlockAffinity before the block) gets an empty one."""
        block = self._read(self._block_file(cidr))
        return block if block is not None else self._new_block(ipaddress.IPv4Network(cidr), index["blocks"][cidr])

    def _blocks_of(self, index: dict[str, Any], node: str) -> list[str]:
        return sorted((c for c, n in index["blocks"].items() if n == node), key=lambda c: ipaddress.IPv4Network(c))

    def _note(self, index: dict[str, Any], cidr: str, ordinal: int, alloc: dict[str, Any]) -> bool:
        """Record an allocation routing depends on (a typed address, or one borrowed from another node's
        block) in the index; returns whether it was one."""
        attrs = alloc.get("attrs") or {}
        if not attrs.get("type") and not (attrs.get("node") and attrs["node"] != index["blocks"].get(cidr)):
            return False
        ip = str(ipaddress.IPv4Network(cidr).network_address + ordinal)
        index["noted"][ip] = {"block": cidr, "handle": alloc["handle"], "attrs": dict(attrs)}
        return True

    def _take(self, index: dict[str, Any], block: dict[str, Any], handle: str,
              attrs: dict[str, str]) -> tuple[str, bool]:
        """Assign the block's next free ordinal to `handle`: the handle document first, then the block
        (upstream incrementHandle before the block's CAS), so a crash between leaves at worst a handle
        that releases nothing. Returns (ip, whether the index must be written: a noted address)."""
        cidr = block["cidr"]
        ordinal = block["unallocated"].pop(0)
        alloc = {"handle": handle, "attrs": attrs}
        block["allocations"][str(ordinal)] = alloc
        self._write(self._handle_file(handle), {"handle": handle, "blocks": {cidr: 1}})
        self._write(self._block_file(cidr), block)
        noted = self._note(index, cidr, ordinal, alloc)
        return str(ipaddress.IPv4Network(cidr).network_address + ordinal), noted

    def auto_assign(self, node: str, handle: str, attrs: dict[str, str] | None = None) -> tuple[str, str]:
        """One IPv4 for `handle` on `node`: (ip, block cidr). Reuses the handle's address if it has one."""
        attrs = dict(attrs or {})
        with self._locked():
            index = self._index()
            existing = self._by_handle(index, handle)
            if existing:
                return existing[0].ip, existing[0].block
            block = next((b for b in (self._block(index, c) for c in self._blocks_of(index, node))
                          if b["unallocated"]), None)
            if block is None:
                block = self._claim(index, node)
                if block is not None:
                    self._write(self.index_file, index)  # the affinity first (upstream claimAffineBlock)
            if block is None:  # borrow from any block (non-strict affinity)
                block = next((b for b in (self._block(index, c) for c in sorted(index["blocks"]))
                              if b["unallocated"]), None)
            if block is None:
                raise CniError(ERR_EXHAUSTED, f"no free IP addresses in pool {self.pool}",
                               f"every /{self.block_size} block is claimed and full")
            ip, noted = self._take(index, block, handle, attrs)
            if noted:
                self._write(self.index_file, index)
            return ip, block["cidr"]

    def _claim(self, index: dict[str, Any], node: str) -> dict[str, Any] | None:
        """Claim the node's next block (in its seeded order) in the index; the caller writes the index."""
        for cidr in block_order(self.pool, self.block_size, node):
            if str(cidr) not in index["blocks"]:
                index["blocks"][str(cidr)] = node
                return self._new_block(cidr, node)
        return None

    def claim_block(self, node: str) -> str:
        """Make sure `node` owns at least one block (felix needs it for the blackhole route and tunnel IP)."""
        with self._locked():
            index = self._index()
            mine = self._blocks_of(index, node)
            if mine:
                return mine[0]
            block = self._claim(index, node)
            if block is None:
                raise CniError(ERR_EXHAUSTED, f"no free /{self.block_size} block left in pool {self.pool}")
            self._write(self.index_file, index)
            self._write(self._block_file(block["cidr"]), block)
            return block["cidr"]

    # -- queries -----------------------------------------------------------------------------------
    def _all_blocks(self, index: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for cidr in index["blocks"]:
            yield self._block(index, cidr)

    @staticmethod
    def _matching(blocks: Iterator[dict[str, Any]], handle_matches: Callable[[str], bool]) -> list[Allocation]:
        """Allocations whose handle matches; the test runs on the stored strings first."""
        out = []
        for block in blocks:
            base = None
            for ordinal, alloc in block["allocations"].items():
                if handle_matches(alloc["handle"]):
                    base = base or ipaddress.IPv4Network(block["cidr"]).network_address
                    out.append(Allocation(str(base + int(ordinal)), block["cidr"], alloc["handle"],
                                          dict(alloc.get("attrs") or {})))
        return out

    def _handle_blocks(self, index: dict[str, Any], handle: str) -> list[dict[str, Any]]:
        """The blocks the handle's document names (upstream IPAMHandle `spec.block`): only those are read."""
        doc = self._read(self._handle_file(handle))
        return [] if doc is None else [self._block(index, c) for c in doc["blocks"] if c in index["blocks"]]

    def _by_handle(self, index: dict[str, Any], handle: str) -> list[Allocation]:
        return self._matching(iter(self._handle_blocks(index, handle)), handle.__eq__)

    def allocations(self) -> list[Allocation]:
        """Every allocation of the pool (a walk over every block: for GC and tests, not per pod)."""
        with self._locked():
            found = self._matching(self._all_blocks(self._index()), lambda _: True)
        return sorted(found, key=lambda a: ipaddress.IPv4Address(a.ip))

    def by_handle(self, handle: str) -> list[Allocation]:
        with self._locked():
            return self._by_handle(self._index(), handle)

    def blocks(self) -> dict[str, str]:
        """Every claimed block -> the node it is affine to."""
        with self._locked():
            return dict(self._index()["blocks"])

    def blocks_of(self, node: str) -> list[str]:
        with self._locked():
            return self._blocks_of(self._index(), node)

    def routing(self) -> tuple[dict[str, str], list[Allocation]]:
        """What routing depends on, from the index alone in one read: every block -> its node, and the noted
        allocations (typed addresses such as a VXLAN tunnel's, and addresses borrowed from another node's
        block). Pod addresses in their own node's blocks are not in it: they change no route."""
        with self._locked():
            index = self._index()
        noted = [Allocation(ip, n["block"], n["handle"], dict(n["attrs"])) for ip, n in index["noted"].items()]
        return dict(index["blocks"]), sorted(noted, key=lambda a: ipaddress.IPv4Address(a.ip))

    def free_ordinals(self) -> dict[str, list[int]]:
        """Every block's free ordinals, in the order they will be handed out."""
        with self._locked():
            return {b["cidr"]: list(b["unallocated"]) for b in self._all_blocks(self._index())}

    # -- release -----------------------------------------------------------------------------------
    def release_by_handle(self, handle: str) -> list[str]:
        """Free what `handle` holds; nothing held is fine. Blocks stay affine (as calico keeps them)."""
        with self._locked():
            index = self._index()
            freed = self._release(index, iter(self._handle_blocks(index, handle)), handle.__eq__)
            self._handle_file(handle).unlink(missing_ok=True)
            return freed

    def _release(self, index: dict[str, Any], blocks: Iterator[dict[str, Any]],
                 handle_matches: Callable[[str], bool]) -> list[str]:
        """Free the matching allocations of `blocks`: each changed block is written back, then the index if
        a noted address went (upstream releaseFromBlock, then decrementHandle)."""
        freed: list[str] = []
        index_changed = False
        for block in blocks:
            gone = [o for o, a in block["allocations"].items() if handle_matches(a["handle"])]
            if not gone:
                continue
            base = ipaddress.IPv4Network(block["cidr"]).network_address
            for ordinal in gone:
                del block["allocations"][ordinal]
                block["unallocated"].append(int(ordinal))
                ip = str(base + int(ordinal))
                freed.append(ip)
                index_changed |= index["noted"].pop(ip, None) is not None
            self._write(self._block_file(block["cidr"]), block)
        if index_changed:
            self._write(self.index_file, index)
        return freed

    def gc(self, keep_handles: set[str], handle_prefix: str) -> list[str]:
        """Free allocations whose handle starts with `handle_prefix` and is not in `keep_handles`."""
        def drop(h: str) -> bool:
            return h.startswith(handle_prefix) and h not in keep_handles
        with self._locked():
            index = self._index()
            blocks = list(self._all_blocks(index))
            handles = {a["handle"] for b in blocks for a in b["allocations"].values() if drop(a["handle"])}
            freed = self._release(index, iter(blocks), drop)
            for h in handles:
                self._handle_file(h).unlink(missing_ok=True)
            return freed


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _node_of(block: dict[str, Any]) -> str:
    return str(block["affinity"]).split(":", 1)[1]
