"""The CNI exec protocol, and the same plugins called in process.

Exec path (what a container runtime does, SPEC.md section 2): the runtime sets CNI_COMMAND, CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH, writes the network config on stdin and reads a result (or an error
object with a non-zero exit) from stdout. `run_exec` does exactly that and is what every console script calls.

In-process path (netsim's kubelet fast path): `invoke(plugin, command, args, conf, kernel)` runs the same
plugin code on the same data types and returns the result dict; errors are raised as `CniError`.

Environment validation mirrors containernetworking/cni `pkg/skel/skel.go` (getCmdArgsFromEnv): which
variables each command needs, container-ID syntax, JSON decode errors (6), missing/invalid network name (7),
version negotiation (1), CHECK only from 0.4.0 and GC/STATUS only from 1.1.0.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from cni_plugins.types import (
    COMMANDS,
    CONTAINER_ID_RE,
    ERR_DECODE,
    ERR_INCOMPATIBLE_VERSION,
    ERR_INTERNAL,
    ERR_INVALID_CONFIG,
    ERR_INVALID_ENV,
    ERR_IO,
    ERR_UNKNOWN_CONTAINER,
    NETWORK_NAME_RE,
    SPEC_VERSION,
    SUPPORTED_VERSIONS,
    CniArgs,
    CniError,
    Result,
    check_version,
    parse_cni_args,
    version_result,
)
from netsim.kernel.api import Kernel, KernelError

# Which environment variables each command requires (skel.go getCmdArgsFromEnv; STATUS's CNI_PATH is
# optional per SPEC.md section 2).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}


@dataclass
class Invocation:
    """Everything one plugin call sees: the command, runtime args, the request config and the kernel."""

    command: str
    args: CniArgs
    conf: dict[str, Any]
    kernel: Kernel | None
    cni_version: str = SPEC_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> Kernel:
        if self.kernel is None:
            raise CniError(ERR_INTERNAL, "no kernel available for this command")
        return self.kernel

    @property
    def prev_result(self) -> Result | None:
        prev = self.conf.get("prevResult")
        return Result.from_dict(prev) if isinstance(prev, dict) else None


class Plugin(Protocol):
    """A CNI plugin as our skel drives it. `add` returns the result; the others return None or raise."""

    name: str

    def validate(self, conf: dict[str, Any]) -> None:
        """Raise CniError(7) (or 2 for an unsupported field) if the config cannot work."""

    def add(self, inv: Invocation) -> Result: ...

    def delete(self, inv: Invocation) -> None: ...

    def check(self, inv: Invocation) -> None: ...

    def gc(self, inv: Invocation) -> None: ...

    def status(self, inv: Invocation) -> None: ...


def _version_at_least(v: str, floor: str) -> bool:
    return tuple(int(p) for p in v.split(".")) >= tuple(int(p) for p in floor.split("."))


def validate_network_name(conf: dict[str, Any]) -> None:
    name = conf.get("name")
    if not name:
        raise CniError(ERR_INVALID_CONFIG, "missing network name")
    if not isinstance(name, str) or not NETWORK_NAME_RE.match(name):
        raise CniError(ERR_INVALID_CONFIG, "invalid characters found in network name", str(name))


def invoke(plugin: Plugin, command: str, args: CniArgs, conf: dict[str, Any], kernel: Kernel | None) -> dict:
    """Run one CNI command in process. Returns the result dict ({} for DEL/CHECK/GC/STATUS).

    Raises CniError exactly where the exec path would print an error object. Any other exception from the
    plugin (a kernel failure, a bug) becomes CniError(999) so callers handle one type.
    """
    command = command.upper()
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, f"unknown CNI_COMMAND: {command}")
    if command == "VERSION":
        return version_result(conf.get("cniVersion", SPEC_VERSION) if conf else SPEC_VERSION)
    validate_network_name(conf)
    version = check_version(conf)
    if command == "CHECK" and not _version_at_least(version, "0.4.0"):
        raise CniError(ERR_INCOMPATIBLE_VERSION, "config version does not allow CHECK")
    if command in ("GC", "STATUS") and not _version_at_least(version, "1.1.0"):
        raise CniError(ERR_INCOMPATIBLE_VERSION, f"config version does not allow {command}")
    if command in ("ADD", "CHECK", "DEL") and args.container_id and not CONTAINER_ID_RE.match(args.container_id):
        raise CniError(ERR_INVALID_ENV, "invalid characters in containerID", args.container_id)
    plugin.validate(conf)
    inv = Invocation(command, args, conf, kernel, version)

    def run() -> dict:
        if command == "ADD":
            result = plugin.add(inv)
            result.cni_version = version
            return result.to_dict()
        if command == "DEL":
            plugin.delete(inv)
        elif command == "CHECK":
            plugin.check(inv)
        elif command == "GC":
            plugin.gc(inv)
        elif command == "STATUS":
            plugin.status(inv)
        return {}

    try:
        # An ADD is one unit of kernel work: its dozen requests then cost no thread hand-off each. DEL and
        # GC are not batched: they delete links, which waits on the kernel for tens of milliseconds, and
        # concurrent DELs should overlap those waits rather than queue behind each other.
        if kernel is not None and command in ("ADD", "CHECK", "STATUS"):
            return kernel.batch(run)
        return run()
    except CniError:
        raise
    except KernelError as exc:
        raise CniError(ERR_INTERNAL, f"{plugin.name} {command}: kernel operation failed", str(exc)) from exc
    except OSError as exc:
        raise CniError(ERR_IO, f"{plugin.name} {command}: I/O failure", str(exc)) from exc
    except Exception as exc:  # as the docstring promises: callers handle one exception type
        raise CniError(ERR_INTERNAL, f"{plugin.name} {command}: {type(exc).__name__}", str(exc)) from exc


def args_from_env(env: Mapping[str, str]) -> tuple[str, CniArgs]:
    """Read and validate the CNI_* variables; CniError(4) names every missing one."""
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(ERR_INVALID_ENV, "required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, f"unknown CNI_COMMAND: {command}")
    missing = [name for name in _REQUIRED[command] if not env.get(name)]
    if missing:
        raise CniError(ERR_INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    cid = env.get("CNI_CONTAINERID", "")
    if command in ("ADD", "CHECK", "DEL"):
        if not cid:
            raise CniError(ERR_UNKNOWN_CONTAINER, "missing containerID")
        if not CONTAINER_ID_RE.match(cid):
            raise CniError(ERR_INVALID_ENV, "invalid characters in containerID", cid)
    path = tuple(p for p in env.get("CNI_PATH", "").split(":") if p)
    return command, CniArgs(container_id=cid, netns=env.get("CNI_NETNS", ""), ifname=env.get("CNI_IFNAME", ""),
                            args=parse_cni_args(env.get("CNI_ARGS", "")), path=path)


def decode_config(data: bytes | str) -> dict[str, Any]:
    try:
        conf = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(ERR_DECODE, f"error unmarshalling network config: {exc}") from exc
    if not isinstance(conf, dict):
        raise CniError(ERR_DECODE, "error unmarshalling network config: not a JSON object")
    return conf


def run_exec(plugin: Plugin, env: Mapping[str, str], stdin: IO[bytes] | bytes,
             kernel_factory: Callable[[dict[str, Any]], Kernel], stdout: IO[str] | None = None) -> int:
    """The exec protocol: env + stdin in, JSON on stdout, exit status out.

    `kernel_factory(conf)` is called only for commands that touch the kernel, so VERSION and every
    validation error work without root and without pyroute2.
    """
    out = stdout or sys.stdout
    version = SPEC_VERSION
    kernel: Kernel | None = None
    try:
        command, args = args_from_env(env)
        if command == "VERSION":
            # skel.go ignores stdin for VERSION except to echo the asked version.
            raw = stdin if isinstance(stdin, bytes) else stdin.read()
            asked = SPEC_VERSION
            try:
                asked = json.loads(raw or b"{}").get("cniVersion", SPEC_VERSION)
            except (ValueError, AttributeError):
                pass
            out.write(json.dumps(version_result(asked if asked in SUPPORTED_VERSIONS else SPEC_VERSION)) + "\n")
            return 0
        try:
            raw = stdin if isinstance(stdin, bytes) else stdin.read()
        except OSError as exc:
            raise CniError(ERR_IO, f"error reading from stdin: {exc}") from exc
        conf = decode_config(raw)
        if isinstance(conf.get("cniVersion"), str):
            version = conf["cniVersion"]
        validate_network_name(conf)
        check_version(conf)
        plugin.validate(conf)
        kernel = kernel_factory(conf)
        result = invoke(plugin, command, args, conf, kernel)
        if command == "ADD":
            out.write(json.dumps(result) + "\n")
        return 0
    except CniError as err:
        out.write(json.dumps(err.to_dict(version if version in SUPPORTED_VERSIONS else SPEC_VERSION)) + "\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - the protocol wants every failure as an error object
        out.write(json.dumps(CniError(ERR_INTERNAL, f"{type(exc).__name__}: {exc}").to_dict(version)) + "\n")
        return 1
    finally:
        close = getattr(kernel, "close", None)
        if close is not None:
            close()


def plugin_main(plugin: Plugin, kernel_factory: Callable[[dict[str, Any]], Kernel]) -> None:
    """Console-script body: run the protocol on this process's env/stdin/stdout and exit."""
    if not os.environ.get("CNI_COMMAND"):
        # skel.go prints an "about" line on stderr and exits 0 when called without a command.
        print(f"netsim CNI plugin {plugin.name}\nCNI protocol versions supported: "
              f"{', '.join(SUPPORTED_VERSIONS)}", file=sys.stderr)
        sys.exit(0)
    sys.exit(run_exec(plugin, os.environ, sys.stdin.buffer, kernel_factory))
