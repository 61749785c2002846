"""securityContext (pod and container): the fields netsim enforces, validated as the API server does.

The fields stay in the object as written (they round-trip through `extra`); this module only checks the
ones the kubelet acts on here, with kubernetes pkg/apis/core/validation's rules and messages:
- runAsUser, runAsGroup, supplementalGroups: IsValidUserID/IsValidGroupID, "must be between 0 and
  2147483647, inclusive" (validatePodSpecSecurityContext, ValidateSecurityContext);
- allowPrivilegeEscalation false with privileged true, or with CAP_SYS_ADMIN added, is refused
  (ValidateSecurityContext: "cannot set `allowPrivilegeEscalation` to false and `privileged` to true").
Capability names are checked against the kernel's list here, where the API server accepts any string and
the runtime fails to create the container: an early error names the field.
"""

from __future__ import annotations

from netsim.model.meta import Fields

MAX_ID = 2147483647
_ID_MESSAGE = "must be between 0 and 2147483647, inclusive"

# linux/capability.h, CAP_CHOWN (0) .. CAP_CHECKPOINT_RESTORE (40)
CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
                "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
                "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
                "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
                "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
                "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

POD_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "supplementalGroupsPolicy",
              "fsGroup", "fsGroupChangePolicy", "sysctls", "seLinuxOptions", "seccompProfile", "appArmorProfile",
              "windowsOptions", "seLinuxChangePolicy"}
CONTAINER_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation", "privileged",
                    "capabilities", "readOnlyRootFilesystem", "procMount", "seLinuxOptions", "seccompProfile",
                    "appArmorProfile", "windowsOptions"}


def cap_name(raw: str) -> str:
    """`NET_ADMIN` or `CAP_NET_ADMIN` -> NET_ADMIN (containerd accepts both spellings)."""
    name = raw.upper()
    return name[4:] if name.startswith("CAP_") else name


def _ids(f: Fields) -> None:
    for key in ("runAsUser", "runAsGroup"):
        v = f.int(key)
        if v is not None and not 0 <= v <= MAX_ID:
            raise f.error(key, f"{_ID_MESSAGE}, got {v}")
    f.bool("runAsNonRoot")


def validate_pod_security_context(f: Fields | None) -> None:
    """spec.securityContext."""
    if f is None:
        return
    f.reject_unknown(POD_FIELDS)
    _ids(f)
    for i, g in enumerate(f.list("supplementalGroups")):
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= MAX_ID:
            raise f.error(f"supplementalGroups[{i}]", f"{_ID_MESSAGE}, got {g!r}")


def validate_container_security_context(f: Fields | None) -> None:
    """spec.containers[i].securityContext."""
    if f is None:
        return
    f.reject_unknown(CONTAINER_FIELDS)
    _ids(f)
    privileged = f.bool("privileged")
    escalation = f.bool("allowPrivilegeEscalation")
    caps = f.map("capabilities")
    added: list[str] = []
    if caps is not None:
        caps.reject_unknown({"add", "drop"})
        for key in ("add", "drop"):
            for i, raw in enumerate(caps.list(key)):
                if not isinstance(raw, str):
                    raise caps.error(f"{key}[{i}]", f"must be a string, got {raw!r}")
                name = cap_name(raw)
                if name != "ALL" and name not in CAP_NUMBER:
                    raise caps.error(f"{key}[{i}]", f"unknown capability {raw!r}")
                if key == "add":
                    added.append(name)
    if escalation is False and privileged:
        raise f.error("allowPrivilegeEscalation", "cannot set `allowPrivilegeEscalation` to false and "
                                                  "`privileged` to true")
    if escalation is False and ("SYS_ADMIN" in added or "ALL" in added):
        raise f.error("allowPrivilegeEscalation", "cannot set `allowPrivilegeEscalation` to false and "
                                                  "`capabilities.Add` CAP_SYS_ADMIN")
