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

Two departures that keep large clusters workable, both leaving the kernel with the same rules:
- `ProxyConfig.skip_unchanged_top_chains` (off by default) leaves the top-level chains out of a partial
  sync when no port's contribution to them changed, so a one-endpoint change writes only that service's
  chains instead of every KUBE-SERVICES rule.
- `ProxyConfig.restore_stage_chains` splits a sync that rewrites many service chains into several restores
  (`SyncResult.stages`): iptables-nft-restore is quadratic in the chains one payload mentions.
The renderer also remembers each port's render (`RenderState.book`) and reuses it while the port's inputs
are unchanged, so a partial sync renders only what changed.

Told which Services changed (`render(..., changed=...)`, what the change trackers hand over), a partial
sync does not even look at the others: kube-proxy's syncProxyRules (pkg/proxy/iptables/proxier.go) takes
`serviceChanged` / `endpointsChanged` from its change trackers' PendingChanges() and, with tryPartialSync,
skips the per-service chains of every Service in neither set; it still walks every service port to write
KUBE-SERVICES. Here the book keeps every port's top-level rules as text in the top-level chains' order, so
the changed Services' entries are replaced in place (found by bisection on the sort key) and the
top-level chains, when they must be written, are one join of those texts: the Python work of a
one-endpoint change is that Service's, whatever the number of Services. The output is byte for byte that
of the sync that compares every port (tests/unit/proxy/test_proxy_render_changed.py).
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import operator
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from netsim.parsers.iptables_save import declared_chains
from netsim.proxy import chains as C
from netsim.proxy import huge
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


def uses_zone_hints(endpoints: Sequence[Endpoint], zone: str | None) -> bool:
    """topology.go topologyModeFromHints, PreferSameZone part: every ready endpoint carries zone hints
    and at least one is hinted for this node's zone (a node without a zone label never matches). Node
    hints (PreferSameNode) are behind an alpha gate and not emulated."""
    ready = [e for e in endpoints if e.ready]
    if not zone or not ready or any(not e.zone_hints for e in ready):
        return False
    return any(zone in e.zone_hints for e in ready)


def categorize_endpoints(endpoints: Sequence[Endpoint], sp: ServicePort, node_name: str,
                         zone: str | None = None) -> Categorized:
    """topology.go CategorizeEndpoints.

    Cluster set: ready endpoints (only those hinted for this node's zone when the hints apply, see
    `uses_zone_hints`), else serving+terminating ones. Local set: local ready endpoints, else local
    serving+terminating ones. The fallback is chosen independently for the two sets.
    """
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if not endpoints:
        return Categorized([], [], [], False)
    topology = False
    if sp.uses_cluster_endpoints():
        topology = uses_zone_hints(endpoints, zone)
        cluster = [e for e in endpoints if e.ready and (not topology or zone in e.zone_hints)]
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
    if not use_terminating and not topology:  # cluster is then a superset of local
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
    detector = cfg.local_detector(node)
    cat = categorize_endpoints(eps, sp, node.name, node.zone)
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
            rules.append(f"-A {internal_chain} {args} {detector.if_not_local} -j {masq}")
    # External destinations.
    if uses_ext_chain:
        decl.append(ext_chain)
        if not sp.external_policy_local():
            rules.append(f"-A {ext_chain} -m comment --comment "
                         f"{_q(f'masquerade traffic for {spn} external destinations')} -j {masq}")
        else:
            if detector:
                rules.append(f"-A {ext_chain} -m comment --comment "
                             f"{_q(f'pod traffic for {spn} external destinations')} {detector.if_local} "
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
    _share(out)
    return out


def _share(r: _PortRender) -> None:
    """Intern a port's rule texts and chain names. Every node's kube-proxy renders the same Service, and
    for most ports the texts are the same on every node: interned, all nodes' render states hold one copy
    (a 10,000-endpoint Service on 100 nodes is 3 million rule strings otherwise, ~0.5 GB)."""
    for texts in (r.top_nat, r.filter_rules, r.chain_names, r.chain_rules):
        texts[:] = map(sys.intern, texts)


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
    rs = Ruleset.from_text(builtin_chains_only(existing_save)) if existing_save else None
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


_BUILTIN_RULE_PREFIXES = tuple(f"-A {c} " for c in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"))


def builtin_chains_only(save: str) -> str:
    """An iptables-save dump with only the built-in chains' rules and the declarations they can need
    (every chain but kube-proxy's per-service ones, which nothing built in jumps to). The jump-rule check
    reads only the built-in chains, and parsing the whole dump of a large cluster (170k rules at 10k
    services) would take seconds."""
    keep = []
    for x in save.splitlines():
        if x.startswith("-A "):
            if x.startswith(_BUILTIN_RULE_PREFIXES):
                keep.append(x)
        elif not (x.startswith(":") and C.is_service_chain(x[1:])):
            keep.append(x)
    return "\n".join(keep) + "\n"


def existing_service_chains(existing_save: str | None) -> set[str]:
    """kube-proxy's per-service chains present in the nat table of an iptables-save dump (read from the
    chain declarations alone: iptables-save declares every chain of a table before its rules)."""
    if not existing_save:
        return set()
    return {name for name in declared_chains(existing_save, "nat") if C.is_service_chain(name)}


# --- whole sync -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PortEntry:
    """One service port's render, remembered so the next sync can reuse it when nothing it depends on
    changed (same ServicePort, same endpoint input, same large-cluster mode; node and config are covered
    by the state fingerprint). Its top-level rules are kept as one text each, ready to be spliced into
    KUBE-SERVICES / KUBE-NODEPORTS and the filter chains without touching the other ports."""

    sp: ServicePort
    key: tuple[str, str]  # sp.key, computed once
    sort_key: tuple[str, str, str, str]  # sp.sort_key(): where the port sits in the top-level chains
    service: str  # sp.service_name
    raw: tuple[Endpoint, ...]  # the endpoints as given, before dedupe
    eps: list[Endpoint]  # after dedupe_endpoints
    large: bool
    names: tuple[str, ...]  # the port's per-service chains, in declaration order
    chain_rules: tuple[str, ...]  # their rules, in write order
    top_text: str  # its KUBE-SERVICES / KUBE-NODEPORTS rules, one per line ("" when none)
    filter_text: str  # its filter-table rules, likewise
    n_top: int
    n_filter: int
    no_local_internal: bool
    no_local_external: bool
    digest: str  # of the per-service chains (names and rules)


def _entry(sp: ServicePort, key: tuple[str, str], raw: tuple[Endpoint, ...], eps: list[Endpoint], node: NodeInfo,
           cfg: ProxyConfig, large: bool) -> _PortEntry:
    r = _render_port(sp, eps, node, cfg, large)
    digest = hashlib.sha256("\n".join(r.chain_names).encode() + b"\0" + "\n".join(r.chain_rules).encode()
                            + b"\1").hexdigest()[:20]
    return _PortEntry(sp, key, sp.sort_key(), sp.service_name, raw, eps, large, tuple(r.chain_names),
                      tuple(r.chain_rules), "\n".join(r.top_nat), "\n".join(r.filter_rules), len(r.top_nat),
                      len(r.filter_rules), r.no_local_internal, r.no_local_external, digest)


def _service_value(entries: Sequence[_PortEntry]) -> tuple[str, tuple[str, ...]]:
    """RenderState.services' value for one Service: its ports' chain digests and chain names, in order."""
    return "+".join(e.digest for e in entries), tuple(c for e in entries for c in e.names)


@dataclass
class _Book:
    """Every port's render in the order of the top-level chains (parallel lists, sorted by
    ServicePort.sort_key), indexed by port key and by Service, with the totals the counts need. A partial
    sync that is told which Services changed edits only their entries: it finds them by bisection, so
    neither the edit nor the top-level chains' text (a join of the per-port texts) costs Python work per
    unchanged port."""

    keys: list[tuple[str, str, str, str]] = field(default_factory=list)
    seq: list[_PortEntry] = field(default_factory=list)
    top: list[str] = field(default_factory=list)  # seq[i].top_text
    filt: list[str] = field(default_factory=list)  # seq[i].filter_text
    ports: dict[tuple[str, str], _PortEntry] = field(default_factory=dict)
    by_service: dict[str, tuple[_PortEntry, ...]] = field(default_factory=dict)
    services: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    endpoints: int = 0
    n_top: int = 0
    n_filter: int = 0
    n_chain_rules: int = 0
    no_local_internal: int = 0
    no_local_external: int = 0
    dupes: bool = False  # a port key given twice (only a walk can render that)

    @classmethod
    def of(cls, entries: list[_PortEntry]) -> _Book:
        book = cls(keys=[e.sort_key for e in entries], seq=entries, top=[e.top_text for e in entries],
                   filt=[e.filter_text for e in entries])
        grouped: dict[str, list[_PortEntry]] = {}
        for e in entries:
            book.ports[e.key] = e
            grouped.setdefault(e.service, []).append(e)
            book._count(e, 1)
        for s, es in grouped.items():
            book.by_service[s] = tuple(es)
            book.services[s] = _service_value(es)
        book.dupes = len(book.ports) != len(entries)
        return book

    def copy(self) -> _Book:
        """A copy to edit (the lists and maps are copied whole, in C; the entries are shared)."""
        return _Book(list(self.keys), list(self.seq), list(self.top), list(self.filt), dict(self.ports),
                     dict(self.by_service), dict(self.services), self.endpoints, self.n_top, self.n_filter,
                     self.n_chain_rules, self.no_local_internal, self.no_local_external)

    def _count(self, e: _PortEntry, sign: int) -> None:
        self.endpoints += sign * len(e.eps)
        self.n_top += sign * e.n_top
        self.n_filter += sign * e.n_filter
        self.n_chain_rules += sign * len(e.chain_rules)
        self.no_local_internal += sign * e.no_local_internal
        self.no_local_external += sign * e.no_local_external

    def index(self, e: _PortEntry) -> int:
        """Where the entry is (entries with the same sort key, only ever in a walked book, are adjacent)."""
        i = bisect.bisect_left(self.keys, e.sort_key)
        while self.seq[i] is not e:
            i += 1
        return i

    def replace_service(self, service: str, entries: list[_PortEntry]) -> None:
        """Put `entries` (sorted, all of `service`) where the Service's previous ports were."""
        for old in self.by_service.pop(service, ()):
            i = self.index(old)
            del self.keys[i], self.seq[i], self.top[i], self.filt[i]
            del self.ports[old.key]
            self._count(old, -1)
        self.services.pop(service, None)
        for e in entries:
            i = bisect.bisect_left(self.keys, e.sort_key)
            self.keys.insert(i, e.sort_key)
            self.seq.insert(i, e)
            self.top.insert(i, e.top_text)
            self.filt.insert(i, e.filter_text)
            self.ports[e.key] = e
            self._count(e, 1)
        if entries:
            self.by_service[service] = tuple(entries)
            self.services[service] = _service_value(entries)


@dataclass(frozen=True)
class RenderState:
    """What a partial sync needs to know about the previous one: per Service (`ns/name`) the digest of
    its per-service nat chains and their names, a fingerprint of node + config, and every port's render
    in order (`book`, reused when unchanged)."""

    services: Mapping[str, tuple[str, tuple[str, ...]]]
    fingerprint: str
    jumps: frozenset[str] = frozenset()  # JumpRule keys ensured by the last full sync
    book: _Book = field(default_factory=_Book, compare=False, repr=False)
    inputs: tuple[ServicePort, ...] = field(default=(), compare=False, repr=False)  # as given, in order
    large: bool = field(default=False, compare=False, repr=False)

    @property
    def ports(self) -> Mapping[tuple[str, str], _PortEntry]:
        return self.book.ports

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
    top_chains_skipped: tuple[str, ...] = ()  # `table/chain` left out because unchanged
    stages: int = 1  # restores the sync is applied in


@dataclass(frozen=True)
class SyncResult:
    """`payload` is the whole sync as one restore. When `stages` is not empty, apply those restores in
    order instead (same end state; see ProxyConfig.restore_stage_chains). An empty payload means there is
    nothing to write."""

    payload: str
    state: RenderState
    counts: SyncCounts
    stages: tuple[str, ...] = ()

    def restores(self) -> tuple[str, ...]:
        """The restore payloads to apply, in order."""
        if self.stages:
            return self.stages
        return (self.payload,) if self.payload else ()


def _fingerprint(node: NodeInfo, cfg: ProxyConfig) -> str:
    return hashlib.sha256(repr((node.proxy_key, cfg)).encode()).hexdigest()[:16]


def _table(name: str, chains: Sequence[str], blocks: Sequence[str]) -> list[str]:
    """A table's restore text as lines and blocks of lines (empty blocks left out)."""
    return [f"*{name}", *(f":{c} - [0:0]" for c in chains), *filter(None, blocks), "COMMIT"]


@dataclass
class _Plan:
    """What one sync changes: the new book, the Services whose chains are rewritten, the chains no longer
    used, and whether the top-level chains came out the same."""

    book: _Book
    rewrite: set[str]
    stale: set[str]
    top_same: bool
    large: bool


def _reuse(sp: ServicePort, src: Sequence[Endpoint], old: _PortEntry | None
           ) -> tuple[tuple[Endpoint, ...], list[Endpoint], _PortEntry | None]:
    """The port's endpoints (raw, deduped) and its previous entry if that can be reused as it is."""
    # The same endpoint objects as last time (the common case) are recognised without copying.
    if old is not None and len(src) == len(old.raw) and all(map(operator.is_, src, old.raw)):
        return old.raw, old.eps, old if (old.sp is sp or old.sp == sp) else None
    if old is not None and (raw := tuple(src)) == old.raw:
        return raw, old.eps, old if (old.sp is sp or old.sp == sp) else None
    raw = tuple(src)
    return raw, dedupe_endpoints(raw), None


def _plan_walk(given: tuple[ServicePort, ...], endpoints: EndpointsMap, node: NodeInfo, cfg: ProxyConfig,
               prev: RenderState | None, full: bool) -> _Plan:
    """Every port looked at: reused when its inputs are unchanged since `prev` (usable: same node and
    config), rendered otherwise. The way of a full sync, and of a partial one not told what changed."""
    if prev is not None and len(given) == len(prev.inputs) and all(map(operator.is_, given, prev.inputs)):
        order = [(e.sp, e.key) for e in prev.book.seq]  # the very same ServicePort objects: same order
    else:
        order = [(sp, sp.key) for sp in sorted((sp for sp in given if not sp.headless), key=lambda s: s.sort_key())]
    cache = prev.book.ports if prev is not None else {}
    # First pass: endpoints and, per port, the previous entry if it can be reused; the large-cluster mode
    # needs the endpoint total first.
    todo = []
    total_eps = 0
    for sp, key in order:
        raw, eps, old = _reuse(sp, endpoints.get(key, ()), cache.get(key))
        total_eps += len(eps)
        todo.append((sp, key, raw, eps, old))
    large = total_eps > cfg.large_cluster_threshold
    entries = [old if old is not None and old.large == large else _entry(sp, key, raw, eps, node, cfg, large)
               for sp, key, raw, eps, old in todo]
    book = _Book.of(entries)
    # Per-Service digests decide which services a partial sync rewrites (upstream tracks changes per
    # NamespacedName too).
    if full or prev is None:
        rewrite = set(book.services)
    else:
        old_services = prev.services
        rewrite = {s for s, v in book.services.items() if (o := old_services.get(s)) is None or o[0] != v[0]}
    before = prev.book.seq if prev is not None else []
    top_same = len(before) == len(entries) and all(
        e is p or (e.key == p.key and e.top_text == p.top_text and e.filter_text == p.filter_text)
        for e, p in zip(entries, before))
    return _Plan(book, rewrite, set() if full else _stale(book, prev, rewrite), top_same, large)


def _plan_changed(prev: RenderState, changed: Mapping[str, Sequence[ServicePort]], endpoints: EndpointsMap,
                  node: NodeInfo, cfg: ProxyConfig) -> _Plan | None:
    """Only the Services in `changed` looked at (kube-proxy's partial sync: proxier.go syncProxyRules
    renders the chains of the Services in `serviceChanged` / `endpointsChanged`, the pending changes of its
    change trackers); the other ports keep their entries and their place. None when this cannot be done
    (the large-cluster mode flips, which changes every port's rules; a Service given twice the same port)."""
    if prev.book.dupes:
        return None
    book = prev.book.copy()
    plans = []
    total = book.endpoints
    for s in sorted(changed):
        ports = sorted((sp for sp in changed[s] if not sp.headless), key=lambda sp: sp.sort_key())
        if any(sp.service_name != s for sp in ports) or len({sp.key for sp in ports}) != len(ports):
            return None
        todo = []
        for sp in ports:
            key = sp.key
            raw, eps, old = _reuse(sp, endpoints.get(key, ()), book.ports.get(key))
            todo.append((sp, key, raw, eps, old))
            total += len(eps)
        total -= sum(len(e.eps) for e in book.by_service.get(s, ()))
        plans.append((s, todo))
    large = total > cfg.large_cluster_threshold
    if large != prev.large:
        return None
    rewrite: set[str] = set()
    top_same = True
    old_services = prev.services
    for s, todo in plans:
        before = book.by_service.get(s, ())
        entries = [old if old is not None and old.large == large else _entry(sp, key, raw, eps, node, cfg, large)
                   for sp, key, raw, eps, old in todo]
        if len(before) != len(entries) or any(
                e is not p and (e.key != p.key or e.top_text != p.top_text or e.filter_text != p.filter_text)
                for e, p in zip(entries, before)):
            top_same = False
        book.replace_service(s, entries)
        if entries and ((o := old_services.get(s)) is None or o[0] != book.services[s][0]):
            rewrite.add(s)
    return _Plan(book, rewrite, _stale(book, prev, rewrite, changed), top_same, large)


def _stale(book: _Book, prev: RenderState | None, rewrite: Collection[str],
           changed: Collection[str] | None = None) -> set[str]:
    """Chains a partial sync leaves unused. A chain name is a hash of its service port's name (and
    endpoint), so it belongs to one Service; only services that changed or went away can leave chains
    behind."""
    stale: set[str] = set()
    if prev is None:
        return stale
    old_services = prev.services
    for s in rewrite:  # changed (or new) services: the chains they no longer have
        if (o := old_services.get(s)) is not None:
            stale.update(set(o[1]) - set(book.services[s][1]))
    gone = (old_services.keys() - book.services.keys()) if changed is None else \
        [s for s in changed if s in old_services and s not in book.services]
    for s in gone:  # services gone
        stale.update(old_services[s][1])
    return stale


def render(services: Iterable[ServicePort], endpoints: EndpointsMap, node: NodeInfo, cfg: ProxyConfig, *,
           prev: RenderState | None = None, full: bool | None = None,
           existing_save: str | None = None,
           changed: Mapping[str, Sequence[ServicePort]] | None = None) -> SyncResult:
    """Render one sync.

    - `endpoints` maps `ServicePort.key` ((port name string, protocol)) to that port's endpoints.
    - `prev` is the state returned by the previous successful sync; `full=None` means "full if there is
      no usable previous state", `full=True` forces a full sync (kube-proxy: startup, failure, hourly).
    - `existing_save` (full syncs only): the netns' `iptables-save` text, used to add only missing jump
      rules and to delete leftover service chains (kube-proxy's iptables-save + `-X`). Without it, the
      jumps recorded in `prev` are assumed present (so a full sync after a partial one does not
      duplicate them) and every other jump is inserted.
    - `changed` (partial syncs): every Service (`ns/name`) whose ports or endpoints may differ from
      `prev`'s, with its ports now (none: gone), as kube-proxy's change trackers hand their pending
      changes to syncProxyRules. Only those Services are looked at; the other ports' rules are taken from
      `prev` as they are, so a Service left out of `changed` keeps its old rules. Without it every port
      is compared with `prev`.

    Ports whose inputs did not change since `prev` reuse their previous render, and a partial sync
    rewrites only the services that changed; with `changed`, a one-endpoint change costs Python work for
    that Service only (the top-level chains, when they must be written, are joined from per-port texts).
    """
    fp = _fingerprint(node, cfg)
    if full is None:
        full = prev is None or prev.fingerprint != fp
    if not full and (prev is None or prev.fingerprint != fp):
        full = True
    given = tuple(services)
    usable = prev if prev is not None and prev.fingerprint == fp else None
    plan = None
    if not full and changed is not None and usable is not None:
        plan = _plan_changed(usable, changed, endpoints, node, cfg)
    if plan is None:
        plan = _plan_walk(given, endpoints, node, cfg, usable, full)
    if full:  # every chain kube-proxy had (by the previous sync, or in the kernel) that is not in use now
        plan.stale = ((prev.chains() if prev else set()) | existing_service_chains(existing_save)) - {
            c for _, names in plan.book.services.values() for c in names}
    return _assemble(plan, given, node, cfg, fp, prev, full, existing_save)


def _assemble(plan: _Plan, given: tuple[ServicePort, ...], node: NodeInfo, cfg: ProxyConfig, fp: str,
              prev: RenderState | None, full: bool, existing_save: str | None) -> SyncResult:
    """The restore payload(s), counts and next state of a planned sync (the layout of the module
    docstring)."""
    book, rewrite = plan.book, plan.rewrite
    stale = sorted(c for c in plan.stale if C.is_service_chain(c))
    stale_lines = [f"-X {c}" for c in stale]
    # The rewritten Services' ports, in the order of the top-level chains.
    if full:
        written = book.seq
    else:
        written = sorted((e for s in rewrite for e in book.by_service[s]), key=attrgetter("sort_key"))
    localhost_np = cfg.effective_localhost_nodeports()
    mark = cfg.masquerade_mark
    mark_masq_rule = f"-A {C.KUBE_MARK_MASQ} -j MARK --or-mark {mark}"
    last = _nodeports_last_rules(cfg, node, localhost_np)
    # Every top-level rule comes from node + config (same fingerprint) or from a port's top-level texts.
    skip_top = not full and cfg.skip_unchanged_top_chains and prev is not None and plan.top_same
    svc_chains = [c for e in written for c in e.names]
    n_written_chain_rules = sum(len(e.chain_rules) for e in written)
    staged = bool(cfg.restore_stage_chains) and (len(svc_chains) > cfg.restore_stage_chains
                                                  or len(stale) > cfg.restore_stage_chains)

    filter_chains: list[str] = []
    filter_blocks: list[str] = []
    n_filter_rules = 0
    top_nat_chains = [C.KUBE_SERVICES, C.KUBE_NODEPORTS, C.KUBE_POSTROUTING, C.KUBE_MARK_MASQ]
    fixed: list[str] = []
    if skip_top:
        nat_chains = svc_chains + stale
        nat_blocks = [x for e in written for x in e.chain_rules] + stale_lines
        n_nat_written = n_written_chain_rules
    else:
        filter_chains = [C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_FORWARD, C.KUBE_NODEPORTS,
                         C.KUBE_PROXY_FIREWALL]
        head: list[str] = []
        if localhost_np:
            filter_chains.append(C.KUBE_FIREWALL)
            head.append(f"-A {C.KUBE_FIREWALL} -m comment --comment "
                        f"{_q('block incoming localnet connections')} -d 127.0.0.0/8 ! -s 127.0.0.0/8 "
                        "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
        tail: list[str] = []
        if not cfg.conntrack_tcp_be_liberal:
            nf = f" -m nfacct --nfacct-name {C.CT_INVALID_NFACCT}" if cfg.nfacct else ""
            tail.append(f"-A {C.KUBE_FORWARD} -m conntrack --ctstate INVALID{nf} -j DROP")
        tail.append(f"-A {C.KUBE_FORWARD} -m comment --comment {_q('kubernetes forwarding rules')} "
                    f"-m mark --mark {mark}/{mark} -j ACCEPT")
        tail.append(f"-A {C.KUBE_FORWARD} -m comment --comment {_q('kubernetes forwarding conntrack rule')} "
                    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        filter_blocks = [*head, "\n".join(filter(None, book.filt)), *tail]
        n_filter_rules = len(head) + book.n_filter + len(tail)

        masq_rule = (f"-A {C.KUBE_POSTROUTING} -m comment --comment "
                     f"{_q('kubernetes service traffic requiring SNAT')} -j MASQUERADE")
        if cfg.random_fully:
            masq_rule += " --random-fully"
        fixed = [f"-A {C.KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
                 f"-A {C.KUBE_POSTROUTING} -j MARK --xor-mark {mark}", masq_rule, mark_masq_rule]
        nat_chains = top_nat_chains + svc_chains + stale
        # Each port's KUBE-SERVICES / KUBE-NODEPORTS rules, a rewritten port's own chains right after them
        # (kube-proxy's write order): the unchanged ports' texts are spliced in as they are.
        if full:  # the lines themselves (no text joined twice: a full payload is tens of MB at 10,000)
            body = [x for e in book.seq for x in (e.top_text, *e.chain_rules)]
        else:
            pieces = list(book.top)
            for e in written:
                pieces[book.index(e)] = "\n".join(filter(None, (e.top_text, *e.chain_rules)))
            body = ["\n".join(filter(None, pieces))]
        nat_blocks = [*fixed, *body, *stale_lines, *last]
        n_nat_written = len(fixed) + book.n_top + n_written_chain_rules + len(last)

    prev_jumps = prev.jumps if prev else frozenset()
    if full:
        jumps = render_jump_rules(existing_save, cfg, prev_jumps)
        ensured = prev_jumps | {j.key for j in jump_rules_for(cfg)}
    else:
        jumps = {"filter": [], "nat": []}
        ensured = prev_jumps

    filter_lines = [*filter_blocks, *jumps["filter"]]
    nat_lines = [*nat_blocks, *jumps["nat"]]
    lines: list[str] = []
    if filter_chains or any(filter_lines):
        lines += _table("filter", filter_chains, filter_lines)
    if nat_chains or any(nat_lines):
        lines += _table("nat", nat_chains, nat_lines)
    payload = "\n".join(lines) + "\n" if lines else ""

    stages: tuple[str, ...] = ()
    if staged:
        late_x = len(stale) > cfg.restore_stage_chains  # too many to delete in the switch-over (netsim.proxy.huge)
        rest_chains = ([] if skip_top else top_nat_chains) + ([] if late_x else stale)
        if skip_top:
            final_lines = ([] if late_x else stale_lines) + jumps["nat"]
        else:
            final_lines = [*fixed, "\n".join(filter(None, book.top)), *([] if late_x else stale_lines), *last,
                           *jumps["nat"]]
        late = huge.stale_stages(stale, cfg.restore_stage_chains) if late_x else []
        stages = _stages(written, rewrite, cfg.restore_stage_chains, mark_masq_rule, filter_chains,
                         filter_lines, rest_chains, final_lines, _OldRules(prev, full, existing_save)) + tuple(late)

    skipped = tuple(sorted([f"filter/{c}" for c in (C.KUBE_SERVICES, C.KUBE_EXTERNAL_SERVICES, C.KUBE_FORWARD,
                                                      C.KUBE_NODEPORTS, C.KUBE_PROXY_FIREWALL)]
                           + ([f"filter/{C.KUBE_FIREWALL}"] if localhost_np else [])
                           + [f"nat/{c}" for c in top_nat_chains])) if skip_top else ()
    counts = SyncCounts(
        full=full,
        service_ports=len(book.seq),
        endpoints=book.endpoints,
        filter_chains=len(filter_chains),
        filter_rules=n_filter_rules,
        nat_chains=len(nat_chains),
        nat_rules=n_nat_written,
        nat_rules_total=4 + len(last) + book.n_top + book.n_chain_rules,
        services_rewritten=tuple(sorted(rewrite)),
        chains_deleted=tuple(stale),
        jump_rules_added=sum(1 for t in jumps.values() for x in t if x.startswith("-I ")),
        no_local_endpoints_internal=book.no_local_internal,
        no_local_endpoints_external=book.no_local_external,
        large_cluster_mode=plan.large,
        top_chains_skipped=skipped,
        stages=len(stages) or 1,
    )
    state = RenderState(book.services, fp, frozenset(ensured), book, given, plan.large)
    return SyncResult(payload, state, counts, stages)


def _nodeports_last_rules(cfg: ProxyConfig, node: NodeInfo, localhost_np: bool) -> list[str]:
    """The KUBE-SERVICES -> KUBE-NODEPORTS rule(s) that must stay last in KUBE-SERVICES."""
    if cfg.nodeport_match_all(node):
        dest = "-m addrtype --dst-type LOCAL" + ("" if localhost_np else " ! -d 127.0.0.0/8")
        return [f"-A {C.KUBE_SERVICES} -m comment --comment {_q(NODEPORTS_LAST_COMMENT)} {dest} "
                f"-j {C.KUBE_NODEPORTS}"]
    out = []
    for ip in cfg.nodeport_ips(node):
        if ip.startswith("127.") and not localhost_np:
            continue
        out.append(f"-A {C.KUBE_SERVICES} -m comment --comment {_q(NODEPORTS_LAST_COMMENT)} -d {ip} "
                   f"-j {C.KUBE_NODEPORTS}")
    return out


class _OldRules:
    """What the kernel holds of a Service's chains before this sync, for netsim.proxy.huge: the previous
    successful sync's render when there is one (the agent keeps only states the kernel accepted), else the
    rule count read from `existing_save` (full sync after a restart or a failure)."""

    def __init__(self, prev: RenderState | None, full: bool, existing_save: str | None):
        self.prev, self.full, self.save = prev, full, existing_save

    def _prev_chains(self, service: str) -> dict[str, list[str]] | None:
        if self.prev is None or service not in self.prev.services:
            return None
        es = self.prev.book.by_service.get(service, ())
        return huge.by_chain([c for e in es for c in e.names], [r for e in es for r in e.chain_rules])

    def rules(self, service: str) -> dict[str, list[str]] | None:
        """The Service's chains as the previous sync wrote them (partial syncs only: a full sync rewrites
        every chain, as kube-proxy's does)."""
        return None if self.full else self._prev_chains(service) or {}

    def counter(self, service: str) -> Callable[[str], int]:
        if self.prev is not None:
            old = self._prev_chains(service) or {}
            return lambda chain: len(old.get(chain, ()))
        save = self.save or ""
        return lambda chain: save.count(f"\n-A {chain} ")


def _stages(entries: Sequence[_PortEntry], rewrite: Collection[str], limit: int, mark_masq_rule: str,
            filter_chains: Sequence[str], filter_lines: Sequence[str], nat_chains: Sequence[str],
            nat_lines: Sequence[str], old: _OldRules) -> tuple[str, ...]:
    """The sync as several restores: the rewritten services' chains in chunks of at most `limit` chains
    (whole services, so each service changes atomically), then one restore with the filter table, the
    top-level nat chains and the stale-chain deletions, which switches KUBE-SERVICES over to the new
    chains. Service chains only jump to each other and to KUBE-MARK-MASQ, which the first chunk makes sure
    exists, so every chunk restores on its own. A Service with more than `limit` chains of its own is
    rewritten in several restores of its own first (netsim.proxy.huge)."""
    by_service: dict[str, list[_PortEntry]] = {}
    for e in entries:
        if e.service in rewrite:
            by_service.setdefault(e.service, []).append(e)
    chunks: list[tuple[list[str], list[str]]] = []
    cur_chains: list[str] = []
    cur_rules: list[str] = []
    big: list[str] = []
    for service, es in by_service.items():
        names = [c for e in es for c in e.names]
        if len(names) > limit:
            big += huge.service_stages(names, [x for e in es for x in e.chain_rules], limit,
                                       old_rules=old.rules(service), old_count=old.counter(service))
            continue
        if cur_chains and len(cur_chains) + len(names) > limit:
            chunks.append((cur_chains, cur_rules))
            cur_chains, cur_rules = [], []
        cur_chains.extend(names)
        cur_rules.extend(x for e in es for x in e.chain_rules)
    if cur_chains:
        chunks.append((cur_chains, cur_rules))
    out = []
    # Every service chain may jump to KUBE-MARK-MASQ: the first restore makes sure it exists.
    if big:
        out.append(big[0].replace("*nat\n", f"*nat\n:{C.KUBE_MARK_MASQ} - [0:0]\n{mark_masq_rule}\n", 1))
        out.extend(big[1:])
    for i, (chains, rules) in enumerate(chunks):
        pre_chains, pre_rules = ([C.KUBE_MARK_MASQ], [mark_masq_rule]) if i == 0 and not big else ([], [])
        out.append("\n".join(_table("nat", pre_chains + chains, pre_rules + rules)) + "\n")
    final: list[str] = []
    if filter_chains or filter_lines:
        final += _table("filter", filter_chains, filter_lines)
    if nat_chains or nat_lines:
        final += _table("nat", nat_chains, nat_lines)
    if final:
        out.append("\n".join(final) + "\n")
    return tuple(out)


def render_full(services: Iterable[ServicePort], endpoints: EndpointsMap, node: NodeInfo, cfg: ProxyConfig, *,
                existing_save: str | None = None, prev: RenderState | None = None) -> SyncResult:
    """A full sync: every chain redeclared, jump rules ensured, leftovers deleted."""
    return render(services, endpoints, node, cfg, prev=prev, full=True, existing_save=existing_save)


def render_partial(prev: RenderState, services: Iterable[ServicePort], endpoints: EndpointsMap, node: NodeInfo,
                   cfg: ProxyConfig, changed: Mapping[str, Sequence[ServicePort]] | None = None) -> SyncResult:
    """A partial sync against `prev` (falls back to a full sync if node or config changed); `changed`: the
    Services that changed since `prev`, with their ports (see `render`)."""
    return render(services, endpoints, node, cfg, prev=prev, full=False, changed=changed)
