"""host-local IPAM with the reference plugin's on-disk layout.

Behaviour read from containernetworking/plugins `plugins/ipam/host-local/` (main.go, backend/allocator/
{allocator.go,range.go,range_set.go,config.go}, backend/disk/backend.go):

* store `<dataDir>/<network name>/`: one file per reserved IP, named by the IP, holding
  `<containerID>\\r\\n<ifname>`; `last_reserved_ip.<rangeSetIndex>`; a `lock` file taken with flock around
  every read-modify-write, so concurrent ADDs (threads or processes) never hand out one IP twice;
* `ranges: [[{subnet, rangeStart, rangeEnd, gateway}]]`: one IP per outer element (a range set), a pool
  per inner list; legacy top-level `subnet`/`rangeStart`/`rangeEnd`/`gateway` is one range;
* defaults: gateway = network+1, rangeStart = network+1, rangeEnd = broadcast-1; the gateway is never
  handed out; /31 and /32 and subnets with host bits are rejected;
* allocation resumes after the last reserved IP, wraps round, and visits every address once;
* a specific IP can be asked for with runtimeConfig `ips`, `args.cni.ips` or CNI_ARGS `IP=a,b`;
* DEL releases by (containerID, ifname) and falls back to the container ID alone for files written by
  old versions that held only the ID; GC frees every reservation not in `cni.dev/valid-attachments`.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cni_plugins.common import flocked
from cni_plugins.skel import Invocation, plugin_main
from cni_plugins.types import (
    DNS,
    ERR_CHECK_FAILED,
    ERR_EXHAUSTED,
    ERR_INVALID_CONFIG,
    CniError,
    IPConfig,
    Result,
    RouteConfig,
)

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LINE_BREAK = "\r\n"
LAST_IP_PREFIX = "last_reserved_ip."
IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network


@dataclass(frozen=True)
class Range:
    """One pool: `subnet` with the allocatable window [start, end] and its gateway."""

    subnet: Net4
    start: IPv4
    end: IPv4
    gateway: IPv4

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, IPv4) and self.start <= ip <= self.end

    @classmethod
    def parse(cls, data: dict[str, Any], where: str) -> Range:
        """Canonicalise one range the way range.go Canonicalize does; CniError(7) names the field."""
        if not isinstance(data, dict) or "subnet" not in data:
            raise CniError(ERR_INVALID_CONFIG, f"{where}: a range needs a 'subnet'")
        try:
            iface = ipaddress.ip_interface(str(data["subnet"]))
        except ValueError as exc:
            raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: invalid CIDR {data['subnet']!r}") from exc
        if iface.version != 4:
            raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: only IPv4 is supported here")
        net = iface.network
        if iface.ip != net.network_address:
            raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: network {data['subnet']} has host bits set")
        if net.prefixlen > 30:
            raise CniError(ERR_INVALID_CONFIG, f"{where}.subnet: network {net} too small to allocate from")

        def addr(key: str, default: IPv4) -> IPv4:
            if not data.get(key):
                return default
            try:
                ip = ipaddress.IPv4Address(str(data[key]))
            except ValueError as exc:
                raise CniError(ERR_INVALID_CONFIG, f"{where}.{key}: invalid IP {data[key]!r}") from exc
            if key != "gateway" and ip not in net:
                raise CniError(ERR_INVALID_CONFIG, f"{where}.{key}: {ip} not in network {net}")
            return ip

        start = addr("rangeStart", net.network_address + 1)
        end = addr("rangeEnd", net.broadcast_address - 1)
        if start > end:
            raise CniError(ERR_INVALID_CONFIG, f"{where}: rangeStart {start} is after rangeEnd {end}")
        return cls(net, start, end, addr("gateway", net.network_address + 1))

    def to_dict(self) -> dict[str, str]:
        return {"subnet": str(self.subnet), "rangeStart": str(self.start), "rangeEnd": str(self.end),
                "gateway": str(self.gateway)}


@dataclass
class HostLocalConfig:
    """The `ipam` section of a network config, canonicalised."""

    network: str
    range_sets: list[list[Range]]
    routes: list[RouteConfig] = field(default_factory=list)
    data_dir: str = DEFAULT_DATA_DIR
    dns: DNS = field(default_factory=DNS)

    @property
    def dir(self) -> Path:
        return Path(self.data_dir) / self.network

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> HostLocalConfig:
        ipam = conf.get("ipam")
        if not isinstance(ipam, dict):
            raise CniError(ERR_INVALID_CONFIG, "IPAM config missing 'ipam' key")
        raw_sets = ipam.get("ranges")
        # runtimeConfig.ipRanges (capability) overrides configured ranges (host-local config.go).
        runtime_ranges = (conf.get("runtimeConfig") or {}).get("ipRanges")
        if runtime_ranges:
            raw_sets = runtime_ranges
        if not raw_sets and ipam.get("subnet"):
            raw_sets = [[{k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in ipam}]]
        if not raw_sets or not isinstance(raw_sets, list):
            raise CniError(ERR_INVALID_CONFIG, "no IP ranges specified", "ipam.ranges is empty")
        sets: list[list[Range]] = []
        for i, raw in enumerate(raw_sets):
            if not isinstance(raw, list) or not raw:
                raise CniError(ERR_INVALID_CONFIG, f"ipam.ranges[{i}] must be a non-empty list of ranges")
            rs = [Range.parse(r, f"ipam.ranges[{i}][{j}]") for j, r in enumerate(raw)]
            for a_i, a in enumerate(rs):
                for b in rs[a_i + 1:]:
                    if a.start <= b.end and b.start <= a.end:
                        raise CniError(ERR_INVALID_CONFIG, f"ipam.ranges[{i}]: ranges {a.subnet} and "
                                       f"{b.subnet} overlap")
            sets.append(rs)
        routes = []
        for i, r in enumerate(ipam.get("routes") or []):
            if not isinstance(r, dict) or "dst" not in r:
                raise CniError(ERR_INVALID_CONFIG, f"ipam.routes[{i}] needs 'dst'")
            routes.append(RouteConfig(str(r["dst"]), r.get("gw")))
        name = conf.get("name") or ""
        return cls(network=name, range_sets=sets, routes=routes,
                   data_dir=str(ipam.get("dataDir") or DEFAULT_DATA_DIR), dns=DNS.from_dict(conf.get("dns")))


class Store:
    """The disk backend: IP-named files under one directory, guarded by the `lock` file."""

    def __init__(self, directory: Path):
        self.dir = directory

    def lock(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        return flocked(self.dir / "lock")

    def _ip_names(self) -> list[str]:
        """Names of the reservation files. Only they start with a digit (the others are `lock`,
        `last_reserved_ip.N` and dot-files), so no address parsing is needed to tell them apart."""
        try:
            return [n for n in os.listdir(self.dir) if n[:1].isdigit()]
        except FileNotFoundError:
            return []

    def _held(self) -> Iterator[tuple[str, str, str]]:
        """(file name, container ID, ifname) of every reservation file. os-level reads relative to one
        directory descriptor: this walk runs on every ADD (GetByID), and resolving each file's full path
        again costs a third of the walk."""
        try:
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        try:
            for name in self._ip_names():
                try:
                    fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
                except FileNotFoundError:
                    continue
                try:
                    text = os.read(fd, 4096).decode(errors="replace")
                finally:
                    os.close(fd)
                cid, _, ifname = text.partition(LINE_BREAK)
                yield name, cid.strip(), ifname.strip()
        finally:
            os.close(dfd)

    def _entries(self) -> Iterator[tuple[IPv4, str, str]]:
        for name, cid, ifname in self._held():
            try:
                ip = ipaddress.IPv4Address(name)
            except ValueError:
                continue
            yield ip, cid, ifname

    def reserved_count(self) -> int:
        return len(self._ip_names())

    def allocations(self) -> dict[IPv4, tuple[str, str]]:
        return {ip: (cid, ifname) for ip, cid, ifname in self._entries()}

    def is_reserved(self, ip: IPv4) -> bool:
        return (self.dir / str(ip)).exists()

    def reserve(self, ip: IPv4, cid: str, ifname: str, range_set: int) -> bool:
        """Create the IP's file exclusively; False if someone holds it. Records last_reserved_ip."""
        try:
            fd = os.open(self.dir / str(ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{cid}{LINE_BREAK}{ifname}")
        # Rewritten in place, as disk/backend.go does (os.WriteFile): every reader and writer holds the
        # store lock, and a rename over an existing file costs a forced data flush on ext4 (~1 ms per ADD).
        # Not truncated to zero first either: on ext4 (auto_da_alloc) a file truncated to zero and written
        # again is flushed when closed, 0.5-1.3 ms per ADD on this machine's /run; writing over the old
        # text and cutting it to the new length leaves the same content for ~15 us. A torn file only makes
        # the next walk start from the range start.
        text = str(ip).encode()
        fd = os.open(self.dir / f"{LAST_IP_PREFIX}{range_set}", os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
        finally:
            os.close(fd)
        return True

    def last_reserved(self, range_set: int) -> IPv4 | None:
        try:
            return ipaddress.IPv4Address((self.dir / f"{LAST_IP_PREFIX}{range_set}").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def get_by_id(self, cid: str, ifname: str) -> list[IPv4]:
        out = []
        for name, held_cid, held_if in self._held():
            if held_cid == cid and (held_if == ifname or not held_if):
                try:
                    out.append(ipaddress.IPv4Address(name))
                except ValueError:
                    continue
        return sorted(out)

    def release_by_id(self, cid: str, ifname: str) -> list[IPv4]:
        gone = self.get_by_id(cid, ifname)
        for ip in gone:
            (self.dir / str(ip)).unlink(missing_ok=True)
        return gone

    def release_ip(self, ip: IPv4) -> None:
        (self.dir / str(ip)).unlink(missing_ok=True)


def _iterate(range_set: list[Range], last: IPv4 | None) -> Iterator[tuple[IPv4, Range]]:
    """Every address of the set once, starting after `last` (range_set.go / allocator.go GetIter).

    Computed arithmetically so a /16 range costs nothing up front."""
    spans = [(int(r.start), int(r.end) - int(r.start) + 1, r) for r in range_set]
    total = sum(n for _, n, _ in spans)
    begin = 0
    if last is not None:
        offset = 0
        for start, n, _ in spans:
            if start <= int(last) < start + n:
                begin = offset + int(last) - start + 1
                break
            offset += n
    for k in range(total):
        pos = (begin + k) % total
        for start, n, r in spans:
            if pos < n:
                yield IPv4(start + pos), r
                break
            pos -= n


def requested_ips(inv_conf: dict[str, Any], cni_args: dict[str, str]) -> list[IPv4]:
    """Static IP requests: runtimeConfig.ips, args.cni.ips, CNI_ARGS IP= (host-local main.go)."""
    raw: list[str] = []
    raw += list((inv_conf.get("runtimeConfig") or {}).get("ips") or [])
    raw += list(((inv_conf.get("args") or {}).get("cni") or {}).get("ips") or [])
    if cni_args.get("IP"):
        raw += cni_args["IP"].split(",")
    out = []
    for item in raw:
        try:
            out.append(ipaddress.ip_interface(str(item).strip()).ip)
        except ValueError as exc:
            raise CniError(ERR_INVALID_CONFIG, f"invalid requested IP {item!r}") from exc
    return out


def allocate(cfg: HostLocalConfig, cid: str, ifname: str, requested: list[IPv4] | None = None) -> Result:
    """Reserve one IP per range set for (cid, ifname); the IPAM result (no interfaces)."""
    store = Store(cfg.dir)
    wanted = list(requested or [])
    result = Result(routes=list(cfg.routes), dns=cfg.dns)
    with store.lock():
        existing = store.get_by_id(cid, ifname)
        taken: list[IPv4] = []
        try:
            for idx, rs in enumerate(cfg.range_sets):
                for ip in existing:
                    if any(ip in r for r in rs):
                        raise CniError(ERR_INVALID_CONFIG, f"{ip} has been allocated to {cid}, duplicate "
                                       "allocation is not allowed")
                ip, rng = _allocate_one(store, rs, idx, cid, ifname, wanted)
                taken.append(ip)
                result.ips.append(IPConfig(f"{ip}/{rng.subnet.prefixlen}", str(rng.gateway)))
            if wanted:
                raise CniError(ERR_INVALID_CONFIG, f"could not allocate IP {', '.join(map(str, wanted))}",
                               "no configured range contains it")
        except CniError:
            for ip in taken:
                store.release_ip(ip)
            raise
    return result


def _allocate_one(store: Store, rs: list[Range], idx: int, cid: str, ifname: str,
                  wanted: list[IPv4]) -> tuple[IPv4, Range]:
    for ip in list(wanted):
        rng = next((r for r in rs if ip in r), None)
        if rng is None:
            continue
        wanted.remove(ip)
        if ip == rng.gateway or not store.reserve(ip, cid, ifname, idx):
            raise CniError(ERR_INVALID_CONFIG, f"requested IP address {ip} is not available in range set "
                           f"{_describe(rs)}")
        return ip, rng
    for ip, rng in _iterate(rs, store.last_reserved(idx)):
        if ip == rng.gateway:
            continue
        if store.reserve(ip, cid, ifname, idx):
            return ip, rng
    raise CniError(ERR_EXHAUSTED, f"no IP addresses available in range set: {_describe(rs)}")


def _describe(rs: list[Range]) -> str:
    return ",".join(f"{r.start}-{r.end}" for r in rs)


def release(cfg: HostLocalConfig, cid: str, ifname: str) -> list[IPv4]:
    """Free what (cid, ifname) holds; releasing nothing is fine (DEL must be idempotent)."""
    store = Store(cfg.dir)
    if not store.dir.is_dir():
        return []
    with store.lock():
        return store.release_by_id(cid, ifname)


def check(cfg: HostLocalConfig, cid: str, ifname: str) -> list[IPv4]:
    """CHECK: the attachment must still hold an IP in every range set."""
    store = Store(cfg.dir)
    held = store.get_by_id(cid, ifname)
    for idx, rs in enumerate(cfg.range_sets):
        if not any(any(ip in r for r in rs) for ip in held):
            raise CniError(ERR_CHECK_FAILED, f"host-local: no IP reserved for {cid}/{ifname} in range set {idx}")
    return held


def gc(cfg: HostLocalConfig, valid: list[dict[str, str]]) -> list[IPv4]:
    """Free every reservation whose attachment is not in `cni.dev/valid-attachments`."""
    keep = {(a.get("containerID", ""), a.get("ifname", "")) for a in valid if isinstance(a, dict)}
    keep_ids = {cid for cid, _ in keep}
    store = Store(cfg.dir)
    if not store.dir.is_dir():
        return []
    freed = []
    with store.lock():
        for ip, (cid, ifname) in store.allocations().items():
            if (cid, ifname) in keep or (not ifname and cid in keep_ids):
                continue
            store.release_ip(ip)
            freed.append(ip)
    return sorted(freed)


def count(cfg: HostLocalConfig) -> int:
    """Number of reserved IPs (one per attachment): used to refuse pods past a bridge's port limit."""
    return Store(cfg.dir).reserved_count()  # names only: no need to read every file on each ADD


class HostLocal:
    """host-local as a standalone (delegated) IPAM plugin: ADD prints the IPAM result."""

    name = "netsim-host-local"

    def validate(self, conf: dict[str, Any]) -> None:
        HostLocalConfig.from_conf(conf)

    def add(self, inv: Invocation) -> Result:
        cfg = HostLocalConfig.from_conf(inv.conf)
        return allocate(cfg, inv.args.container_id, inv.args.ifname, requested_ips(inv.conf, inv.args.args))

    def delete(self, inv: Invocation) -> None:
        release(HostLocalConfig.from_conf(inv.conf), inv.args.container_id, inv.args.ifname)

    def check(self, inv: Invocation) -> None:
        check(HostLocalConfig.from_conf(inv.conf), inv.args.container_id, inv.args.ifname)

    def gc(self, inv: Invocation) -> None:
        gc(HostLocalConfig.from_conf(inv.conf), inv.conf.get("cni.dev/valid-attachments") or [])

    def status(self, inv: Invocation) -> None:
        """Ready whenever the config parses: the store directory is created on demand."""


PLUGIN = HostLocal()


def main() -> None:
    """Console script `netsim-host-local`: a delegated IPAM plugin, needs no kernel at all."""
    plugin_main(PLUGIN, lambda conf: None)  # type: ignore[arg-type,return-value]


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
