"""CNI data types: runtime arguments, results, errors and version constants.

Follows the CNI specification 1.0.0 / 1.1.0 (containernetworking/cni SPEC.md, sections 1-5). Results are
plain dataclasses that serialise to exactly the JSON shape the spec defines, so the same objects serve the
exec path (JSON on stdout) and the in-process path (`skel.invoke` returns the dict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = "1.0.0"
"""The version our plugins answer in when the request does not say otherwise."""

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

# Error codes reserved by the spec (SPEC.md "Error" section); >= 100 is plugin-specific.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50
ERR_NOT_AVAILABLE_LIMITED = 51
# Plugin-specific codes of our own.
ERR_EXHAUSTED = 100  # no free address / bridge port
ERR_EXISTS = 101  # the interface or attachment already exists
ERR_CHECK_FAILED = 102  # CHECK found the attachment different from what ADD made
ERR_INTERNAL = 999  # as libcni's ErrInternal: anything unexpected

# CNI_CONTAINERID: non-empty, starts alphanumeric, then alphanumerics, '_', '.', '-' (SPEC.md section 2).
CONTAINER_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
# Network names follow the same rule (SPEC.md section 1, `name`).
NETWORK_NAME_RE = CONTAINER_ID_RE

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")


class CniError(Exception):
    """An error a plugin reports: rendered as {cniVersion, code, msg, details} with a non-zero exit."""

    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(f"[{code}] {msg}" + (f": {details}" if details else ""))
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str = SPEC_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class CniArgs:
    """What the runtime passes in environment variables (one invocation).

    `netns` is the sandbox path (`/run/netns/<name>`); `args` the parsed CNI_ARGS pairs
    (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `IP`, ...); `path` the CNI_PATH directories.
    """

    container_id: str = ""
    netns: str = ""
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()

    @property
    def netns_name(self) -> str:
        """The namespace name the Kernel interface addresses: the basename of the sandbox path."""
        return self.netns.rstrip("/").rsplit("/", 1)[-1] if self.netns else ""

    @property
    def attachment(self) -> tuple[str, str]:
        """An attachment's identity per the spec: (container ID, interface name)."""
        return (self.container_id, self.ifname)


def parse_cni_args(raw: str) -> dict[str, str]:
    """Parse `K1=V1;K2=V2` (CNI_ARGS). Raises CniError(4) on a pair without '='."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(";"))):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(ERR_INVALID_ENV, "invalid CNI_ARGS", f"pair {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


@dataclass(frozen=True)
class NetConf:
    """The well-known keys of a per-invocation network config (SPEC.md section 3).

    Plugins keep working on the raw dict (unknown keys must pass through unchanged); this is the typed
    view of the keys the spec defines, for callers that build or inspect configs.
    """

    cni_version: str
    name: str
    type: str
    ipam: dict[str, Any] = field(default_factory=dict)
    dns: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    runtime_config: dict[str, Any] = field(default_factory=dict)
    prev_result: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConf:
        return cls(cni_version=str(data.get("cniVersion", SPEC_VERSION)), name=str(data.get("name", "")),
                   type=str(data.get("type", "")), ipam=dict(data.get("ipam") or {}),
                   dns=dict(data.get("dns") or {}), args=dict(data.get("args") or {}),
                   runtime_config=dict(data.get("runtimeConfig") or {}),
                   prev_result=data.get("prevResult"), raw=dict(data))


@dataclass
class Interface:
    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if self.mtu is not None:
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        return out


@dataclass
class IPConfig:
    address: str  # CIDR: "10.244.1.2/24"
    gateway: str | None = None
    interface: int | None = None  # index into Result.interfaces

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address}
        if self.gateway:
            out["gateway"] = self.gateway
        if self.interface is not None:
            out["interface"] = self.interface
        return out


@dataclass
class RouteConfig:
    dst: str
    gw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dst": self.dst}
        if self.gw:
            out["gw"] = self.gw
        return out


@dataclass
class DNS:
    nameservers: list[str] = field(default_factory=list)
    domain: str = ""
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DNS:
        data = data or {}
        return cls(list(data.get("nameservers") or []), data.get("domain") or "",
                   list(data.get("search") or []), list(data.get("options") or []))


@dataclass
class Result:
    """An ADD result (SPEC.md section 5). IPAM results leave `interfaces` empty and ips[].interface None."""

    cni_version: str = SPEC_VERSION
    interfaces: list[Interface] = field(default_factory=list)
    ips: list[IPConfig] = field(default_factory=list)
    routes: list[RouteConfig] = field(default_factory=list)
    dns: DNS = field(default_factory=DNS)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": self.cni_version}
        if self.interfaces:
            out["interfaces"] = [i.to_dict() for i in self.interfaces]
        ips = [i.to_dict() for i in self.ips]
        if _version_key(self.cni_version) < (1, 0, 0):
            # Before 1.0.0 every ips[] entry carried its IP version (SPEC.md history table).
            for ip in ips:
                ip["version"] = "6" if ":" in ip["address"] else "4"
        out["ips"] = ips
        if self.routes:
            out["routes"] = [r.to_dict() for r in self.routes]
        out["dns"] = self.dns.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(
            cni_version=data.get("cniVersion", SPEC_VERSION),
            interfaces=[Interface(i["name"], i.get("mac", ""), i.get("mtu"), i.get("sandbox", ""))
                        for i in data.get("interfaces") or []],
            ips=[IPConfig(i["address"], i.get("gateway"), i.get("interface")) for i in data.get("ips") or []],
            routes=[RouteConfig(r["dst"], r.get("gw")) for r in data.get("routes") or []],
            dns=DNS.from_dict(data.get("dns")),
        )


def version_result(cni_version: str = SPEC_VERSION) -> dict[str, Any]:
    """The VERSION command's answer."""
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def _version_key(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (-1,)


def check_version(conf: dict[str, Any]) -> str:
    """The request's cniVersion (default 1.0.0 when absent); CniError(1) if we do not support it.

    A list config may carry `cniVersions`; the highest one we support wins (SPEC.md section 1).
    """
    candidates = conf.get("cniVersions")
    if isinstance(candidates, list) and candidates:
        ok = [v for v in candidates if v in SUPPORTED_VERSIONS]
        if not ok:
            raise CniError(ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions",
                           f"config versions {candidates}, plugin supports {SUPPORTED_VERSIONS}")
        return max(ok, key=_version_key)
    version = conf.get("cniVersion", SPEC_VERSION)
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {SUPPORTED_VERSIONS}")
    return version
