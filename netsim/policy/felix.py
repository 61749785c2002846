"""Calico felix, the policy half: render a node's NetworkPolicy enforcement as ipset + iptables payloads.

Pure: inputs are the node's local workload endpoints, every pod and namespace (to fill the peer ipsets) and
every NetworkPolicy; outputs are text for `ipset restore` and `iptables-restore --noflush` (filter table),
plus the chain/ipset/NFLOG inventory the trace and verify commands use. The felix agent applies them.

What is rendered, following calico (projectcalico/calico: felix/rules/{static,dispatch,endpoints,policy,
nflogprefix}.go, libcalico-go/lib/backend/k8s/conversion/conversion.go, libcalico-go/lib/hash/unique_id.go;
summarised in docs/reference/calico.md sections 3-7):

- built-in hooks: `FORWARD` gets `-j cali-FORWARD` inserted at the top and, appended at its end,
  `ACCEPT` on mark 0x10000 ("Policy explicitly accepted packet.") then set 0x10000; `INPUT`/`OUTPUT` get
  `-j cali-INPUT` / `-j cali-OUTPUT` at the top.
- `cali-FORWARD`: clear calico mark bits except accept, host-endpoint forward hooks (empty chains here),
  `-i cali+ -> cali-from-wl-dispatch`, `-o cali+ -> cali-to-wl-dispatch`, `cali-cidr-block` (empty).
- dispatch chains: one `-i/-o <iface> -g cali-fw-/cali-tw-<iface>` per local endpoint, then DROP "Unknown
  interface". Goto, so a RETURN from the endpoint chain lands back in cali-FORWARD: a pod->pod packet on
  one node runs the sender's egress chain and then the receiver's ingress chain in one pass.
- endpoint chains `cali-tw-<iface>` (ingress) / `cali-fw-<iface>` (egress): ESTABLISHED/RELATED accept,
  INVALID drop, clear 0x30000, (fw: drop VXLAN/IPIP from workloads), tier `default` when at least one
  policy selects the pod in that direction (clear pass, per policy `pass clear -> cali-pi-/cali-po-<id>`,
  RETURN on accept, end of tier NFLOG+DROP), profile `kns.<ns>` (allow all) with RETURN on accept, then
  NFLOG+DROP "Drop if no profiles matched" (unreachable while the profile allows all).
- policy chains `cali-pi-<id>` / `cali-po-<id>` with id `knp/<ns>/<name>` (calico >= 3.32; <= 3.28 used
  `knp.default.<name>`), name length-limited to 28 with GetLengthLimitedID's scheme. Each k8s rule
  becomes one calico Allow rule per (protocol, peer) exactly as conversion.go does (ports grouped by
  protocol, protocols sorted, numeric ports merged into ranges). An Allow sets 0x10000, then NFLOG
  (`API<idx>|<id>`, optional) and RETURN; the chain's trailing RETURN is dropped like felix does.
- peers: selectors -> `-m set --match-set cali40s:<id> src|dst` (hash:net of pod IPs), ipBlock ->
  `-s/-d <cidr>`; `except` entries use calico's negated match block on scratch mark 0x80000.
  Named ports -> `cali40n:<id>` (hash:ip,port) matched `dst,dst`.
- `cali-INPUT`: `-i cali+ -g cali-wl-to-host` -> egress policy via cali-from-wl-dispatch then ACCEPT
  (DefaultEndpointToHostAction ACCEPT, as calico.yaml/canal.yaml set it). `cali-OUTPUT`: `-o cali+` RETURN:
  host -> local pod is never policed (kubelet probes), matching the model.

Deviations, on purpose (semantics kept, flagged here so a reader of `iptables-save` is not surprised):
- When one calico rule needs several port matches (more than 15 ports, or numeric plus named ports), felix
  ORs them with match blocks on scratch marks; k8s rules only Allow, so we emit one Allow rule per port
  group instead, which is the same OR.
- Rule hash comments `cali:<16 chars>` are ours (sha224 of chain, previous hash and rule text), not
  felix's byte-for-byte values; ipset ids hash our own selector strings written in calico's selector
  syntax; they are stable across runs, which is what idempotence needs.
- IPv4 only (felix renders IPv6 with ip6tables the same way); no dispatch sub-chains for many endpoints.
- Service traffic needs nothing special: FORWARD runs after nat PREROUTING, so the destination the policy
  chains see is the endpoint pod kube-proxy DNATed to (the policy is judged on the backend, as in k8s).

Idempotence and the built-in chains. Our own chains are declared (`:cali-X - [0:0]`), which in --noflush mode
creates or flushes them, so re-applying a full payload replaces their contents atomically. Built-in chains
are shared with kube-proxy and flannel and must never be flushed, and an `-I FORWARD 1 -j cali-FORWARD`
would add a duplicate on each apply; iptables-restore has no "insert if absent". So, like felix (which
reads the tables back with iptables-save before writing deltas), `render_node` takes the current
`iptables-save -t filter` text: every rule of ours in a built-in chain (recognised by its `cali:` comment or
a `cali-` jump target) is deleted with `-D` and then re-inserted/appended in the same restore transaction,
so the hooks are never missing and never duplicated, and a hand-made duplicate is repaired. Without the
current state (first apply of a fresh node) the deletes are omitted.

Stale objects: chains named `cali-*` present in the current state but not rendered now are declared (which
flushes them), and deleted with `-X` at the end of the same transaction, after every reference to them
(from our own flushed chains or built-in hooks) is gone. IP sets cannot be destroyed while an iptables rule
references them, so `FelixPayload.ipset_cleanup(existing_set_names)` gives the `destroy` lines to run
*after* the filter payload is applied. Apply order for the agent: ipsets -> filter -> ipset_cleanup.

ipset payload: every set is built in a temporary set `cali4t...` and swapped in: `create -exist` both,
`flush` temp, `add` members, `swap temp main`, `destroy` temp. A re-apply is idempotent and each set changes
atomically (a rule matching the set never sees it half-filled).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsim.model.networkpolicy import NetworkPolicy, Peer, PolicyRule
from netsim.model.selectors import LabelSelector
from netsim.parsers.iptables_save import CHAIN, RULE, read_lines
from netsim.policy.model import NamespaceInfo, PodInfo, PolicyModel

MAX_CHAIN_NAME = 28  # felix/iptables/table.go MaxChainNameLength
MAX_IPSET_NAME = 31  # felix/ipsets/ipset_defs.go MaxIPSetNameLength
NFLOG_PREFIX_MAX_WO_TERM = 63  # felix/rules/nflogprefix.go

# Mark bits (felix/markbits, calico.md section 4).
MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
MARK_DROP = 0x40000
MARK_SCRATCH0 = 0x80000
MARK_SCRATCH1 = 0x100000
MARK_ALL = MARK_ACCEPT | MARK_PASS | MARK_DROP | MARK_SCRATCH0 | MARK_SCRATCH1

NFLOG_GROUP_INGRESS = 1
NFLOG_GROUP_EGRESS = 2
TIER = "default"
WORKLOAD_IFACE_PREFIX = "cali"
VXLAN_PORT = 4789

SET_PREFIX_MAIN = "cali40"
SET_PREFIX_TEMP = "cali4t"

CHAIN_FORWARD = "cali-FORWARD"
CHAIN_INPUT = "cali-INPUT"
CHAIN_OUTPUT = "cali-OUTPUT"
CHAIN_FROM_WL = "cali-from-wl-dispatch"
CHAIN_TO_WL = "cali-to-wl-dispatch"
CHAIN_WL_TO_HOST = "cali-wl-to-host"
CHAIN_FROM_HEP_FWD = "cali-from-hep-forward"
CHAIN_TO_HEP_FWD = "cali-to-hep-forward"
CHAIN_CIDR_BLOCK = "cali-cidr-block"
BUILTIN_CHAINS = ("INPUT", "FORWARD", "OUTPUT")


# ------------------------------------------------------------------------------------------------ names


def length_limited_id(prefix: str, suffix: str, max_length: int) -> str:
    """libcalico-go GetLengthLimitedID: prefix+suffix if it fits (and does not look hashed), else
    prefix + "_" + base64url(sha256(suffix)) truncated to max_length."""
    if not suffix:
        suffix = "_"
    total = len(prefix) + len(suffix)
    if total > max_length or (total == max_length and suffix.startswith("_")):
        digest = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode().rstrip("=")
        return prefix + "_" + digest[: max_length - 1 - len(prefix)]
    return prefix + suffix


def policy_id(policy: NetworkPolicy) -> str:
    """Calico >= 3.32 policy id for a k8s NetworkPolicy (felix/types/policy_id.go): `knp/<ns>/<name>`."""
    return f"knp/{policy.namespace}/{policy.name}"


def policy_chain_name(policy: NetworkPolicy, direction: str) -> str:
    return length_limited_id("cali-pi-" if direction == "ingress" else "cali-po-", policy_id(policy),
                             MAX_CHAIN_NAME)


def profile_id(namespace: str) -> str:
    return f"kns.{namespace}"


def profile_chain_name(namespace: str, direction: str) -> str:
    return length_limited_id("cali-pri-" if direction == "ingress" else "cali-pro-", profile_id(namespace),
                             MAX_CHAIN_NAME)


def workload_iface(namespace: str, pod: str, prefix: str = WORKLOAD_IFACE_PREFIX) -> str:
    """Host-side veth name calico's CNI plugin gives a pod: prefix + sha1("<ns>.<pod>")[:11]."""
    return prefix + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def nflog_prefix(text: str) -> str:
    """felix maybeHash: prefixes of 63+ chars become first 10 + hash + '_' + last 10 (63 chars)."""
    if len(text) >= NFLOG_PREFIX_MAX_WO_TERM:
        hash_len = NFLOG_PREFIX_MAX_WO_TERM - 10 - 10 - 1
        return text[:10] + length_limited_id("", text, hash_len) + "_" + text[-10:]
    return text


def _b64_sha224(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha224(text.encode()).digest()).decode().rstrip("=")


def selector_set_name(selector: str) -> str:
    """`cali40s:<id>` for a calico selector string; id = "s:" + base64url(sha224(selector)), truncated."""
    return (SET_PREFIX_MAIN + "s:" + _b64_sha224(selector))[:MAX_IPSET_NAME]


def named_port_set_name(protocol: str, port_name: str, selector: str) -> str:
    return (SET_PREFIX_MAIN + "n:" + _b64_sha224(f"{protocol}:{port_name}:{selector}"))[:MAX_IPSET_NAME]


def temp_set_name(main: str) -> str:
    return SET_PREFIX_TEMP + main[len(SET_PREFIX_MAIN):]


# ------------------------------------------------------------------------------------------------ selectors


def _quote(v: str) -> str:
    return "'" + v + "'"


def calico_selector_terms(sel: LabelSelector, prefix: str = "") -> list[str]:
    """k8sSelectorToCalico: matchLabels `k == 'v'` (sorted), expressions in/not in/has/! has."""
    terms = [f"{prefix}{k} == {_quote(v)}" for k, v in sorted(sel.match_labels)]
    for r in sel.match_expressions:
        vals = ", ".join(_quote(v) for v in r.values)
        if r.operator == "In":
            terms.append(f"{prefix}{r.key} in {{ {vals} }}")
        elif r.operator == "NotIn":
            terms.append(f"{prefix}{r.key} not in {{ {vals} }}")
        elif r.operator == "Exists":
            terms.append(f"has({prefix}{r.key})")
        else:
            terms.append(f"! has({prefix}{r.key})")
    return terms


def peer_selector(policy: NetworkPolicy, peer: Peer) -> str:
    """The calico selector a selector peer becomes (namespace part && pod part)."""
    pod_terms = ["projectcalico.org/orchestrator == 'k8s'"]
    if peer.pod_selector is not None:
        pod_terms += calico_selector_terms(peer.pod_selector)
    if peer.namespace_selector is None:
        ns = f"projectcalico.org/namespace == {_quote(policy.namespace)}"
    elif peer.namespace_selector.empty:
        ns = "all()"
    else:
        ns = " && ".join(calico_selector_terms(peer.namespace_selector, "pcns."))
    return f"({ns}) && ({' && '.join(pod_terms)})"


def policy_selector(policy: NetworkPolicy) -> str:
    """The calico selector of the policy itself (the pods it applies to)."""
    terms = [f"projectcalico.org/namespace == {_quote(policy.namespace)}",
             "projectcalico.org/orchestrator == 'k8s'"] + calico_selector_terms(policy.pod_selector)
    return " && ".join(terms)


# ------------------------------------------------------------------------------------------------ inputs/outputs


@dataclass(frozen=True)
class WorkloadEndpoint:
    """A pod on this node as felix sees it. `iface` defaults to calico's veth name for the pod."""

    namespace: str
    name: str
    ip: str
    iface: str = ""

    def __post_init__(self) -> None:
        if not self.iface:
            object.__setattr__(self, "iface", workload_iface(self.namespace, self.name))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class IPSetSpec:
    name: str
    type: str  # "hash:net" | "hash:ip,port"
    members: tuple[str, ...]
    meaning: str  # the selector (and named port) it stands for


@dataclass(frozen=True)
class NflogEntry:
    """What an NFLOG prefix means: action allow|deny, who decided (policy `ns/name`, profile, or tier)."""

    prefix: str
    action: str
    direction: str
    group: int
    policy: str | None = None  # ns/name for k8s policies
    profile: str | None = None
    tier: str | None = None
    rule: int | None = None  # k8s rule index (ingress[i] / egress[i])
    peer: int | None = None  # peer index in that rule, None = all peers
    calico_rule: int | None = None  # index of the calico rule (the number in the prefix)


@dataclass(frozen=True)
class FelixPayload:
    ipsets: str  # for `ipset restore`
    filter: str  # for `iptables-restore --noflush` (table filter)
    chains: dict[str, tuple[str, ...]]  # our chains -> their `-A` lines, in order
    hooks: tuple[str, ...]  # the lines that touch built-in chains (-I/-A; -D lines not included)
    sets: dict[str, IPSetSpec] = field(default_factory=dict)
    nflog: dict[str, NflogEntry] = field(default_factory=dict)
    stale_chains: tuple[str, ...] = ()

    def ipset_cleanup(self, existing_sets: Iterable[str]) -> str:
        """`ipset restore` lines destroying calico selector/named-port sets (and leftover temp sets) that
        are no longer rendered. Apply after the filter payload, when no rule references them any more."""
        ours = re.compile(r"^cali4[0t][sn]:")
        stale = sorted(s for s in existing_sets if ours.match(s) and s not in self.sets)
        return "".join(f"destroy {s}\n" for s in stale)


# ------------------------------------------------------------------------------------------------ rules


@dataclass
class _Rule:
    """One iptables rule in iptables-save's canonical order (so the kernel's save output equals ours)."""

    target: str
    src: str | None = None
    dst: str | None = None
    iif: str | None = None
    oif: str | None = None
    proto: str | None = None
    matches: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def body(self) -> tuple[str, str]:
        """(address/interface/protocol part, comments + matches + target part)."""
        parts: list[str] = []
        for flag, v in (("-s", self.src), ("-d", self.dst), ("-i", self.iif), ("-o", self.oif),
                        ("-p", self.proto)):
            if v:
                parts += [flag, v]
        return " ".join(parts), " ".join(
            [f"-m comment --comment {_ipt_str(c)}" for c in self.comments] + self.matches
            + ([self.target] if self.target else []))


_NO_QUOTE = re.compile(r"^[A-Za-z0-9_-]+$")


def _ipt_str(text: str) -> str:
    """A string argument written the way iptables-save prints it (libxtables xtables_save_string: bare
    when only [A-Za-z0-9_-], else double-quoted), so our rules and the kernel's save text compare equal.
    Double quotes and backslashes are replaced rather than escaped; comments are capped at 250 chars."""
    text = text.replace('"', "'").replace("\\", "/")[:250]
    return text if _NO_QUOTE.match(text) else f'"{text}"'


def _mark_match(value: int, mask: int) -> str:
    return f"-m mark --mark {value:#x}/{mask:#x}"


def _set_mark(value: int, mask: int) -> str:
    return f"-j MARK --set-xmark {value:#x}/{mask:#x}"


def _nflog(group: int, prefix: str) -> str:
    return f"-j NFLOG --nflog-prefix {_ipt_str(prefix)} --nflog-group {group}"


class _Chains:
    """Accumulates chains and renders `-A` lines with a felix-style `cali:<hash>` first comment."""

    def __init__(self) -> None:
        self.rules: dict[str, list[_Rule]] = {}

    def chain(self, name: str) -> list[_Rule]:
        assert len(name) <= MAX_CHAIN_NAME, name
        return self.rules.setdefault(name, [])

    def lines(self, name: str) -> tuple[str, ...]:
        out = []
        prev = ""
        for r in self.rules[name]:
            head, tail = r.body()
            h = _b64_sha224(f"{name}|{prev}|{head}|{tail}")[:16]
            prev = h
            text = " ".join(p for p in (f"-A {name}", head, f"-m comment --comment {_ipt_str('cali:' + h)}", tail)
                            if p)
            out.append(text)
        return tuple(out)


# ------------------------------------------------------------------------------------------------ k8s -> calico rules


@dataclass(frozen=True)
class _CalicoRule:
    index: int  # calico rule index within the policy direction
    k8s_rule: int
    peer_index: int | None
    peer: Peer | None
    protocol: str | None  # None = any protocol (k8s rule without ports)
    ranges: tuple[tuple[int, int], ...]  # numeric (first, last), merged; empty + no names = all ports
    names: tuple[str, ...]  # named ports


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """SimplifyPorts: sort and merge overlapping or adjacent ranges."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def calico_rules(policy: NetworkPolicy, direction: str) -> list[_CalicoRule]:
    """k8sRuleToCalico for every rule of one direction: ports grouped by protocol (all-ports wins),
    protocols sorted, then one rule per (protocol, peer), indices running across the k8s rules."""
    rules: Sequence[PolicyRule] = policy.ingress if direction == "ingress" else policy.egress
    out: list[_CalicoRule] = []
    for ri, rule in enumerate(rules):
        groups: dict[str | None, list | None] = {}
        if not rule.ports:
            groups = {None: None}
        for pp in rule.ports:
            if pp.port is None:
                groups[pp.protocol] = None
            elif groups.get(pp.protocol, []) is not None:
                groups.setdefault(pp.protocol, []).append(pp)  # type: ignore[union-attr]
        peers: list[tuple[int | None, Peer | None]] = (
            [(i, p) for i, p in enumerate(rule.peers)] if rule.peers else [(None, None)])
        for proto in sorted(groups, key=lambda p: p or ""):
            pps = groups[proto] or []
            ranges = _merge_ranges((pp.port, pp.end_port or pp.port) for pp in pps if isinstance(pp.port, int))
            names = tuple(dict.fromkeys(pp.port for pp in pps if isinstance(pp.port, str)))
            for pi, peer in peers:
                out.append(_CalicoRule(len(out), ri, pi, peer, proto, ranges, names))
    return out


def _port_groups(proto: str, ranges: Sequence[tuple[int, int]]) -> list[str]:
    """Port matches for numeric ranges: one `-m <proto> --dport` for a single entry, else multiport
    chunks of at most 15 ports (a range counts twice, as in iptables)."""
    if len(ranges) == 1:
        a, b = ranges[0]
        return [f"-m {proto} --dport {a}" if a == b else f"-m {proto} --dport {a}:{b}"]
    chunks: list[list[str]] = [[]]
    used = 0
    for a, b in ranges:
        cost = 1 if a == b else 2
        if used + cost > 15:
            chunks.append([])
            used = 0
        chunks[-1].append(str(a) if a == b else f"{a}:{b}")
        used += cost
    return [f"-m multiport --dports {','.join(c)}" for c in chunks if c]


# ------------------------------------------------------------------------------------------------ renderer


# The members of a selector set, from outside: felix keeps them in a label index updated per change
# (felix/labelindex), so a render need not match every pod against every selector again.
SelectorMembers = Callable[[NetworkPolicy, Peer], Sequence[str]]


class _Renderer:
    def __init__(self, endpoints: Sequence[WorkloadEndpoint], namespaces: Iterable[NamespaceInfo],
                 pods: Iterable[PodInfo], policies: Iterable[NetworkPolicy], nflog_allows: bool,
                 selector_members: SelectorMembers | None = None):
        self.endpoints = sorted(endpoints, key=lambda e: e.iface)
        self.selector_members = selector_members
        self.model = PolicyModel(namespaces, pods, policies)
        self.nflog_allows = nflog_allows
        self.c = _Chains()
        self.sets: dict[str, IPSetSpec] = {}
        self.nflog: dict[str, NflogEntry] = {}
        self.pods_by_key = {p.key: p for p in self.model.pods}

    # -- sets -----------------------------------------------------------------------------------
    def _selector_set(self, policy: NetworkPolicy, peer: Peer) -> str:
        sel = peer_selector(policy, peer)
        name = selector_set_name(sel)
        if name not in self.sets:
            if self.selector_members is not None:
                members = sorted(self.selector_members(policy, peer))
            else:
                members = sorted(selector_set_members(self.model, policy, peer, self.model.pods))
            self.sets[name] = IPSetSpec(name, "hash:net", tuple(members), sel)
        return name

    def _named_port_set(self, policy: NetworkPolicy, peer: Peer | None, protocol: str, port_name: str,
                        direction: str) -> str:
        # Ingress: the destination is the local selected pod, so the set holds the policy's own pods.
        # Egress: the destination is the peer; no selector peer (ipBlock, or no peers) means any pod.
        if direction == "ingress":
            sel = policy_selector(policy)
            candidates = [p for p in self.model.pods if policy.selects(p.namespace, p.labels)]
        elif peer is not None and peer.ip_block is None:
            sel = peer_selector(policy, peer)
            candidates = [p for p in self.model.pods if self.model.peer_matches(policy, peer, p)]
        else:
            sel = "all()"
            candidates = list(self.model.pods)
        name = named_port_set_name(protocol, port_name, sel)
        if name not in self.sets:
            members = set()
            for p in candidates:
                port = p.named_port(port_name, protocol)
                if p.ip and ":" not in p.ip and port is not None:
                    members.add(f"{p.ip},{protocol.lower()}:{port}")
            self.sets[name] = IPSetSpec(name, "hash:ip,port", tuple(sorted(members)),
                                        f"{protocol}:{port_name} of {sel}")
        return name

    # -- policy chains ---------------------------------------------------------------------------
    def policy_chain(self, policy: NetworkPolicy, direction: str) -> str:
        name = policy_chain_name(policy, direction)
        rules = self.c.chain(name)
        group = NFLOG_GROUP_INGRESS if direction == "ingress" else NFLOG_GROUP_EGRESS
        d = "I" if direction == "ingress" else "E"
        peers_key = "from" if direction == "ingress" else "to"
        for cr in calico_rules(policy, direction):
            where = f"{policy.key} {direction}[{cr.k8s_rule}]"
            where += f" {peers_key}[{cr.peer_index}]" if cr.peer_index is not None else f" {peers_key} any"
            where += f" rule {cr.index}"
            self._calico_rule(rules, policy, direction, cr, where)
            prefix = nflog_prefix(f"AP{d}{cr.index}|{policy_id(policy)}")
            self.nflog[prefix] = NflogEntry(prefix, "allow", direction, group, policy=policy.key,
                                            rule=cr.k8s_rule, peer=cr.peer_index, calico_rule=cr.index)
            if self.nflog_allows:
                rules.append(_Rule(_nflog(group, prefix), matches=[_mark_match(MARK_ACCEPT, MARK_ACCEPT)],
                                   comments=[where]))
            rules.append(_Rule("-j RETURN", matches=[_mark_match(MARK_ACCEPT, MARK_ACCEPT)], comments=[where]))
        if rules and rules[-1].target == "-j RETURN":
            rules.pop()  # felix strips trailing RETURNs
        if not rules:
            rules.append(_Rule("", comments=[f"Policy {policy.key} {direction}: no rules, allows nothing"]))
        return name

    def _calico_rule(self, rules: list[_Rule], policy: NetworkPolicy, direction: str, cr: _CalicoRule,
                     where: str) -> None:
        src_side = direction == "ingress"  # ingress matches the peer as source, egress as destination
        peer_addr: str | None = None
        peer_matches: list[str] = []
        excepts: tuple[str, ...] = ()
        if cr.peer is not None and cr.peer.ip_block is not None:
            if ":" in cr.peer.ip_block.cidr:
                return  # IPv6 block: rendered by the (absent) ip6tables half
            peer_addr, excepts = cr.peer.ip_block.cidr, cr.peer.ip_block.except_
        elif cr.peer is not None:
            set_name = self._selector_set(policy, cr.peer)
            peer_matches.append(f"-m set --match-set {set_name} {'src' if src_side else 'dst'}")
        if excepts:
            # Negated CIDR match block (felix matchBlockBuilder): set scratch, clear it for any except.
            rules.append(_Rule(_set_mark(MARK_SCRATCH0, MARK_SCRATCH0), comments=[where]))
            for e in excepts:
                rules.append(_Rule(_set_mark(0, MARK_SCRATCH0), comments=[where],
                                   **({"src": e} if src_side else {"dst": e})))
            peer_matches.append(_mark_match(MARK_SCRATCH0, MARK_SCRATCH0))
        proto = cr.protocol.lower() if cr.protocol else None
        variants: list[list[str]] = []
        if proto and (cr.ranges or cr.names):
            variants += [[m] for m in _port_groups(proto, cr.ranges)] if cr.ranges else []
            for n in cr.names:
                nset = self._named_port_set(policy, cr.peer, cr.protocol or "TCP", n, direction)
                variants.append([f"-m set --match-set {nset} dst,dst"])
        else:
            variants.append([])
        addr = {"src": peer_addr} if src_side else {"dst": peer_addr}
        for v in variants:
            rules.append(_Rule(_set_mark(MARK_ACCEPT, MARK_ACCEPT), proto=proto, matches=peer_matches + v,
                               comments=[where], **addr))

    # -- profiles ---------------------------------------------------------------------------------
    def profile_chain(self, namespace: str, direction: str) -> str:
        name = profile_chain_name(namespace, direction)
        if name in self.c.rules:
            return name
        rules = self.c.chain(name)
        group = NFLOG_GROUP_INGRESS if direction == "ingress" else NFLOG_GROUP_EGRESS
        comment = f"Profile {profile_id(namespace)} {direction}"
        rules.append(_Rule(_set_mark(MARK_ACCEPT, MARK_ACCEPT), comments=[comment]))
        prefix = nflog_prefix(f"AR{'I' if direction == 'ingress' else 'E'}0|{profile_id(namespace)}")
        self.nflog[prefix] = NflogEntry(prefix, "allow", direction, group, profile=profile_id(namespace))
        if self.nflog_allows:
            rules.append(_Rule(_nflog(group, prefix), matches=[_mark_match(MARK_ACCEPT, MARK_ACCEPT)],
                               comments=[comment]))
        return name

    # -- endpoints --------------------------------------------------------------------------------
    def endpoint_chain(self, ep: WorkloadEndpoint, direction: str, policies: list[NetworkPolicy]) -> str:
        to_wl = direction == "ingress"
        name = ("cali-tw-" if to_wl else "cali-fw-") + ep.iface
        rules = self.c.chain(name)
        group = NFLOG_GROUP_INGRESS if to_wl else NFLOG_GROUP_EGRESS
        d = "I" if to_wl else "E"
        rules.append(_Rule("-j ACCEPT", matches=["-m conntrack --ctstate RELATED,ESTABLISHED"]))
        rules.append(_Rule("-j DROP", matches=["-m conntrack --ctstate INVALID"]))
        rules.append(_Rule(_set_mark(0, MARK_ACCEPT | MARK_PASS)))
        if not to_wl:
            rules.append(_Rule("-j DROP", proto="udp", matches=[f"-m multiport --dports {VXLAN_PORT}"],
                               comments=["Drop VXLAN encapped packets originating in workloads"]))
            rules.append(_Rule("-j DROP", proto="4", comments=["Drop IPinIP encapped packets originating in workloads"]))
        if policies:
            rules.append(_Rule(_set_mark(0, MARK_PASS), comments=[f"Start of tier {TIER}"]))
            for pol in policies:
                chain = self.policy_chains[(pol.key, direction)]
                rules.append(_Rule(f"-j {chain}", matches=[_mark_match(0, MARK_PASS)],
                                   comments=[f"Policy {pol.key} {direction}"]))
                rules.append(_Rule("-j RETURN", matches=[_mark_match(MARK_ACCEPT, MARK_ACCEPT)],
                                   comments=["Return if policy accepted"]))
            eot = f"End of tier {TIER}. Drop if no policies passed packet"
            prefix = nflog_prefix(f"DP{d}|{TIER}")
            self.nflog[prefix] = NflogEntry(prefix, "deny", direction, group, tier=TIER)
            rules.append(_Rule(_nflog(group, prefix), matches=[_mark_match(0, MARK_PASS)], comments=[eot]))
            rules.append(_Rule("-j DROP", matches=[_mark_match(0, MARK_PASS)], comments=[eot]))
        prof = self.profile_chain(ep.namespace, direction)
        rules.append(_Rule(f"-j {prof}"))
        rules.append(_Rule("-j RETURN", matches=[_mark_match(MARK_ACCEPT, MARK_ACCEPT)],
                           comments=["Return if profile accepted"]))
        prefix = f"DR{d}"
        self.nflog[prefix] = NflogEntry(prefix, "deny", direction, group)
        rules.append(_Rule(_nflog(group, prefix), comments=["Drop if no profiles matched"]))
        rules.append(_Rule("-j DROP", comments=["Drop if no profiles matched"]))
        return name

    # -- everything --------------------------------------------------------------------------------
    def render(self) -> None:
        c = self.c
        fwd = c.chain(CHAIN_FORWARD)
        fwd.append(_Rule(_set_mark(0, MARK_ALL & ~MARK_ACCEPT),
                         comments=["Clear calico mark bits except accept"]))
        fwd.append(_Rule(f"-j {CHAIN_FROM_HEP_FWD}", matches=[_mark_match(0, MARK_ACCEPT)]))
        fwd.append(_Rule(f"-j {CHAIN_FROM_WL}", iif=f"{WORKLOAD_IFACE_PREFIX}+"))
        fwd.append(_Rule(f"-j {CHAIN_TO_WL}", oif=f"{WORKLOAD_IFACE_PREFIX}+"))
        fwd.append(_Rule(f"-j {CHAIN_TO_HEP_FWD}"))
        fwd.append(_Rule(f"-j {CHAIN_CIDR_BLOCK}"))
        for empty in (CHAIN_FROM_HEP_FWD, CHAIN_TO_HEP_FWD, CHAIN_CIDR_BLOCK):
            c.chain(empty)

        inp = c.chain(CHAIN_INPUT)
        inp.append(_Rule(f"-g {CHAIN_WL_TO_HOST}", iif=f"{WORKLOAD_IFACE_PREFIX}+"))
        w2h = c.chain(CHAIN_WL_TO_HOST)
        w2h.append(_Rule(f"-j {CHAIN_FROM_WL}"))
        w2h.append(_Rule("-j ACCEPT", comments=["Configured DefaultEndpointToHostAction"]))
        out = c.chain(CHAIN_OUTPUT)
        out.append(_Rule("-j RETURN", oif=f"{WORKLOAD_IFACE_PREFIX}+",
                         comments=["Return if to workload: host to local pod is not policed"]))

        # Active policies: those selecting at least one local endpoint (felix renders both chains).
        local: list[tuple[WorkloadEndpoint, PodInfo]] = []
        for ep in self.endpoints:
            pod = self.pods_by_key.get(ep.key) or PodInfo(ep.namespace, ep.name, {}, ep.ip)
            local.append((ep, pod))
        self.policy_chains: dict[tuple[str, str], str] = {}
        for pol in self.model.policies:
            if any(pol.selects(p.namespace, p.labels) for _, p in local):
                for direction in ("ingress", "egress"):
                    self.policy_chains[(pol.key, direction)] = self.policy_chain(pol, direction)

        from_wl = c.chain(CHAIN_FROM_WL)
        to_wl = c.chain(CHAIN_TO_WL)
        for ep, pod in local:
            tw = self.endpoint_chain(ep, "ingress", self.model.selecting(pod, "ingress"))
            fw = self.endpoint_chain(ep, "egress", self.model.selecting(pod, "egress"))
            from_wl.append(_Rule(f"-g {fw}", iif=ep.iface))
            to_wl.append(_Rule(f"-g {tw}", oif=ep.iface))
        from_wl.append(_Rule("-j DROP", comments=["Unknown interface"]))
        to_wl.append(_Rule("-j DROP", comments=["Unknown interface"]))


def _hook_lines() -> tuple[str, ...]:
    """Rules in built-in chains, each with a stable `cali:` comment so it can be found and replaced."""
    def tag(s: str) -> str:
        return f"-m comment --comment {_ipt_str('cali:' + _b64_sha224(s)[:16])}"
    return (
        f"-I FORWARD 1 {tag('fwd-jump')} -j {CHAIN_FORWARD}",
        f"-I INPUT 1 {tag('input-jump')} -j {CHAIN_INPUT}",
        f"-I OUTPUT 1 {tag('output-jump')} -j {CHAIN_OUTPUT}",
        f'-A FORWARD {tag("fwd-accept")} -m comment --comment "Policy explicitly accepted packet." '
        f"{_mark_match(MARK_ACCEPT, MARK_ACCEPT)} -j ACCEPT",
        f"-A FORWARD {tag('fwd-setmark')} {_set_mark(MARK_ACCEPT, MARK_ACCEPT)}",
    )


def parse_filter_save(save: str) -> tuple[set[str], list[str]]:
    """From `iptables-save -t filter` text (read by the one iptables-save reader,
    netsim.parsers.iptables_save): our chains (`cali-*`), and `-D` lines for our rules in built-in chains
    (a `cali:` comment or a jump/goto to a `cali-` chain), their specifications as iptables-save printed
    them."""
    chains: set[str] = set()
    deletes: list[str] = []
    for ln in read_lines(save):
        if ln.table != "filter" or ln.chain is None:
            continue
        if ln.kind == CHAIN and ln.chain.startswith("cali-"):
            chains.add(ln.chain)
        elif ln.kind == RULE and ln.op == "-A" and ln.chain in BUILTIN_CHAINS and ln.rest:
            body = ln.rest
            if '--comment "cali:' in body or re.search(r"-[jg] cali-", body):
                deletes.append(f"-D {ln.chain} {body}")
    return chains, deletes


def selector_set_members(model: PolicyModel, policy: NetworkPolicy, peer: Peer,
                         pods: Iterable[PodInfo]) -> set[str]:
    """The addresses of `pods` a selector peer's ipset holds (IPv4 only: the inet family)."""
    return {p.ip for p in pods if p.ip and ":" not in p.ip and model.peer_matches(policy, peer, p)}


def render_node(endpoints: Sequence[WorkloadEndpoint], namespaces: Iterable[NamespaceInfo],
                pods: Iterable[PodInfo], policies: Iterable[NetworkPolicy], *,
                current_filter: str | None = None, nflog_allows: bool = True,
                selector_members: SelectorMembers | None = None) -> FelixPayload:
    """Render the whole calico filter state of one node.

    `current_filter`: the node's `iptables-save -t filter` output, so the payload replaces our built-in
    hooks instead of duplicating them and removes stale `cali-` chains (see module docstring). None for a
    node that has never been programmed. `nflog_allows`: also NFLOG allow verdicts (flow-log style), so a
    trace can name the allowing policy; drops are always NFLOGged. `selector_members`: the selector sets'
    members as a label index keeps them (netsim.agents.felix); None: matched here against every pod.
    """
    r = _Renderer(endpoints, namespaces, pods, policies, nflog_allows, selector_members)
    r.render()
    chains = {name: r.c.lines(name) for name in r.c.rules}
    hooks = _hook_lines()
    existing, deletes = parse_filter_save(current_filter) if current_filter else (set(), [])
    stale = tuple(sorted(existing - set(chains)))

    out = ["*filter"]
    out += [f":{name} - [0:0]" for name in list(chains) + list(stale)]
    out += deletes
    out += hooks
    for lines in chains.values():
        out += lines
    out += [f"-X {name}" for name in stale]
    out.append("COMMIT")
    filter_payload = "\n".join(out) + "\n"

    ipsets: list[str] = []
    for name in sorted(r.sets):
        spec = r.sets[name]
        tmp = temp_set_name(name)
        create = f"{spec.type} family inet hashsize 1024 maxelem 1048576 -exist"
        ipsets += [f"create {name} {create}", f"create {tmp} {create}", f"flush {tmp}"]
        ipsets += [f"add {tmp} {m}" for m in spec.members]
        ipsets += [f"swap {tmp} {name}", f"destroy {tmp}"]
    ipset_payload = "".join(line + "\n" for line in ipsets)
    return FelixPayload(ipsets=ipset_payload, filter=filter_payload, chains=chains, hooks=hooks,
                        sets=dict(r.sets), nflog=dict(r.nflog), stale_chains=stale)


def explain_nflog(payload: FelixPayload, prefix: str) -> dict[str, Any] | None:
    """What an NFLOG prefix seen on the wire means, for trace: None if it is not one of ours."""
    e = payload.nflog.get(prefix)
    if e is None:
        return None
    return {k: v for k, v in e.__dict__.items() if v is not None}
