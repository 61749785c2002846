"""Checks before building anything: root, tools, kernel features. Each failure says how to fix it."""

from __future__ import annotations

import os

from netsim.model.errors import MissingDependency, UsageError

# tool -> Debian package that provides it
TOOLS = {
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "ipset": "ipset",
    "nft": "nftables",
    "conntrack": "conntrack",
    "ip": "iproute2",
}
INSTALL_HINT = "apt-get install -y iproute2 iptables ipset conntrack nftables (or run scripts/setup.sh)"


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"netsim {command} must run as root: netsim makes and enters network namespaces and "
                         "keeps each cluster's state readable by root only (try: sudo netsim ...)")


def missing_tools(tools: dict[str, str] | None = None) -> list[tuple[str, str]]:
    import shutil  # (bz2, lzma, fnmatch): for `up` and the tool checks, not every command's root check
    return [(t, pkg) for t, pkg in (tools or TOOLS).items() if shutil.which(t) is None]


def require_tools(tools: dict[str, str] | None = None) -> None:
    missing = missing_tools(tools)
    if missing:
        pkgs = sorted({p for _, p in missing})
        raise MissingDependency(f"missing tool(s): {', '.join(t for t, _ in missing)}; install them with: "
                                f"apt-get install -y {' '.join(pkgs)}")


def require_kernel_features() -> None:
    """Network namespaces and the sysctls a Kubernetes node needs; VXLAN is checked when first used."""
    if not os.path.exists("/proc/self/ns/net"):
        raise MissingDependency("this kernel has no network namespaces (CONFIG_NET_NS)")
    if not os.path.isdir("/proc/sys/net/bridge"):
        raise MissingDependency("bridge netfilter is not available (modprobe br_netfilter; CONFIG_BRIDGE_NETFILTER)")
