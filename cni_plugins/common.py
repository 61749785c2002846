"""Helpers every netsim plugin shares: where a plugin runs (cluster, node), names, MACs, locks, files.

A plugin learns its cluster and node from the `netsim` key of the network config
(`{"cluster": "demo", "node": "node-1", "stateDir": "/run/netsim/demo"}`; unknown keys pass through per the
spec). When that key is absent (a hand-written config run by `cnitool`), it falls back to the network
namespace it runs in: kubelet execs the plugin inside the node netns `netsim-<c>-node-<node>`, and we find
that name by comparing /proc/self/ns/net with the inodes under /run/netns.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cni_plugins.types import ERR_INVALID_CONFIG, CniError
from netsim import naming

NETNS_DIR = "/run/netns"
STATE_ROOT = "/run/netsim"


@dataclass(frozen=True)
class NodeContext:
    """Which node of which cluster a plugin or daemon acts for, and where that node's files live."""

    cluster: str
    node: str
    state_dir: str  # the cluster's state dir, /run/netsim/<c>

    @property
    def node_ns(self) -> str:
        return node_netns(self.cluster, self.node)

    @property
    def node_dir(self) -> Path:
        return Path(self.state_dir) / "nodes" / self.node


def node_netns(cluster: str, node: str) -> str:
    return naming.node_ns(cluster, node)


def parse_node_netns(name: str) -> tuple[str, str] | None:
    """(cluster, node) from `netsim-<c>.node.<node>` (netsim.naming), or None for any other name."""
    parsed = naming.parse(name)
    if parsed is None or parsed.role != naming.NODE or parsed.hashed:
        return None
    return parsed.cluster, parsed.part


def current_netns_name(netns_dir: str = NETNS_DIR) -> str | None:
    """The /run/netns name of the namespace this process is in (same inode), or None."""
    try:
        mine = os.stat("/proc/self/ns/net")
        names = sorted(os.listdir(netns_dir))
    except OSError:
        return None
    for name in names:
        try:
            st = os.stat(os.path.join(netns_dir, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            return name
    return None


def node_context(conf: dict[str, Any], *, netns_dir: str = NETNS_DIR) -> NodeContext:
    """Resolve the node a request is for: the `netsim` config key first, then the current netns."""
    meta = conf.get("netsim")
    if isinstance(meta, dict) and meta.get("cluster") and meta.get("node"):
        cluster, node = str(meta["cluster"]), str(meta["node"])
        return NodeContext(cluster, node, str(meta.get("stateDir") or f"{STATE_ROOT}/{cluster}"))
    if meta is not None and not isinstance(meta, dict):
        raise CniError(ERR_INVALID_CONFIG, "config key 'netsim' must be an object",
                       '{"cluster": ..., "node": ..., "stateDir": ...}')
    name = current_netns_name(netns_dir)
    parsed = parse_node_netns(name) if name else None
    if parsed is None:
        raise CniError(ERR_INVALID_CONFIG, "cannot tell which netsim node this plugin runs for",
                       "set the 'netsim' key {cluster, node} in the network config, or run the plugin "
                       "inside a node netns netsim-<cluster>.node.<node>")
    cluster, node = parsed
    return NodeContext(cluster, node, f"{STATE_ROOT}/{cluster}")


# --- deterministic names and MACs -----------------------------------------------------------------

def hexdigest(algo: str, text: str) -> str:
    return hashlib.new(algo, text.encode()).hexdigest()


def local_mac(seed: str) -> str:
    """A locally administered unicast MAC derived from `seed` (stable across restarts).

    Same bit rule as flannel's random VTEP MAC (flannel `pkg/mac/mac.go`: first octet & 0xfe | 0x02), but
    from a hash instead of randomness, so a restarted daemon finds the MAC peers already programmed.
    """
    raw = bytearray(hashlib.sha256(seed.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


# --- files ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed). Serialises threads and processes alike,
    since every entry opens its own file description."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write by rename so a concurrent reader never sees half a file; 0600: the state is root's alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def kernel_factory(conf: dict[str, Any]):
    """The exec path's kernel: the real one, imported lazily so VERSION and error paths need no root."""
    from netsim.kernel.linux import LinuxKernel

    return LinuxKernel()
