"""Exec a CNI plugin the way a container runtime does: env + stdin in, result JSON or an error object out.

This is the runtime side of the protocol that `skel.run_exec` implements for our own plugins, so the kubelet
can drive third-party executables (the reference `bridge` + `host-local`) and our console scripts alike.
Behaviour after containernetworking/cni `pkg/invoke/`:
* `args.go` (Args.AsEnv): the plugin gets the runtime's environment plus CNI_COMMAND, CNI_CONTAINERID,
  CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH (`:`-joined);
* `find.go` (FindInPath): the executable is the config's `type`, looked up in the CNI_PATH directories;
* `raw_exec.go` (ExecPlugin / pluginErr): the config goes on stdin; on a non-zero exit, stdout is decoded
  as the spec's error object `{cniVersion, code, msg, details}`, and when it is not one the error says
  "netplugin failed" with the plugin's stderr. DEL/CHECK print nothing on success.

Plugins run in the runtime's netns: for netsim that is the node's netns, so the process is started inside
it with `Kernel.run(node_ns, ...)` (a bridge the plugin creates lands in the node, never in the root netns).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cni_plugins.types import ERR_INTERNAL, ERR_INVALID_CONFIG, CniArgs, CniError
from netsim.kernel.api import Kernel, KernelError

DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def find_plugin(cni_type: str, cni_path: Sequence[str]) -> str:
    """The executable for a CNI `type` in the CNI_PATH directories (FindInPath); CniError if absent."""
    if not cni_type or "/" in cni_type:
        raise CniError(ERR_INVALID_CONFIG, f"invalid plugin type {cni_type!r}")
    for directory in cni_path:
        candidate = os.path.join(directory, cni_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(ERR_INVALID_CONFIG, f'failed to find plugin "{cni_type}" in path {list(cni_path)}')


def cni_env(command: str, args: CniArgs, cni_path: Sequence[str],
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a plugin runs with: `base` (default: a plain PATH) plus the CNI_* variables."""
    env = dict(base) if base is not None else {"PATH": BASE_PATH}
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": args.container_id,
        "CNI_NETNS": args.netns,
        "CNI_IFNAME": args.ifname,
        "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args.args.items()),
        "CNI_PATH": ":".join(cni_path),
    })
    return env


def decode_output(returncode: int, stdout: str, stderr: str, what: str) -> dict[str, Any]:
    """A plugin's answer: the result dict ({} when it printed nothing), or CniError from its error object."""
    text = (stdout or "").strip()
    if returncode != 0:
        try:
            err = json.loads(text)
        except ValueError:
            err = None
        if isinstance(err, dict) and isinstance(err.get("code"), int):
            raise CniError(err["code"], str(err.get("msg", "")), str(err.get("details", "")))
        raise CniError(ERR_INTERNAL, f"netplugin failed: {what} exited {returncode}",
                       (stderr or text or "").strip())
    if not text:
        return {}
    try:
        out = json.loads(text)
    except ValueError as exc:
        raise CniError(ERR_INTERNAL, f"{what}: output is not JSON", text[:200]) from exc
    if not isinstance(out, dict):
        raise CniError(ERR_INTERNAL, f"{what}: output is not a JSON object", text[:200])
    return out


def exec_plugin(kernel: Kernel, node_ns: str, command: str, args: CniArgs, conf: dict[str, Any], *,
                cni_path: Sequence[str] = DEFAULT_CNI_PATH, base_env: Mapping[str, str] | None = None,
                timeout: float = 30) -> dict[str, Any]:
    """Run the plugin named by `conf["type"]` for one command inside `node_ns`.

    Returns the ADD result dict, {} for DEL/CHECK/GC/STATUS, the VERSION answer; raises CniError with the
    plugin's own code when it reports an error, or code 999 when it failed without an error object.
    `args.path` (if set) wins over `cni_path`, as CNI_PATH is per invocation.
    """
    path = tuple(args.path) or tuple(cni_path)
    exe = find_plugin(str(conf.get("type", "")), path)
    env = cni_env(command.upper(), args, path, base_env)
    try:
        proc = kernel.run(node_ns, [exe], input=json.dumps(conf), env=env, check=False, timeout=timeout)
    except KernelError as exc:
        raise CniError(ERR_INTERNAL, f"netplugin failed: {exe} {command}", str(exc)) from exc
    return decode_output(proc.returncode, proc.stdout, proc.stderr, f"{os.path.basename(exe)} {command}")
