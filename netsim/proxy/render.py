"""kube-proxy iptables mode, rendered as one `iptables-restore --noflush` payload per node (pure).

Follows kubernetes pkg/proxy/iptables/proxier.go `syncProxyRules` and `writeServiceToEndpointRules`,
pkg/proxy/topology.go `CategorizeEndpoints` and pkg/proxy/serviceport.go, line by line in the order
kube-proxy writes them; the one deliberate difference is that service ports are visited in sorted order
(namespace, name, port name, protocol) where kube-proxy iterates a Go map, and endpoint sets that
upstream builds from a map are sorted by their `ip:port` string.

Payload layout (as kube-proxy's): `*filter`, chain lines, rules, `COMMIT`, `*nat`, chain lines, rules,
`-X` lines for stale chains, the final KUBE-SERVICES -> KUBE-NODEPORTS rule, `COMMIT`. A `:CHAIN - [0:0]`
line flushes (or creates) the chain in --noflush mode, which is how a partial sync rewrites only the
chains of services that changed and leaves the others alone.

Jump rules from the built-in chains
-----------------------------------
kube-proxy installs them with separate `iptables -C`/`-I` calls (EnsureRule(Prepend)) on full syncs only.
netsim wants one restore payload, but a fixed sequence of -I/-A/-D lines can never be idempotent: every
line adds or removes exactly one rule, so the result always depends on how many copies were already
there, and -D of a missing rule aborts the whole restore. Flushing the built-in chains is not an option
either, because flannel (FLANNEL-POSTRTG, FLANNEL-FWD) and calico (cali-FORWARD, ...) hook into the same
built-in chains of the same node netns. Netsim-owned hook chains do not help: the built-in -> hook jump
has exactly the same problem.

So the jump rules are rendered from what is already there: `render_jump_rules(existing_save)` takes the
netns' current `iptables-save` text (one read before the full-sync restore, the equivalent of kube-proxy's
`-C` checks) and emits `-I <builtin> 1 <rule>` only for missing jumps, in kube-proxy's iptablesJumpChains
order (so they end up in the same relative order as kube-proxy's prepends), and `-D <builtin> <rule>`
for extra copies. A second full sync therefore adds nothing. Without `existing_save` the jumps that a
previous full sync ensured (recorded in `RenderState.jumps`) are taken as present and the others are
inserted, which is right for a fresh netns and for a full sync that follows partial ones. The kubelet's KUBE-FIREWALL jumps (INPUT, OUTPUT,
no comment) are handled the same way when localhost NodePorts are enabled.

Partial syncs
-------------
`render(..., prev=state)` compares each Service's per-service nat chains (SVC/SVL/EXT/FW/SEP of all its
ports) by digest against the previous state, as kube-proxy does per NamespacedName; unchanged services
are left out of the payload (their chains keep their contents), changed ones are redeclared and
rewritten, the top-level chains (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ and all
filter chains) are always rewritten, and service chains that are no longer used are flushed and deleted
with `-X`. A change of node or config forces a full sync (upstream forces one on node label changes).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netsim.proxy import chains as C
from netsim.proxy.iptables_text import Ruleset, format_args, rule_comment, rule_target
from netsim.proxy.model import Endpoint, NodeInfo, ProxyConfig, ServicePort

EndpointsMap = Mapping[tuple[str, str], Sequence[Endpoint]]

NODEPORTS_LAST_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"


def probability(n: int) -> str:
    """computeProbability: Go's "%0.10f" of 1/n."""
    return f"{1.0 / n:0.10f}"


def _q(comment: str) -> str:
    """kube-proxy wraps comments with spaces in literal double quotes inside the restore text."""
    return f'"{comment}"'


# --- endpoint selection ---------------------------------------------------------------------------


def dedupe_endpoints(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Collapse duplicates by ip:port (a non-terminating copy wins) and sort by the `ip:port` string, as
    endpointslicecache.go does (plain string order: 10.0.1.10:80 < 10.0.1.2:80)."""
    by_key: dict[str, Endpoint] = {}
    for ep in endpoints:
        old = by_key.get(ep.key)
        if old is None or (old.terminating and not ep.terminating):
            by_key[ep.key] = ep
    return [by_key[k] for k in sorted(by_key)]


@dataclass(frozen=True)
class Categorized:
    cluster: list[Endpoint]
    local: list[Endpoint]
    reachable: list[Endpoint]
    has_any: bool


def categorize_endpoints(endpoints: Sequence[Endpoint], sp: ServicePort, node_name: str) -> Categorized:
    """topology.go CategorizeEndpoints without topology hints (netsim does not set them).

    Cluster set: ready endpoints, else serving+terminating ones. Local set: local ready endpoints, else
    local serving+terminating ones. The fallback is chosen independently for the two sets.
    """
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if not endpoints:
        return Categorized([], [], [], False)
    if sp.uses_cluster_endpoints():
        cluster = [e for e in endpoints if e.ready]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not sp.uses_local_endpoints():
        return Categorized(cluster, [], list(cluster), has_any)
    local_ready = local_term = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.is_local(node_name)
        elif e.serving and e.terminating:
            has_any = True
            local_term = local_term or e.is_local(node_name)
    use_terminating = False
    if local_ready:
        local = [e for e in endpoints if e.is_local(node_name) and e.ready]
    elif local_term:
        use_terminating = True
        local = [e for e in endpoints if e.is_local(node_name) and e.serving and e.terminating]
    if not sp.uses_cluster_endpoints():
        return Categorized([], local, list(local), has_any)
    if not use_terminating:
        return Categorized(cluster, local, list(cluster), has_any)
    merged = {e.key: e for e in cluster}
    merged.update({e.key: e for e in local})
    return Categorized(cluster, local, [merged[k] for k in sorted(merged)], has_any)


# --- per service port -----------------------------------------------------------------------------


@dataclass
class _PortRender:
    """What one service port contributes, split the way a partial sync needs it."""

    sp: ServicePort
    top_nat: list[str] = field(default_factory=list)  # KUBE-SERVICES / KUBE-NODEPORTS rules
    filter_rules: list[str] = field(default_factory=list)
    chain_names: list[str] = field(default_factory=list)  # per-service nat chains, in declaration order
    chain_rules: list[str] = field(default_factory=list)  # their rules, in write order
    no_local_internal: bool = False
    no_local_external: bool = False


def _render_port(sp: ServicePort, eps: list[Endpoint], node: NodeInfo, cfg: ProxyConfig,
                 large_cluster: bool) -> _PortRender:
    out = _PortRender(sp)
    proto = sp.proto
    spn = sp.port_name_string
    names = C.ServiceChains(sp)
    masq = C.KUBE_MARK_MASQ
    detector = cfg.local_detector_cidr(node)
    cat = categorize_endpoints(eps, sp, node.name)
    has_endpoints = cat.has_any

    cluster_chain, local_chain = names.svc, names.svl
    uses_cluster_chain = bool(cat.cluster) and sp.uses_cluster_endpoints()
    uses_local_chain = bool(cat.local) and sp.uses_local_endpoints()

    internal_chain = cluster_chain
    has_internal = has_endpoints
    if sp.internal_policy_local():
        internal_chain = local_chain
        if not cat.local:
            has_internal = False
    external_policy_chain = cluster_chain
    has_external = has_endpoints
    if sp.external_policy_local():
        external_policy_chain = local_chain
        if not cat.local:
            has_external = False
    ext_chain = names.ext
    uses_ext_chain = has_endpoints and sp.externally_accessible()
    lb_chain = ext_chain
    ranges = sp.source_ranges()
    uses_fw = has_endpoints and bool(sp.load_balancer_ips) and bool(ranges)
    if uses_fw:
        lb_chain = names.fw

    if not has_endpoints:
        int_target, int_comment = "REJECT", _q(f"{spn} has no endpoints")
        ext_target, ext_comment = int_target, int_comment
    else:
        int_target = int_comment = ext_target = ext_comment = ""
        if not has_internal:
            int_target, int_comment = "DROP", _q(f"{spn} has no local endpoints")
            out.no_local_internal = True
        if not has_external:
            ext_target, ext_comment = "DROP", _q(f"{spn} has no local endpoints")
            out.no_local_external = True

    m = f"-m {proto} -p {proto}"
    port = sp.port
    top, filt = out.top_nat, out.filter_rules

    # ClusterIP
    if has_internal:
        top.append(f"-A {C.KUBE_SERVICES} -m comment --comment {_q(spn + ' cluster IP')} {m} "
                   f"-d {sp.cluster_ip} --dport {port} -j {internal_chain}")
    else:
        filt.append(f"-A {C.KUBE_SERVICES} -m comment --comment {int_comment} {m} "
                    f"-d {sp.cluster_ip} --dport {port} -j {int_target}")
    # externalIPs
    for ip in sp.external_ips:
        if has_endpoints:
            top.append(f"-A {C.KUBE_SERVICES} -m comment --comment {_q(spn + ' external IP')} {m} "
                       f"-d {ip} --dport {port} -j {ext_chain}")
        if not has_external:
            filt.append(f"-A {C.KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} {m} "
                        f"-d {ip} --dport {port} -j {ext_target}")
    # LoadBalancer ingress
    for ip in sp.load_balancer_ips:
        if has_endpoints:
            top.append(f"-A {C.KUBE_SERVICES} -m comment --comment {_q(spn + ' loadbalancer IP')} {m} "
                       f"-d {ip} --dport {port} -j {lb_chain}")
        if uses_fw:
            filt.append(f"-A {C.KUBE_PROXY_FIREWALL} -m comment --comment "
                        f"{_q(f'{spn} traffic not accepted by {names.fw}')} {m} -d {ip} --dport {port} -j DROP")
    if not has_external:
        for ip in sp.load_balancer_ips:
            filt.append(f"-A {C.KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} {m} "
                        f"-d {ip} --dport {port} -j {ext_target}")
    # NodePort
    if sp.node_port:
        if has_endpoints:
            if cfg.effective_localhost_nodeports() and cfg.nfacct:
                top.append(f"-A {C.KUBE_NODEPORTS} -m comment --comment {spn} {m} -d 127.0.0.0/8 "
                           f"--dport {sp.node_port} -m nfacct --nfacct-name {C.LOCALHOST_NODEPORT_NFACCT} "
                           f"-j {ext_chain}")
            top.append(f"-A {C.KUBE_NODEPORTS} -m comment --comment {spn} {m} --dport {sp.node_port} "
                       f"-j {ext_chain}")
        if not has_external:
            filt.append(f"-A {C.KUBE_EXTERNAL_SERVICES} -m comment --comment {ext_comment} "
                        f"-m addrtype --dst-type LOCAL {m} --dport {sp.node_port} -j {ext_target}")
    # healthCheckNodePort: accepted whether or not there are endpoints. Upstream only keeps the port for
    # services that NeedsHealthCheck (LoadBalancer with eTP=Local), so a stray value is ignored here too.
    if sp.health_check_node_port and sp.external_policy_local():
        filt.append(f"-A {C.KUBE_NODEPORTS} -m comment --comment {_q(spn + ' health check node port')} "
                    f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT")

    rules, decl = out.chain_rules, out.chain_names
    # Internal traffic: masquerade off-cluster sources (or everything with masqueradeAll).
    if has_internal:
        args = (f"-m comment --comment {_q(spn + ' cluster IP')} {m} -d {sp.cluster_ip} --dport {port}")
        if cfg.masquerade_all:
            rules.append(f"-A {internal_chain} {args} -j {masq}")
        elif detector:
            rules.append(f"-A {internal_chain} {args} ! -s {detector} -j {masq}")
    # External destinations.
    if uses_ext_chain:
        decl.append(ext_chain)
        if not sp.external_policy_local():
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'masquerade traffic for {spn} external destinations')} -j {masq}")
        else:
            if detector:
                rules.append(f"-A {ext_chain} -m comment --comment "
                             f"{_q(f'pod traffic for {spn} external destinations')} -s {detector} "
                             f"-j {cluster_chain}")
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'masquerade LOCAL traffic for {spn} external destinations')} "
                         f"-m addrtype --src-type LOCAL -j {masq}")
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'route LOCAL traffic for {spn} external destinations')} "
                         f"-m addrtype --src-type LOCAL -j {cluster_chain}")
        if has_external:
            rules.append(f"-A {ext_chain} -j {external_policy_chain}")
    # loadBalancerSourceRanges firewall.
    if uses_fw:
        decl.append(names.fw)
        fw_args = f"-A {names.fw} -m comment --comment {_q(spn + ' loadbalancer IP')}"
        allow_from_node = False
        node_ip = node.primary_ip
        for cidr in ranges:
            rules.append(f"{fw_args} -s {cidr} -j {ext_chain}")
            if node_ip and _contains(cidr, node_ip):
                allow_from_node = True
        if allow_from_node:
            for ip in sp.load_balancer_ips:
                rules.append(f"{fw_args} -s {ip} -j {ext_chain}")
        rules.append(f"-A {names.fw} -m comment --comment "
                     f"{_q(f'other traffic to {spn} will be dropped by KUBE-PROXY-FIREWALL')}")
    if uses_cluster_chain:
        decl.append(cluster_chain)
        _endpoint_dispatch(rules, spn, sp, names, cluster_chain, cat.cluster, large_cluster)
    if uses_local_chain:
        decl.append(local_chain)
        _endpoint_dispatch(rules, spn, sp, names, local_chain, cat.local, large_cluster)
    # Per-endpoint chains.
    for ep in cat.reachable:
        sep = names.sep(ep)
        decl.append(sep)
        head = f"-A {sep}" if large_cluster else f"-A {sep} -m comment --comment {spn}"
        rules.append(f"{head} -s {ep.ip} -j {masq}")
        affinity = f" -m recent --name {sep} --set" if sp.session_affinity_timeout is not None else ""
        rules.append(f"{head}{affinity} {m} -j DNAT --to-destination {ep}")
    return out


def _endpoint_dispatch(rules: list[str], spn: str, sp: ServicePort, names: C.ServiceChains, chain: str,
                       eps: list[Endpoint], large_cluster: bool) -> None:
    """writeServiceToEndpointRules: affinity checks first, then the statistic cascade."""
    def head(ep: Endpoint) -> str:
        if large_cluster:
            return f"-A {chain}"
        return f"-A {chain} -m comment --comment {_q(f'{spn} -> {ep}')}"

    if sp.session_affinity_timeout is not None:
        for ep in eps:
            sep = names.sep(ep)
            rules.append(f"{head(ep)} -m recent --name {sep} --rcheck --seconds {sp.session_affinity_timeout}"
                         f" --reap -j {sep}")
    n = len(eps)
    for i, ep in enumerate(eps):
        stat = f" -m statistic --mode random --probability {probability(n - i)}" if i < n - 1 else ""
        rules.append(f"{head(ep)}{stat} -j {names.sep(ep)}")


def _contains(cidr: str, ip: str) -> bool:
    a = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(cidr, strict=False)
    return a.version == net.version and a in net


# --- jump rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JumpRule:
    """One of iptablesJumpChains / iptablesKubeletJumpChains (proxier.go)."""

    table: str
    src_chain: str  # the built-in chain holding the rule
    dst_chain: str
    comment: str
    extra: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.table} {self.src_chain} {self.dst_chain}"

    def args(self) -> list[str]:
        out = list(self.extra)
        if self.comment:
            out += ["-m", "comment", "--comment", self.comment]
        return out + ["-j", self.dst_chain]

    def line(self, verb: str) -> str:
        parts = []
        for a in self.args():
            parts.append(f'"{a}"' if " " in a else a)
        return f"{verb} {self.src_chain}{' 1' if verb == '-I' else ''} {' '.join(parts)}"


_NEW = ("-m", "conntrack", "--ctstate", "NEW")
JUMP_CHAINS: tuple[JumpRule, ...] = (
    JumpRule("filter", "INPUT", C.KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", _NEW),
    JumpRule("filter", "FORWARD", C.KUBE_EXTERNAL_SERVICES, "kubernetes externally-visible service portals", _NEW),
    JumpRule("filter", "INPUT", C.KUBE_NODEPORTS, "kubernetes health check service ports"),
    JumpRule("filter", "FORWARD", C.KUBE_SERVICES, "kubernetes service portals", _NEW),
    JumpRule("filter", "OUTPUT", C.KUBE_SERVICES, "kubernetes service portals", _NEW),
    JumpRule("filter", "FORWARD", C.KUBE_FORWARD, "kubernetes forwarding rules"),
    JumpRule("filter", "INPUT", C.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    JumpRule("filter", "OUTPUT", C.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    JumpRule("filter", "FORWARD", C.KUBE_PROXY_FIREWALL, "kubernetes load balancer firewall", _NEW),
    JumpRule("nat", "OUTPUT", C.KUBE_SERVICES, "kubernetes service portals"),
    JumpRule("nat", "PREROUTING", C.KUBE_SERVICES, "kubernetes service portals"),
    JumpRule("nat", "POSTROUTING", C.KUBE_POSTROUTING, "kubernetes postrouting rules"),
)
KUBELET_JUMP_CHAINS: tuple[JumpRule, ...] = (
    JumpRule("filter", "INPUT", C.KUBE_FIREWALL, ""),
    JumpRule("filter", "OUTPUT", C.KUBE_FIREWALL, ""),
)


def _is_same_jump(args: list[str], jump: JumpRule) -> bool:
    """Semantic comparison (iptables-save may reorder or requote): same target, comment and ctstate."""
    if rule_target(args) != jump.dst_chain or (rule_comment(args) or "") != jump.comment:
        return False
    has_new = any(a == "--ctstate" and i + 1 < len(args) and args[i + 1] == "NEW" for i, a in enumerate(args))
    return has_new == bool(jump.extra)


def render_jump_rules(existing_save: str | None, cfg: ProxyConfig,
                      assume_present: Collection[str] = ()) -> dict[str, list[str]]:
    """The lines (per table) that make the built-in chains jump into kube-proxy's chains exactly once.

    `existing_save` is the netns' current `iptables-save` output. Without it, the jumps whose
    `JumpRule.key` is in `assume_present` (those a previous full sync ensured) are taken as present and
    all others are inserted. Missing jumps are inserted at position 1 in iptablesJumpChains order, which
    reproduces kube-proxy's prepend order; surplus copies are deleted.
    """
    rs = Ruleset.from_text(existing_save) if existing_save else None
    out: dict[str, list[str]] = {"filter": [], "nat": []}
    for j in jump_rules_for(cfg):
        if rs is None:
            count = 1 if j.key in assume_present else 0
        else:
            ch = rs.chain(j.table, j.src_chain)
            count = sum(1 for r in ch.rules if _is_same_jump(r, j)) if ch else 0
        if count == 0:
            out[j.table].append(j.line("-I"))
        for _ in range(count - 1):
            out[j.table].append(_delete_line(rs, j))
    return out


def jump_rules_for(cfg: ProxyConfig) -> list[JumpRule]:
    """iptablesJumpChains, plus the kubelet's KUBE-FIREWALL jumps when localhost NodePorts are on."""
    jumps = list(JUMP_CHAINS)
    if cfg.effective_localhost_nodeports():
        jumps += KUBELET_JUMP_CHAINS
    return jumps


def _delete_line(rs: Ruleset | None, j: JumpRule) -> str:
    """A -D line with the exact specification of an existing copy (so the kernel finds it)."""
    assert rs is not None
    ch = rs.chain(j.table, j.src_chain)
    assert ch is not None
    for r in ch.rules:
        if _is_same_jump(r, j):
            return f"-D {j.src_chain} {format_args(r)}"
    return j.line("-D")


def existing_service_chains(existing_save: str | None) -> set[str]:
    """kube-proxy's per-service chains present in the nat table of an iptables-save dump."""
    if not existing_save:
        return set()
    rs = Ruleset.from_text(existing_save)
    return {c for c in rs.chain_names("nat") if C.is_service_chain(c)}


# --- whole sync -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderState:
    """What a partial sync needs to know about the previous one: per Service (`ns/name`) the digest of
    its per-service nat chains and their names, and a fingerprint of node + config."""

    services: Mapping[str, tuple[str, tuple[str, ...]]]
    fingerprint: str
    jumps: frozenset[str] = frozenset()  # JumpRule keys ensured by the last full sync

    def chains(self) -> set[str]:
        return {c for _, names in self.services.values() for c in names}


@dataclass(frozen=True)
class SyncCounts:
    """Numbers for the event timeline, named after kube-proxy's log fields and metrics."""

    full: bool
    service_ports: int
    endpoints: int
    filter_chains: int
    filter_rules: int
    nat_chains: int
    nat_rules: int  # rules written in this payload (sync_proxy_rules_iptables_last{table=nat})
    nat_rules_total: int  # rules kube-proxy owns in nat after the sync (sync_proxy_rules_iptables_total)
    services_rewritten: tuple[str, ...]
    chains_deleted: tuple[str, ...]
    jump_rules_added: int
    no_local_endpoints_internal: int
    no_local_endpoints_external: int
    large_cluster_mode: bool


@dataclass(frozen=True)
class SyncResult:
    payload: str
    state: RenderState
    counts: SyncCounts


def _fingerprint(node: NodeInfo, cfg: ProxyConfig) -> str:
    return hashlib.sha256(repr((node, cfg)).encode()).hexdigest()[:16]


def _lookup(endpoints: EndpointsMap, sp: ServicePort) -> Sequence[Endpoint]:
    return endpoints.get(sp.key, ())


def render(services: Iterable[ServicePort], endpoints: EndpointsMap, node: NodeInfo, cfg: ProxyConfig, *,
           prev: RenderState | None = None, full: bool | None = None,
           existing_save: str | None = None) -> SyncResult:
    """Render one sync.

    - `endpoints` maps `ServicePort.key` ((port name string, protocol)) to that port's endpoints.
    - `prev` is the state returned by the previous successful sync; `full=None` means "full if there is
      no usable previous state", `full=True` forces a full sync (kube-proxy: startup, failure, hourly).
    - `existing_save` (full syncs only): the netns' `iptables-save` text, used to add only missing jump
      rules and to delete leftover service chains (kube-proxy's iptables-save + `-X`). Without it, the
      jumps recorded in `prev` are assumed present (so a full sync after a partial one does not
      duplicate them) and every other jump is inserted.
    """
    fp = _fingerprint(node, cfg)
    if full is None:
        full = prev is None or prev.fingerprint != fp
    if not full and (prev is None or prev.fingerprint != fp):
        full = True

    ports = sorted((sp for sp in services if not sp.headless), key=lambda s: s.sort_key())
    eps_by_port = {sp.key: dedupe_endpoints(_lookup(endpoints, sp)) for sp in ports}
    total_eps = sum(len(v) for v in eps_by_port.values())
    large = total_eps > cfg.large_cluster_threshold
    renders = [_render_port(sp, eps_by_port[sp.key], node, cfg, large) for sp in ports]

    # Per-Service digests decide which services a partial sync rewrites.
    per_service: dict[str, list[_PortRender]] = {}
    for r in renders:
        per_service.setdefault(r.sp.service_name, []).append(r)
    new_services: dict[str, tuple[str, tuple[str, ...]]] = {}
    for svc, rs in per_service.items():
        h = hashlib.sha256()
        for r in rs:
            h.update("\n".join(r.chain_names).encode() + b"\0" + "\n".join(r.chain_rules).encode() + b"\1")
        new_services[svc] = (h.hexdigest()[:20], tuple(c for r in rs for c in r.chain_names))
    if full:
        rewrite = set(new_services)
    else:
        assert prev is not None
        rewrite = {s for s, v in new_services.items() if prev.services.get(s, (None,))[0] != v[0]}

    active = {c for _, names in new_services.values() for c in names}
    stale = set(prev.chains()) if prev else set()
    if full:
        stale |= existing_service_chains(existing_save)
    stale = sorted(c for c in stale - active if C.is_service_chain(c))

    localhost_np = cfg.effective_localhost_nodeports()
    mark = cfg.masquerade_mark

    # filter table
    filter_chains = [C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_FORWARD, C.KUBE_NODEPORTS,
                     C.KUBE_PROXY_FIREWALL]
    filter_rules: list[str] = []
    if localhost_np:
        filter_chains.append(C.KUBE_FIREWALL)
        filter_rules.append(f"-A {C.KUBE_FIREWALL} -m comment --comment {_q('block incoming localnet connections')}"
                            " -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT"
                            " -j DROP")
    for r in renders:
        filter_rules.extend(r.filter_rules)
    if not cfg.conntrack_tcp_be_liberal:
        nf = f" -m nfacct --nfacct-name {C.CT_INVALID_NFACCT}" if cfg.nfacct else ""
        filter_rules.append(f"-A {C.KUBE_FORWARD} -m conntrack --ctstate INVALID{nf} -j DROP")
    filter_rules.append(f"-A {C.KUBE_FORWARD} -m comment --comment {_q('kubernetes forwarding rules')} "
                        f"-m mark --mark {mark}/{mark} -j ACCEPT")
    filter_rules.append(f"-A {C.KUBE_FORWARD} -m comment --comment {_q('kubernetes forwarding conntrack rule')} "
                        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    # nat table
    nat_chains = [C.KUBE_SERVICES, C.KUBE_NODEPORTS, C.KUBE_POSTROUTING, C.KUBE_MARK_MASQ]
    masq_rule = (f"-A {C.KUBE_POSTROUTING} -m comment --comment "
                 f"{_q('kubernetes service traffic requiring SNAT')} -j MASQUERADE")
    if cfg.random_fully:
        masq_rule += " --random-fully"
    nat_rules = [
        f"-A {C.KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
        f"-A {C.KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
        masq_rule,
        f"-A {C.KUBE_MARK_MASQ} -j MARK --or-mark {mark}",
    ]
    skipped_rules = 0
    for r in renders:
        nat_rules.extend(r.top_nat)
        if r.sp.service_name in rewrite:
            nat_chains.extend(r.chain_names)
            nat_rules.extend(r.chain_rules)
        else:
            skipped_rules += len(r.chain_rules)
    for c in stale:
        nat_chains.append(c)
        nat_rules.append(f"-X {c}")
    if cfg.nodeport_match_all():
        dest = "-m addrtype --dst-type LOCAL" + ("" if localhost_np else " ! -d 127.0.0.0/8")
        nat_rules.append(f"-A {C.KUBE_SERVICES} -m comment --comment {_q(NODEPORTS_LAST_COMMENT)} {dest} "
                         f"-j {C.KUBE_NODEPORTS}")
    else:
        for ip in cfg.nodeport_ips(node):
            if ip.startswith("127.") and not localhost_np:
                continue
            nat_rules.append(f"-A {C.KUBE_SERVICES} -m comment --comment {_q(NODEPORTS_LAST_COMMENT)} -d {ip} "
                             f"-j {C.KUBE_NODEPORTS}")

    prev_jumps = prev.jumps if prev else frozenset()
    if full:
        jumps = render_jump_rules(existing_save, cfg, prev_jumps)
        ensured = prev_jumps | {j.key for j in jump_rules_for(cfg)}
    else:
        jumps = {"filter": [], "nat": []}
        ensured = prev_jumps

    lines = ["*filter"]
    lines += [f":{c} - [0:0]" for c in filter_chains]
    lines += filter_rules
    lines += jumps["filter"]
    lines.append("COMMIT")
    lines.append("*nat")
    lines += [f":{c} - [0:0]" for c in nat_chains]
    lines += nat_rules
    lines += jumps["nat"]
    lines.append("COMMIT")
    payload = "\n".join(lines) + "\n"

    n_nat_rules = sum(1 for x in nat_rules if x.startswith("-A "))
    counts = SyncCounts(
        full=full,
        service_ports=len(ports),
        endpoints=total_eps,
        filter_chains=len(filter_chains),
        filter_rules=len(filter_rules),
        nat_chains=len(nat_chains),
        nat_rules=n_nat_rules,
        nat_rules_total=n_nat_rules + skipped_rules,
        services_rewritten=tuple(sorted(rewrite)),
        chains_deleted=tuple(stale),
        jump_rules_added=sum(1 for t in jumps.values() for x in t if x.startswith("-I ")),
        no_local_endpoints_internal=sum(1 for r in renders if r.no_local_internal),
        no_local_endpoints_external=sum(1 for r in renders if r.no_local_external),
        large_cluster_mode=large,
    )
    return SyncResult(payload, RenderState(new_services, fp, frozenset(ensured)), counts)


def render_full(services: Iterable[ServicePort], endpoints: EndpointsMap, node: NodeInfo, cfg: ProxyConfig, *,
                existing_save: str | None = None, prev: RenderState | None = None) -> SyncResult:
    """A full sync: every chain redeclared, jump rules ensured, leftovers deleted."""
    return render(services, endpoints, node, cfg, prev=prev, full=True, existing_save=existing_save)


def render_partial(prev: RenderState, services: Iterable[ServicePort], endpoints: EndpointsMap, node: NodeInfo,
                   cfg: ProxyConfig) -> SyncResult:
    """A partial sync against `prev` (falls back to a full sync if node or config changed)."""
    return render(services, endpoints, node, cfg, prev=prev, full=False)
