"""A container's environment, command and args as the kubelet computes them (pure logic, no kernel).

Follows kubernetes pkg/kubelet/kubelet_pods.go makeEnvironmentVariables:
1. `envFrom` sources in order (configMapRef / secretRef, with `prefix`); a key that is not a valid
   environment variable name after the prefix is skipped, and the kubelet records one Warning event
   InvalidEnvironmentVariableNames naming the skipped keys (sorted); a missing object is an error unless
   the source is `optional`.
2. `env` in order: `value` is expanded with `$(VAR)` against what is defined so far plus the Service
   variables; `valueFrom` values (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef) are taken
   literally. A missing ConfigMap/Secret or key is an error unless `optional`.
3. the Service variables (getServiceEnvVarMap, honouring enableServiceLinks) for names not yet set.
An error keeps the container from being created: the kubelet reports it Waiting with reason
CreateContainerConfigError and the error as message ("configmap \"x\" not found", "couldn't find key k in
ConfigMap ns/x"), and retries on its next sync.

`$(VAR)` expansion is the kubelet's (third_party/forked/golang/expansion/expand.go Expand, MappingFuncFor):
`$$` is an escaped `$`, `$(NAME)` is replaced when NAME is defined and kept verbatim when not, an unclosed
`$(` and a `$` before any other character are kept. Command and args are expanded with the container's
final environment (pkg/kubelet/container/helpers.go ExpandContainerCommandAndArgs).

fieldRef paths are the ones the API server allows in env (pkg/apis/core/validation validEnvDownwardAPIFieldPathExpressions)
and kubelet_pods.go podFieldSelectorRuntimeValue resolves: metadata.name/namespace/uid,
metadata.labels['k'] / metadata.annotations['k'], spec.nodeName, spec.serviceAccountName,
status.hostIP(s), status.podIP(s) (the plural forms comma-joined). resourceFieldRef follows
pkg/api/v1/resource/helpers.go ExtractContainerResourceValue: limits (or requests) of cpu, memory,
ephemeral-storage divided by `divisor` and rounded up; a limit that is not set is the node's allocatable
(kubelet_resources.go containerResourceRuntimeValue defaults limits to it).
"""

from __future__ import annotations

import base64
import math
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from netsim.model.quantity import format_quantity, parse_quantity
from netsim.node.security import ContainerConfigError

# ------------------------------------------------------------------------------------------- expansion


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """third_party/forked/golang/expansion Expand: `$(VAR)` references resolved by `mapping`."""
    out: list[str] = []
    checkpoint = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] == "$" and i + 1 < n:
            out.append(text[checkpoint:i])
            nxt = text[i + 1]
            if nxt == "$":  # escaped: one literal '$'
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", i + 2)
                if close == -1:  # unterminated: "$(" kept, scanning goes on after it
                    out.append("$(")
                    advance = 1
                else:
                    out.append(mapping(text[i + 2:close]))
                    advance = close - i
            else:  # '$' before anything else: both kept
                out.append("$" + nxt)
                advance = 1
            i += advance
            checkpoint = i + 1
        i += 1
    if checkpoint == 0:
        return text
    return "".join(out) + text[checkpoint:]


def mapping_for(*maps: Mapping[str, str]) -> Callable[[str], str]:
    """MappingFuncFor: the first map holding the name wins; an undefined name stays `$(name)`."""
    def lookup(name: str) -> str:
        for m in maps:
            if name in m:
                return m[name]
        return f"$({name})"
    return lookup


def expand_command_and_args(container: Mapping[str, Any], env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """ExpandContainerCommandAndArgs: command and args with `$(VAR)` from the container's environment."""
    m = mapping_for(env)
    return ([expand(str(c), m) for c in container.get("command") or []],
            [expand(str(a), m) for a in container.get("args") or []])


# ------------------------------------------------------------------------------------------- quantities

# Quantities live in the model (netsim.model.quantity); re-exported here for the kubelet's callers.
__all__ = ["format_quantity", "parse_quantity"]


# -------------------------------------------------------------------------------------- the pod's world

@dataclass
class PodContext:
    """What the kubelet knows when it makes a container's config: the pod (store dict), the ConfigMaps and
    Secrets of its namespace by name, the Service variables, the node's IP and allocatable resources."""

    pod: Mapping[str, Any]
    configmaps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)
    host_ip: str = ""
    allocatable: Mapping[str, Any] = field(default_factory=dict)  # cpu, memory, ephemeral-storage
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) Warning events
    # A ServiceAccount token for this pod, by audience ("" = the API server's); None: no issuer.
    sa_token: Callable[[str], bytes] | None = None

    @property
    def namespace(self) -> str:
        return (self.pod.get("metadata") or {}).get("namespace") or "default"


def configmap_data(cm: Mapping[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's data and binaryData as bytes (binaryData is base64 in the API)."""
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's data, decoded (the store keeps it base64, stringData folded in as the API server does)."""
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        out[k] = str(v).encode()
    return out


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Mapping[str, Any], path: str, host_ip: str = "") -> str:
    """The value of a downward-API fieldRef (fieldpath.ExtractFieldPathAsString and the kubelet's
    podFieldSelectorRuntimeValue for spec/status fields). Unsupported paths raise ContainerConfigError."""
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = _SUBSCRIPT.match(path)
    if m:
        return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        # formatMap: k="v" lines, sorted by key (volumes only; the API server refuses them in env)
        items = md.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{_go_quote_inner(str(items[k]))}"' for k in sorted(items))
    simple = {"metadata.name": md.get("name"), "metadata.namespace": md.get("namespace") or "default",
              "metadata.uid": md.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
              "status.podIP": status.get("podIP")}
    if path in simple:
        return str(simple[path] or "")
    if path == "status.podIPs":
        ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")] or (
            [status["podIP"]] if status.get("podIP") else [])
        return ",".join(ips)
    if path == "status.hostIP":
        return str(status.get("hostIP") or host_ip)
    if path == "status.hostIPs":
        ips = [p.get("ip") for p in status.get("hostIPs") or [] if p.get("ip")]
        return ",".join(ips) if ips else str(status.get("hostIP") or host_ip)
    raise ContainerConfigError(f"unsupported fieldPath: {path}")


def _go_quote_inner(s: str) -> str:
    """strconv.Quote without its surrounding quotes, for the characters labels and annotations hold."""
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def resource_value(pod: Mapping[str, Any], container_name: str, resource: str, divisor: Any,
                   allocatable: Mapping[str, Any]) -> str:
    """ExtractContainerResourceValue: a container's limit/request divided by `divisor`, rounded up."""
    containers = list((pod.get("spec") or {}).get("containers") or []) + list(
        (pod.get("spec") or {}).get("initContainers") or [])
    container = next((c for c in containers if c.get("name") == container_name), None)
    if container is None:
        raise ContainerConfigError(f"container {container_name} not found")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ContainerConfigError(f"unsupported container resource : {resource}")
    res = container.get("resources") or {}
    raw = (res.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (res.get("limits") or {}).get(name)  # requests default to limits (SetDefaults_ResourceRequirements)
    if raw is None and kind == "limits":
        raw = allocatable.get(name)
    if raw is None:
        return "0"
    div = parse_quantity(divisor if divisor not in (None, "") else "1")
    if div == 0:
        div = Fraction(1)
    value = parse_quantity(raw)
    if name == "cpu":
        # ConvertResourceCPUToString: milli-values divided, rounded up
        return str(math.ceil(Fraction(math.ceil(value * 1000)) / Fraction(math.ceil(div * 1000))))
    return str(math.ceil(Fraction(math.ceil(value)) / Fraction(math.ceil(div))))


def _optional(ref: Mapping[str, Any]) -> bool:
    return bool(ref.get("optional"))


def _value_from(ctx: PodContext, container: Mapping[str, Any], vf: Mapping[str, Any]) -> str | None:
    """One env var's valueFrom; None when an optional source is missing (the variable is left out)."""
    ns = ctx.namespace
    if "configMapKeyRef" in vf:
        ref = vf["configMapKeyRef"] or {}
        name, key = str(ref.get("name", "")), str(ref.get("key", ""))
        cm = ctx.configmaps.get(name)
        if cm is None:
            if _optional(ref):
                return None
            raise ContainerConfigError(f'configmap "{name}" not found')
        data = configmap_data(cm)
        if key not in data:
            if _optional(ref):
                return None
            raise ContainerConfigError(f"couldn't find key {key} in ConfigMap {ns}/{name}")
        return data[key].decode(errors="replace")
    if "secretKeyRef" in vf:
        ref = vf["secretKeyRef"] or {}
        name, key = str(ref.get("name", "")), str(ref.get("key", ""))
        secret = ctx.secrets.get(name)
        if secret is None:
            if _optional(ref):
                return None
            raise ContainerConfigError(f'secret "{name}" not found')
        sdata = secret_data(secret)
        if key not in sdata:
            if _optional(ref):
                return None
            raise ContainerConfigError(f"couldn't find key {key} in Secret {ns}/{name}")
        return sdata[key].decode(errors="replace")
    if "fieldRef" in vf:
        return field_value(ctx.pod, str((vf["fieldRef"] or {}).get("fieldPath", "")), ctx.host_ip)
    if "resourceFieldRef" in vf:
        ref = vf["resourceFieldRef"] or {}
        return resource_value(ctx.pod, str(ref.get("containerName") or container.get("name")),
                              str(ref.get("resource", "")), ref.get("divisor"), ctx.allocatable)
    return ""


def _env_from(ctx: PodContext, source: Mapping[str, Any], env: dict[str, str]) -> None:
    from netsim.model.pod import env_var_name_problem
    prefix = str(source.get("prefix") or "")
    if "configMapRef" in source:
        ref, what, objs, decode = source["configMapRef"] or {}, "configMap", ctx.configmaps, configmap_data
        missing = f'configmap "{ref.get("name", "")}" not found'
    elif "secretRef" in source:
        ref, what, objs, decode = source["secretRef"] or {}, "secret", ctx.secrets, secret_data
        missing = f'secret "{ref.get("name", "")}" not found'
    else:
        return
    name = str(ref.get("name", ""))
    obj = objs.get(name)
    if obj is None:
        if _optional(ref):
            return
        raise ContainerConfigError(missing)
    invalid = []
    for key, value in decode(obj).items():
        k = prefix + key
        if env_var_name_problem(k):
            invalid.append(k)
            continue
        env[k] = value.decode(errors="replace")
    if invalid:
        ctx.events.append(("InvalidEnvironmentVariableNames",
                           f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} {ctx.namespace}/{name} "
                           "were skipped since they are considered invalid environment variable names."))


def container_env(ctx: PodContext, container: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment (makeEnvironmentVariables); ContainerConfigError when it cannot be made."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        _env_from(ctx, source or {}, env)
    for var in container.get("env") or []:
        name = var.get("name")
        if not name:
            continue
        vf = var.get("valueFrom")
        if vf:
            value = _value_from(ctx, container, vf)
            if value is None:
                continue
        else:
            value = expand(str(var.get("value") or ""), mapping_for(env, ctx.service_env))
        env[name] = value
    for k, v in ctx.service_env.items():
        env.setdefault(k, v)
    return env


def in_image(container: Mapping[str, Any]) -> bool:
    """True when the container's `command` names a program inside its image by a path relative to the
    image's working directory (`./podinfo`, `bin/server`), and no volume is mounted where it would be found.

    Images are not run, and the image's working directory (its WORKDIR, or `workingDir`) has no counterpart
    on this machine, so nothing here could be meant: the container is played by the workload server as if
    it ran its image's entrypoint, and its exec probes (which name programs of the image too) succeed. A
    program by absolute path or by name is looked up on this machine as before, and one that is missing
    fails to start as with a real runtime (RunContainerError / StartError). A relative path inside a
    mounted volume (`workingDir` at a ConfigMap's mountPath, `./run.sh`) is run from that volume."""
    command = container.get("command") or []
    program = str(command[0]) if command else ""
    if "/" not in program or program.startswith(("/", "$(")):
        return False
    workdir = str(container.get("workingDir") or "")
    if not workdir.startswith("/"):
        return True
    path = posixpath.normpath(posixpath.join(workdir, program))
    for mount in container.get("volumeMounts") or []:
        root = posixpath.normpath(str(mount.get("mountPath") or "/"))
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return False
    return True


def runs_command(container: Mapping[str, Any]) -> bool:
    """The container runs a process of its own: it has a `command` that is not the image's own program
    (in_image). Otherwise the workload server plays it."""
    return bool(container.get("command")) and not in_image(container)


def container_process(ctx: PodContext, container: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """argv (command + args, expanded; [] when the container is played: no command, or the image's own
    program, in_image) and environment."""
    env = container_env(ctx, container)
    if not runs_command(container):
        return [], env
    command, args = expand_command_and_args(container, env)
    return command + args, env
