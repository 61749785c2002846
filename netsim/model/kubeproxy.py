"""`spec.kubeProxy` of the Cluster spec: kube-proxy's own configuration (KubeProxyConfiguration), validated
and defaulted as kube-proxy does it, before anything is built.

Field names and shape follow kubeproxy.config.k8s.io/v1alpha1 (kubernetes
staging/src/k8s.io/kube-proxy/config/v1alpha1/types.go), so a block copied from a real
KubeProxyConfiguration works: `mode`, `clusterCIDR`, `detectLocalMode`, `detectLocal.{bridgeInterface,
interfaceNamePrefix}`, `nodePortAddresses`, `iptables.{masqueradeAll, masqueradeBit, localhostNodePorts,
syncPeriod, minSyncPeriod}`. The flattened spellings of the internal type (pkg/proxy/apis/config/types.go,
where masqueradeAll, syncPeriod and minSyncPeriod left the iptables block) are accepted too:
`masqueradeAll`, `localhostNodePorts`, `syncPeriod`, `minSyncPeriod` at the top of the section. Giving a
value both ways is fine when they agree and an error when they differ.

Defaults are kube-proxy's (v1alpha1 defaults.go; the roundtrip testdata
pkg/proxy/apis/config/scheme/testdata/KubeProxyConfiguration/after/v1alpha1.yaml lists them), with two
deliberate exceptions, both documented in the README:

- `clusterCIDR` defaults to the cluster's pod CIDR, as kubeadm writes it into kube-proxy's ConfigMap
  (cmd/kubeadm/app/componentconfigs/kubeproxy.go: ClusterCIDR = Networking.PodSubnet). An explicit empty
  string gives kube-proxy's no-op detector ("Detect-local-mode set to ClusterCIDR, but no cluster CIDR
  defined", cmd/kube-proxy/app/server_linux.go getLocalDetector).
- `minSyncPeriod` defaults to 0s (kube-proxy: 1s) so a change reaches the kernel at once, which is what
  netsim's `apply` waits for; kube-proxy's 1s would add up to a second to most changes in the test suites.
  `syncPeriod` keeps kube-proxy's 30s.

Validation follows pkg/proxy/apis/config/validation/validation.go (messages kept where they exist). netsim
renders kube-proxy's iptables mode only: `nftables` and `ipvs` are valid kube-proxy modes that are refused
here with a clear message, not silently run as iptables.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from netsim.model.meta import Fields

MODES = ("iptables", "ipvs", "nftables")
LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix")
NODEPORT_PRIMARY = "primary"
KUBEPROXY_API_VERSIONS = ("kubeproxy.config.k8s.io/v1alpha1",)
# iptables refuses interface names of IFNAMSIZ (16) or more characters, counting the trailing '+' of a
# prefix match (libxtables xtables_parse_interface); a longer name would make every restore fail.
IFNAMSIZ = 16

# Fields a real KubeProxyConfiguration carries that have no effect on netsim's data plane. They are
# accepted so such a block can be pasted as it is; the README lists them as ignored.
IGNORED_FIELDS = frozenset({
    "bindAddress", "bindAddressHardFail", "clientConnection", "configSyncPeriod", "conntrack",
    "enableProfiling", "featureGates", "healthzBindAddress", "hostnameOverride", "ipvs", "logging",
    "metricsBindAddress", "nftables", "oomScoreAdj", "portRange", "showHiddenMetricsForVersion", "winkernel",
    "serviceProxyName",
})
TOP_FIELDS = frozenset({
    "apiVersion", "kind", "mode", "clusterCIDR", "detectLocalMode", "detectLocal", "nodePortAddresses",
    "masqueradeAll", "localhostNodePorts", "syncPeriod", "minSyncPeriod", "iptables",
}) | IGNORED_FIELDS

_DURATION_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration (what metav1.Duration uses): '1s', '500ms', '1m30s', '2h22m', '0'; seconds.
    Raises ValueError on anything else."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if not s:
        raise ValueError("empty duration")
    sign = -1.0 if s.startswith("-") else 1.0
    rest = s.lstrip("+-") if s[0] in "+-" else s
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    while rest:
        m = _DURATION_RE.match(rest)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        num = m.group(0)[: -len(m.group(3))]
        total += float(num) * _UNIT_SECONDS[m.group(3)]
        rest = rest[m.end():]
    return sign * total


def duration_fields(f: Any, keys: Mapping[str, str], *, zero_ok: Container[str] = (),
                    example: str = "15s") -> dict[str, float]:
    """Read the Go-duration fields `keys` (field name -> attribute) of a spec section that are set: seconds
    by attribute. A field not in `zero_ok` must be positive; errors name the field."""
    out: dict[str, float] = {}
    for key, attr in keys.items():
        raw = f.get(key)
        if raw is None:
            continue
        try:
            value = parse_duration(raw) if isinstance(raw, str) else float("nan")
        except ValueError as exc:
            raise f.error(key, str(exc)) from None
        if not (value > 0 or (value == 0 and key in zero_ok)):
            raise f.error(key, f"must be a {'' if key in zero_ok else 'positive '}duration such as {example}, "
                               f"got {raw!r}")
        out[attr] = value
    return out


def format_duration(seconds: float) -> str:
    """Go's Duration.String() for the values a spec holds: '0s', '500ms', '30s', '1m30s', '1h0m0s'."""
    if seconds == 0:
        return "0s"
    neg, s = seconds < 0, abs(seconds)
    if s < 1:
        ms = s * 1000
        out = f"{ms:g}ms" if ms >= 1 else f"{s * 1e6:g}µs"
    else:
        h, rem = divmod(s, 3600)
        m, sec = divmod(rem, 60)
        sec_text = f"{sec:g}s"
        if h:
            out = f"{int(h)}h{int(m)}m{sec_text}"
        elif m:
            out = f"{int(m)}m{sec_text}"
        else:
            out = sec_text
    return f"-{out}" if neg else out


@dataclass(frozen=True)
class KubeProxySpec:
    """kube-proxy's settings, defaulted. `cluster_cidr` None means unset (the pod CIDR is used); "" means
    explicitly empty (no local-traffic detector in ClusterCIDR mode)."""

    mode: str = "iptables"
    cluster_cidr: str | None = None
    detect_local_mode: str = "ClusterCIDR"
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    nodeport_addresses: tuple[str, ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_nodeports: bool = True
    min_sync_period: float = 0.0
    sync_period: float = 30.0

    def effective_cluster_cidr(self, pod_cidr: str) -> str:
        """The clusterCIDR kube-proxy runs with: the pod CIDR unless the spec said otherwise."""
        return pod_cidr if self.cluster_cidr is None else self.cluster_cidr

    def to_dict(self) -> dict[str, Any]:
        """Only what differs from the defaults, in the v1alpha1 shape (round-trips through parse)."""
        d = KubeProxySpec()
        out: dict[str, Any] = {}
        if self.mode != d.mode:
            out["mode"] = self.mode
        if self.cluster_cidr is not None:
            out["clusterCIDR"] = self.cluster_cidr
        if self.detect_local_mode != d.detect_local_mode:
            out["detectLocalMode"] = self.detect_local_mode
        local = {k: v for k, v in (("bridgeInterface", self.bridge_interface),
                                   ("interfaceNamePrefix", self.interface_name_prefix)) if v}
        if local:
            out["detectLocal"] = local
        if self.nodeport_addresses:
            out["nodePortAddresses"] = list(self.nodeport_addresses)
        ipt: dict[str, Any] = {}
        if self.masquerade_all:
            ipt["masqueradeAll"] = True
        if self.masquerade_bit != d.masquerade_bit:
            ipt["masqueradeBit"] = self.masquerade_bit
        if not self.localhost_nodeports:
            ipt["localhostNodePorts"] = False
        if self.min_sync_period != d.min_sync_period:
            ipt["minSyncPeriod"] = format_duration(self.min_sync_period)
        if self.sync_period != d.sync_period:
            ipt["syncPeriod"] = format_duration(self.sync_period)
        if ipt:
            out["iptables"] = ipt
        return out


def _one_of(f: Fields, ipt: Fields | None, key: str, read: Any) -> tuple[Any, str]:
    """The value of `key` given at the top of the section or in its iptables block (v1alpha1), and the
    field path that set it; conflicting values are an error naming both."""
    top = read(f, key) if f.has(key) else None
    nested = read(ipt, key) if ipt is not None and ipt.has(key) else None
    if top is not None and nested is not None and top != nested:
        raise ipt.error(key, f"{nested!r} contradicts {f._p(key)} ({top!r}); give it once")  # type: ignore[union-attr]
    if nested is not None:
        return nested, ipt._p(key)  # type: ignore[union-attr]
    return top, f._p(key)


def _duration(f: Fields, key: str) -> float:
    raw = f.get(key)
    if isinstance(raw, bool) or not isinstance(raw, str):
        raise f.error(key, f"must be a duration such as '1s', '500ms' or '1m30s', got {raw!r}")
    try:
        return parse_duration(raw)
    except ValueError:
        raise f.error(key, f"{raw!r} is not a duration (such as '1s', '500ms' or '1m30s')") from None


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """net.ParseCIDR: an address with a prefix length; host bits may be set (they are masked off)."""
    if "/" not in text:
        raise ValueError(text)
    return ipaddress.ip_network(text.strip(), strict=False)


def _interface(f: Fields, key: str, mode: str, *, suffix: str = "") -> str:
    name = f.str(key, "") or ""
    if not name:
        # validation.go validateDetectLocalConfiguration / validateInterface
        raise f.error(key, f"must not be empty (detectLocalMode is {mode})")
    if len(name + suffix) >= IFNAMSIZ or re.search(r"[\s/:]", name):
        raise f.error(key, f"{name!r} is not a usable interface name (at most {IFNAMSIZ - 1 - len(suffix)} "
                           "characters, no spaces, '/' or ':')")
    return name


def parse_kube_proxy(f: Fields) -> KubeProxySpec:
    """Validate and default `spec.kubeProxy`; raises SpecError naming the field at the first problem."""
    f.reject_unknown(set(TOP_FIELDS))
    if f.has("apiVersion"):
        f.str("apiVersion", choices=KUBEPROXY_API_VERSIONS)
    if f.has("kind"):
        f.str("kind", choices=("KubeProxyConfiguration",))
    d = KubeProxySpec()

    mode = f.str("mode", "") or "iptables"
    if mode not in MODES:
        # validation.go validateProxyModeLinux
        raise f.error("mode", f"{mode!r}: must be {', '.join(MODES)} or blank (blank means the best-available "
                              "proxy [currently iptables])")
    if mode != "iptables":
        raise f.error("mode", f"{mode!r} is a kube-proxy mode netsim does not emulate yet; netsim renders "
                              "kube-proxy's iptables mode (use mode: iptables or leave it blank)")

    ipt = f.map("iptables")
    if ipt is not None:
        ipt.reject_unknown({"masqueradeAll", "masqueradeBit", "localhostNodePorts", "syncPeriod", "minSyncPeriod"})

    masq_all, _ = _one_of(f, ipt, "masqueradeAll", lambda x, k: x.bool(k))
    localhost, _ = _one_of(f, ipt, "localhostNodePorts", lambda x, k: x.bool(k))
    sync, sync_path = _one_of(f, ipt, "syncPeriod", _duration)
    min_sync, min_path = _one_of(f, ipt, "minSyncPeriod", _duration)
    bit = d.masquerade_bit
    if ipt is not None and ipt.has("masqueradeBit"):
        bit = ipt.int("masqueradeBit")  # type: ignore[assignment]
        if not 0 <= bit <= 31:
            raise ipt.error("masqueradeBit", f"{bit} must be within the range [0, 31]")
    sync = d.sync_period if sync is None else sync
    min_sync = d.min_sync_period if min_sync is None else min_sync
    # validation.go: SyncPeriod > 0, MinSyncPeriod >= 0, MinSyncPeriod <= SyncPeriod.
    if sync <= 0:
        raise _at(f, sync_path, f"{format_duration(sync)}: must be greater than 0")
    if min_sync < 0:
        raise _at(f, min_path, f"{format_duration(min_sync)}: must be greater than or equal to 0")
    if min_sync > sync:
        raise _at(f, sync_path, f"{format_duration(sync)}: must be greater than or equal to {min_path} "
                                f"({format_duration(min_sync)})")

    cluster_cidr = _parse_cluster_cidr(f)
    local_mode = f.str("detectLocalMode", "") or "ClusterCIDR"  # server.go getDetectLocalMode: blank -> ClusterCIDR
    if local_mode not in LOCAL_MODES:
        hint = (" (kube-proxy has no None mode: for no detector leave clusterCIDR empty with detectLocalMode "
                "ClusterCIDR)") if local_mode.lower() == "none" else ""
        raise f.error("detectLocalMode", f'Unsupported value: "{local_mode}": supported values: '
                                         + ", ".join(f'"{m}"' for m in (*LOCAL_MODES, "")) + hint)
    local = f.map("detectLocal")
    if local is not None:
        local.reject_unknown({"bridgeInterface", "interfaceNamePrefix"})
    local = local or f.sub({}, ".detectLocal")
    bridge = prefix = ""
    if local_mode == "BridgeInterface":
        bridge = _interface(local, "bridgeInterface", local_mode)
    elif local_mode == "InterfaceNamePrefix":
        prefix = _interface(local, "interfaceNamePrefix", local_mode, suffix="+")

    return KubeProxySpec(
        mode=mode, cluster_cidr=cluster_cidr, detect_local_mode=local_mode, bridge_interface=bridge,
        interface_name_prefix=prefix, nodeport_addresses=_parse_nodeport_addresses(f),
        masquerade_all=bool(masq_all) if masq_all is not None else d.masquerade_all, masquerade_bit=bit,
        localhost_nodeports=d.localhost_nodeports if localhost is None else bool(localhost),
        min_sync_period=min_sync, sync_period=sync)


def _at(f: Fields, path: str, message: str):
    """An error at an absolute field path (one of the two spellings of a field)."""
    from netsim.model.errors import SpecError
    return SpecError(message, source=f.source, obj=f.obj, field=path)


def _parse_cluster_cidr(f: Fields) -> str | None:
    """clusterCIDR: one CIDR or a comma-separated dual-stack pair (validation.go); netsim is IPv4 only, so
    the IPv4 member is the one used. Normalised to network form, as the detector prints it."""
    if not f.has("clusterCIDR"):
        return None
    raw = f.str("clusterCIDR") or ""
    if not raw.strip():
        return ""
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) > 2:
        raise f.error("clusterCIDR", f"{raw!r}: only one CIDR allowed or a valid DualStack CIDR "
                                     "(e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)")
    nets = []
    for p in parts:
        try:
            nets.append(_cidr(p))
        except ValueError:
            raise f.error("clusterCIDR", f"{raw!r}: must be a valid CIDR block (e.g. 10.100.0.0/16 or "
                                         "fde4:8dba:82e1::/48)") from None
    if len(nets) == 2 and nets[0].version == nets[1].version:
        raise f.error("clusterCIDR", f"{raw!r}: must be a valid DualStack CIDR (e.g. 10.100.0.0/16,"
                                     "fde4:8dba:82e1::/48)")
    v4 = [n for n in nets if n.version == 4]
    if not v4:
        raise f.error("clusterCIDR", f"{raw!r} has no IPv4 CIDR; netsim clusters are single-stack IPv4")
    return str(v4[0])


def _parse_nodeport_addresses(f: Fields) -> tuple[str, ...]:
    """nodePortAddresses: CIDRs (either family), or the single string 'primary' (validation.go
    validateKubeProxyNodePortAddress)."""
    raw = f.list("nodePortAddresses")
    out: list[str] = []
    for i, item in enumerate(raw):
        key = f"nodePortAddresses[{i}]"
        if not isinstance(item, str):
            raise f.error(key, f"must be a string, got {item!r}")
        if item == NODEPORT_PRIMARY:
            if i != 0 or len(raw) != 1:
                raise f.error(key, "\"primary\": can't use both 'primary' and CIDRs")
            return (NODEPORT_PRIMARY,)
        try:
            net = _cidr(item)
        except ValueError:
            raise f.error(key, f"{item!r}: must be a valid CIDR") from None
        out.append(str(net) if net.version == 4 else item.strip())
    return tuple(out)
