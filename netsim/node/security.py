"""Who a container process runs as, and with what: the kubelet's and the runtime's security decisions.

Pure logic (no kernel): `effective` merges the pod's and the container's securityContext as the kubelet
does (pkg/securitycontext/util.go DetermineEffectiveSecurityContext: container fields override pod
fields), checks runAsNonRoot as kuberuntime's verifyRunAsNonRoot does (security_context_others.go; a refused
container stays Waiting with reason CreateContainerConfigError and the kubelet's message), and picks the
capabilities as containerd does (pkg/oci/spec.go: the default set for every container, then
capabilities.add/drop; `ALL` allowed; `privileged` keeps every capability). `launcher_argv` is the command
line of netsim/node/container_init.py, which applies all of it in the child before exec.

Two deliberate differences, because a netsim container shares the host's filesystem (there is no image):
- a container whose securityContext names no user runs as the cluster's `containerDefaults` (nobody,
  65534, unless the Cluster spec says otherwise) where Kubernetes would use the image's USER;
- no_new_privs is set unless allowPrivilegeEscalation is true or the container is privileged (Kubernetes
  sets it only when allowPrivilegeEscalation is false), so the host's setuid programs cannot raise a
  container's privileges.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netsim.model.security import CAP_NUMBER, CAPABILITIES, cap_name

# containerd pkg/oci/spec.go populateDefaultUnixSpec: the capabilities every container starts with.
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
# containerd internal/cri/server/podsandbox/sandbox_run_linux.go (sandboxContainerSpec): in a pod's own
# network namespace (not hostNetwork), unprivileged users may bind ports < 1024 and open ICMP echo sockets.
POD_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}
# Masked in every container's mount namespace: every cluster's store, logs and records.
MASKED_PATHS = ("/run/netsim",)
INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "container_init.py")


class ContainerConfigError(Exception):
    """The kubelet refuses to create the container (status Waiting, reason CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"


@dataclass(frozen=True)
class ContainerSecurity:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    caps: tuple[str, ...] = DEFAULT_CAPS  # bounding set; also effective/permitted when uid is 0
    no_new_privs: bool = True
    privileged: bool = False


def _sc(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    sc = (obj or {}).get("securityContext")
    return sc if isinstance(sc, Mapping) else {}


def _pick(key: str, container: Mapping[str, Any], pod: Mapping[str, Any]) -> Any:
    return container[key] if container.get(key) is not None else pod.get(key)


def _caps(container_sc: Mapping[str, Any], privileged: bool) -> tuple[str, ...]:
    if privileged:
        return CAPABILITIES
    caps_field = container_sc.get("capabilities") or {}
    added = [cap_name(c) for c in caps_field.get("add") or []]
    dropped = [cap_name(c) for c in caps_field.get("drop") or []]
    # containerd WithCapabilities: `add: [ALL]` grants all; `drop: [ALL]` clears the defaults, then adds.
    base = list(CAPABILITIES) if "ALL" in added else [] if "ALL" in dropped else list(DEFAULT_CAPS)
    out = [c for c in base if c not in dropped or "ALL" in added]
    out += [c for c in added if c != "ALL" and c not in out]
    return tuple(c for c in CAPABILITIES if c in out)


def host_primary_gid(uid: int) -> int:
    """The group of `uid` in the "image" (the host's /etc/passwd), 0 when it has no entry: containerd's
    WithUserID, which takes the gid from the image's passwd file when runAsGroup is not given."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return 0


def effective(pod: Mapping[str, Any], container: Mapping[str, Any], *, default_uid: int, default_gid: int,
              primary_gid: Callable[[int], int] = host_primary_gid) -> ContainerSecurity:
    """The security of `container` in `pod` (store dicts); ContainerConfigError when the kubelet refuses."""
    spec = pod.get("spec") or {}
    psc, csc = _sc(spec), _sc(container)
    uid = _pick("runAsUser", csc, psc)
    if _pick("runAsNonRoot", csc, psc):
        where = (f"(pod: \"{(pod.get('metadata') or {}).get('name')}_"
                 f"{(pod.get('metadata') or {}).get('namespace') or 'default'}"
                 f"({(pod.get('metadata') or {}).get('uid', '')})\", container: {container.get('name')})")
        if uid is not None and int(uid) == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        if uid is None and default_uid == 0:
            raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")
    gid = _pick("runAsGroup", csc, psc)
    privileged = bool(csc.get("privileged"))
    escalation = csc.get("allowPrivilegeEscalation")
    if gid is None:
        gid = default_gid if uid is None else primary_gid(int(uid))
    return ContainerSecurity(
        uid=int(default_uid if uid is None else uid),
        gid=int(gid),
        groups=tuple(int(g) for g in psc.get("supplementalGroups") or []),
        caps=_caps(csc, privileged),
        no_new_privs=not privileged and escalation is not True,
        privileged=privileged,
    )


def launcher_argv(sec: ContainerSecurity, argv: Sequence[str], *, netns: str, hostname: str,
                  sysctls: Mapping[str, str] | None = None, etc_root: str = "/etc/netns",
                  mounts: Sequence[Mapping[str, Any]] = (), workdir: str = "", scratch: str = "") -> list[str]:
    """The command that starts `argv` as `sec` in a private mount and UTS namespace (see container_init):
    `mounts` ({src, dst, ro, file}) bound in it, `workdir` its working directory, `scratch` an empty
    directory for the private tmpfs that backs paths the host does not have."""
    conf = {"uid": sec.uid, "gid": sec.gid, "groups": list(sec.groups),
            "caps": [CAP_NUMBER[c] for c in sec.caps], "nnp": sec.no_new_privs,
            "masked": [] if sec.privileged else list(MASKED_PATHS), "etc": os.path.join(etc_root, netns),
            "hostname": hostname[:64], "sysctls": dict(sysctls or {}), "mounts": [dict(m) for m in mounts],
            "workdir": workdir, "scratch": scratch}
    # -I -S: no site-packages, no environment, no user directory: the launcher is stdlib only and fast.
    return [sys.executable, "-I", "-S", INIT, json.dumps(conf, separators=(",", ":")), *argv]
