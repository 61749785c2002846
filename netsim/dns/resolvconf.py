"""A pod's resolver configuration and service environment variables, as the kubelet makes them.

resolv.conf follows kubernetes pkg/kubelet/network/dns/dns.go (GetPodDNS):
- ClusterFirst (and ClusterFirstWithHostNet): only the cluster DNS servers, search
  `<ns>.svc.<domain> svc.<domain> <domain>` followed by the node's search domains (duplicates dropped),
  options `ndots:5`. A hostNetwork pod with ClusterFirst falls back to Default; so does every pod when no
  cluster DNS address is configured.
- Default: the node's resolv.conf (nameservers, search, options); with no node file (kubelet
  `--resolv-conf=""`) `nameserver 127.0.0.1` and `search .`.
- None: nothing but the pod's dnsConfig.
- spec.dnsConfig is then merged in (appendDNSConfig): nameservers and searches appended without
  duplicates, options merged by name (the pod's value wins); finally at most 3 nameservers, at most 32
  search domains of at most 253 characters and 2048 characters in all (formDNSConfigFitsLimits with
  ExpandedDNSConfig, GA since 1.28).
The file is laid out as containerd writes it for the sandbox: `search`, then `nameserver` lines, then
`options`.

In netsim a pod is a network namespace, not a container with its own /etc, so the file goes to
/etc/netns/<netns>/resolv.conf: `ip netns exec <netns>` (and `netsim exec`) bind-mounts it over
/etc/resolv.conf in a private mount namespace, which is how a pod's processes see it.

Environment variables follow pkg/kubelet/envvars/envvars.go FromServices and kubelet_pods.go
getServiceEnvVarMap: for every service with a cluster IP in the pod's namespace (when enableServiceLinks,
the default) plus the `kubernetes` service of namespace default.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from netsim.model.errors import SpecError
from netsim.model.pod import Pod
from netsim.model.service import Service

NETNS_ETC = "/etc/netns"
DEFAULT_NDOTS_OPTIONS = ("ndots:5",)
MAX_NAMESERVERS = 3  # pkg/apis/core/validation MaxDNSNameservers
MAX_SEARCH_PATHS = 32  # MaxDNSSearchPathsExpanded
MAX_SEARCH_CHARS = 2048  # MaxDNSSearchListCharsExpanded
MAX_DOMAIN_LEN = 253  # DNS1123SubdomainMaxLength
MASTER_SERVICES = ("kubernetes",)


@dataclass(frozen=True)
class DnsConfig:
    """The resolver settings of a pod (CRI runtimeapi.DNSConfig)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        """resolv.conf text, laid out as containerd writes it."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


def parse_resolv_conf(text: str) -> DnsConfig:
    """kubelet parseResolvConf: nameservers accumulate, the last search and options lines win, trailing
    dots are dropped from search domains, comments (#) are skipped."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            options = fields[1:]
    return DnsConfig(tuple(servers), tuple(searches), tuple(options))


def read_host_resolv_conf(path: str = "/etc/resolv.conf") -> DnsConfig | None:
    """The node's resolver config (nodes share the host's filesystem); None when there is no such file."""
    try:
        return parse_resolv_conf(Path(path).read_text())
    except FileNotFoundError:
        return None


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for i in items:
        if i not in out:
            out.append(i)
    return out


def _pod_dns_config(pod: Pod) -> tuple[list[str], list[str], list[tuple[str, str | None]]]:
    """spec.dnsConfig (carried raw by the model), read with errors that name the field."""
    raw = pod.spec.extra.get("dnsConfig")
    obj = f"Pod {pod.meta.key}"
    if raw is None:
        return [], [], []
    if not isinstance(raw, Mapping):
        raise SpecError("must be a mapping", obj=obj, field="spec.dnsConfig")

    def strings(key: str) -> list[str]:
        vals = raw.get(key) or []
        if not isinstance(vals, list) or not all(isinstance(v, str) and v for v in vals):
            raise SpecError("must be a list of non-empty strings", obj=obj, field=f"spec.dnsConfig.{key}")
        return list(vals)
    options: list[tuple[str, str | None]] = []
    for i, opt in enumerate(raw.get("options") or []):
        if not isinstance(opt, Mapping) or not isinstance(opt.get("name"), str) or not opt["name"]:
            raise SpecError("must have a name", obj=obj, field=f"spec.dnsConfig.options[{i}].name")
        value = opt.get("value")
        options.append((opt["name"], None if value is None else str(value)))
    return strings("nameservers"), [s.removesuffix(".") for s in strings("searches")], options


def _merge_options(existing: Sequence[str], extra: Sequence[tuple[str, str | None]]) -> list[str]:
    """mergeDNSOptions: by name, the pod's entries overwrite (insertion order kept; upstream's is a map's)."""
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for name, value in extra:
        merged[name] = value or ""
    return [f"{k}:{v}" if v else k for k, v in merged.items()]


def _fit_limits(cfg: DnsConfig) -> DnsConfig:
    servers = list(cfg.nameservers[:MAX_NAMESERVERS])
    searches = [s for s in cfg.searches[:MAX_SEARCH_PATHS] if len(s) <= MAX_DOMAIN_LEN]
    while searches and len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
    return DnsConfig(tuple(servers), tuple(searches), cfg.options)


def pod_dns_config(pod: Pod, *, cluster_dns: Sequence[str], cluster_domain: str = "cluster.local",
                   host: DnsConfig | None = None) -> DnsConfig:
    """The resolver config the kubelet gives `pod` (GetPodDNS). `cluster_dns` are the kubelet's
    --cluster-dns addresses (the kube-dns Service VIP), `host` the node's resolv.conf (None: no file)."""
    policy = pod.spec.dns_policy
    extra_servers, extra_searches, extra_options = _pod_dns_config(pod)
    if policy == "None" and not extra_servers:
        raise SpecError("must have at least one nameserver when dnsPolicy is None",
                        obj=f"Pod {pod.meta.key}", field="spec.dnsConfig.nameservers")
    base = host or DnsConfig()
    cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not pod.spec.host_network)
    if policy == "None":
        cfg = DnsConfig()
    elif cluster and cluster_dns:
        ns = pod.meta.namespace or "default"
        searches = base.searches
        if cluster_domain:
            searches = tuple(_unique([f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain,
                                      *base.searches]))
        cfg = DnsConfig(tuple(cluster_dns), searches, DEFAULT_NDOTS_OPTIONS)
    elif host is None:
        cfg = DnsConfig(("127.0.0.1",), (".",), ())
    else:
        cfg = base
    if pod.spec.extra.get("dnsConfig") is not None:
        cfg = DnsConfig(tuple(_unique([*cfg.nameservers, *extra_servers])),
                        tuple(_unique([*cfg.searches, *extra_searches])),
                        tuple(_merge_options(cfg.options, extra_options)))
    return _fit_limits(cfg)


def pod_resolv_conf(pod: Pod, *, cluster_dns: Sequence[str], cluster_domain: str = "cluster.local",
                    host: DnsConfig | None = None) -> str:
    """The pod's resolv.conf text."""
    return pod_dns_config(pod, cluster_dns=cluster_dns, cluster_domain=cluster_domain, host=host).render()


# ---------------------------------------------------------------------------------------- writing files

def resolv_conf_path(netns: str, root: str = NETNS_ETC) -> Path:
    if not netns or "/" in netns or netns in (".", ".."):
        raise ValueError(f"bad network namespace name {netns!r}")
    return Path(root) / netns / "resolv.conf"


def write_netns_etc(path: Path, content: str) -> Path:
    """Put `content` at `path` (a file of /etc/netns/<netns>/) atomically, 0644: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with_suppressed_unlink(tmp)
        raise
    return path


def write_resolv_conf(netns: str, content: str, root: str = NETNS_ETC) -> Path:
    """Put `content` at <root>/<netns>/resolv.conf."""
    return write_netns_etc(resolv_conf_path(netns, root), content)


def remove_resolv_conf(netns: str, root: str = NETNS_ETC) -> bool:
    """Remove the pod's resolv.conf and its /etc/netns/<netns> directory if that is then empty.
    Returns whether a file was removed."""
    path = resolv_conf_path(netns, root)
    removed = with_suppressed_unlink(path)
    try:
        path.parent.rmdir()
    except OSError:
        pass  # absent, or holds other files someone else put there
    return removed


def with_suppressed_unlink(path: str | os.PathLike[str]) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


# ----------------------------------------------------------------------------------- environment variables

def env_var_name(name: str) -> str:
    """envvars.go makeEnvVariableName: upper case, '-' -> '_'."""
    return name.upper().replace("-", "_")


def _has_cluster_ip(svc: Service) -> bool:
    """v1helper.IsServiceIPSet: a cluster IP that is neither empty nor "None"."""
    return bool(svc.cluster_ip) and svc.cluster_ip != "None" and svc.type != "ExternalName"


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_env_vars(services: Iterable[Service], namespace: str, *,
                     enable_service_links: bool = True) -> dict[str, str]:
    """The service discovery variables the kubelet gives a container of a pod in `namespace`.

    Per service: `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT` (first port), `<SVC>_SERVICE_PORT_<NAME>` for
    named ports, and the Docker-link style `<SVC>_PORT=<proto>://<ip>:<port>` (first port) and
    `<SVC>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]` for every port. Services are taken in name order
    (upstream iterates a map; values do not depend on the order except for clashing names).
    """
    chosen: dict[str, Service] = {}
    for svc in services:
        if not _has_cluster_ip(svc) or not svc.ports:
            continue
        ns = svc.meta.namespace or "default"
        name = svc.meta.name
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)  # always present, even with enableServiceLinks false
        elif ns == namespace and enable_service_links:
            chosen[name] = svc  # the pod's own namespace wins over the master service
    env: dict[str, str] = {}
    for name in sorted(chosen):
        svc = chosen[name]
        ip = svc.cluster_ip or ""
        prefix = env_var_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(svc.ports[0].port)
        for p in svc.ports:
            if p.name:
                env[f"{prefix}_SERVICE_PORT_{env_var_name(p.name)}"] = str(p.port)
        for i, p in enumerate(svc.ports):
            proto = (p.protocol or "TCP").upper()
            url = f"{proto.lower()}://{_host_port(ip, p.port)}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            pp = f"{prefix}_PORT_{p.port}_{proto}"
            env[pp] = url
            env[f"{pp}_PROTO"] = proto.lower()
            env[f"{pp}_PORT"] = str(p.port)
            env[f"{pp}_ADDR"] = ip
    return env


def env_for_pod(pod: Pod, services: Iterable[Service]) -> dict[str, str]:
    """service_env_vars for a pod, honouring spec.enableServiceLinks (default true)."""
    links = pod.spec.extra.get("enableServiceLinks")
    return service_env_vars(services, pod.meta.namespace or "default",
                            enable_service_links=links is not False)
