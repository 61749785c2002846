"""nftables trace events of one tagged packet, per network namespace.

How the kernel does it (Linux `net/netfilter/nf_tables_trace.c`, `include/uapi/linux/netfilter/
nf_tables.h`, nftables wiki "Ruleset debug/tracing"):
- a rule `meta nftrace set 1` sets skb->nf_trace; from then on every nft chain the packet walks (also
  the iptables-nft tables, which are nft tables) reports each rule that matched (with its verdict), a
  chain `return`, a base chain `policy`, and -- seen on Linux 6.18 -- a "rule" event without a handle
  when the packet runs off the end of a chain's rules, as NFT_MSG_TRACE messages (nfnetlink subsystem NFTABLES=10, message
  17) to multicast group NFNLGRP_NFTRACE (9) -- but only when that namespace has a listener;
- the bit is cleared when the packet changes namespace (skb_scrub_packet -> nf_reset_trace) or is
  encapsulated, so every namespace on the path needs its own tagging rule and its own listener;
- the tagging chains hook prerouting (arriving packets) and output (locally sent ones) at priority -350,
  before raw (-300) and conntrack/DNAT (-200/-100), so the untranslated packet is matched.

Pure parts: `render_trace_table`, `render_trace_teardown`, `decode_trace_messages`. Side effects:
`NftTraceListener` (a raw NETLINK_NETFILTER socket opened inside the namespace) and `NftTracer`.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netsim.kernel.api import Kernel, KernelError
from netsim.kernel.nlcodec import NFGEN_HDR, attrs, messages
from netsim.trace.observe.netlink import NfnetlinkListener
from netsim.trace.observe.packet import PacketInfo, decode_ipv4
from netsim.trace.observe.poll import drain
from netsim.trace.observe.rules import ChainInfo, RuleIndex, RuleInfo, load_rule_index
from netsim.trace.observe.tag import TraceTag

NFNLGRP_NFTRACE = 9
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_TRACE = 17
TRACE_MSG_TYPE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE  # 0x0a11

# enum nft_trace_attributes
(NFTA_TRACE_TABLE, NFTA_TRACE_CHAIN, NFTA_TRACE_RULE_HANDLE, NFTA_TRACE_TYPE, NFTA_TRACE_VERDICT,
 NFTA_TRACE_ID, NFTA_TRACE_LL_HEADER, NFTA_TRACE_NETWORK_HEADER, NFTA_TRACE_TRANSPORT_HEADER,
 NFTA_TRACE_IIF, NFTA_TRACE_IIFTYPE, NFTA_TRACE_OIF, NFTA_TRACE_OIFTYPE, NFTA_TRACE_MARK,
 NFTA_TRACE_NFPROTO, NFTA_TRACE_POLICY, NFTA_TRACE_PAD, NFTA_TRACE_CT_ID, NFTA_TRACE_CT_DIRECTION,
 NFTA_TRACE_CT_STATUS, NFTA_TRACE_CT_STATE) = range(1, 22)
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2

TRACE_TYPES = {1: "policy", 2: "return", 3: "rule"}
NF_VERDICTS = {0: "drop", 1: "accept", 2: "stolen", 3: "queue", 4: "repeat", 5: "stop"}
NFT_VERDICTS = {-1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}
NFPROTO_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
CT_STATES = {1: "invalid", 2: "established", 4: "related", 8: "new", 64: "untracked"}

DEFAULT_TABLE = "netsim_trace"
TRACE_PRIORITY = -350


# -- the tagging table -----------------------------------------------------------------------------
def render_trace_table(tag: TraceTag, table: str = DEFAULT_TABLE, priority: int = TRACE_PRIORITY) -> str:
    """An `nft -f` payload that (re)creates the tagging table atomically.

    `add table` + `delete table` first makes the load idempotent: one transaction replaces whatever an
    earlier trace left behind.
    """
    match = tag.nft_match()
    chains = []
    for name, hook in (("prerouting", "prerouting"), ("output", "output")):
        chains.append(
            f"\tchain {name} {{\n"
            f"\t\ttype filter hook {hook} priority {priority}; policy accept;\n"
            f"\t\t{match} meta nftrace set 1\n"
            f"\t}}\n")
    return (f"add table ip {table}\n"
            f"delete table ip {table}\n"
            f"table ip {table} {{\n" + "".join(chains) + "}\n")


def render_trace_teardown(table: str = DEFAULT_TABLE) -> str:
    """An `nft -f` payload that removes the tagging table, and is a no-op when it is absent."""
    return f"add table ip {table}\ndelete table ip {table}\n"


# -- decoding --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceEvent:
    """One NFT_MSG_TRACE: what one chain did with the packet in one namespace.

    `type` is "rule" (a rule with a verdict matched), "return" (end of a non-base chain) or "policy"
    (end of a base chain); `verdict` is accept/drop/continue/jump/goto/return/...; `target` is the
    chain of a jump/goto. `packet` is set on the first event of each base-chain traversal (the kernel
    attaches headers only there) and shows the packet as that hook saw it, e.g. after DNAT.
    """

    trace_id: int
    family: str
    table: str
    chain: str
    type: str
    verdict: str | None = None
    target: str | None = None
    handle: int | None = None
    policy: str | None = None
    iif: int | None = None
    oif: int | None = None
    mark: int | None = None
    packet: PacketInfo | None = None
    ct_state: str | None = None
    ct_direction: str | None = None
    ct_id: int | None = None
    ns: str | None = None
    iif_name: str | None = None
    oif_name: str | None = None
    rule: RuleInfo | None = None
    chain_info: ChainInfo | None = None
    tagging: bool = False  # an event of the tracer's own tagging table (proves the packet got here)

    @property
    def end_of_chain(self) -> bool:
        """The packet ran off the end of the chain's rules (the kernel reports this as a rule event
        without a handle, verdict continue); a `policy` or `return` event follows."""
        return self.type == "rule" and self.handle is None

    @property
    def outcome(self) -> str | None:
        """What happened: the rule's verdict, or for a `policy` event the chain policy."""
        return (self.policy or self.verdict) if self.type == "policy" else self.verdict

    @property
    def decisive(self) -> bool:
        """A verdict that ends the packet's walk in this hook: accept, drop, or a queue/stolen."""
        return self.outcome in ("accept", "drop", "stolen", "queue")

    def describe(self) -> str:
        """One line in the spirit of `nft monitor trace`."""
        where = f"{self.family} {self.table} {self.chain}"
        if self.end_of_chain:
            seen = f" packet: {self.packet.summary()}" if self.packet else ""
            return f"trace id {self.trace_id:08x} {where} end of rules{seen}"
        if self.type == "rule":
            text = self.rule.text if self.rule else f"handle {self.handle}"
            verdict = self.verdict + (f" {self.target}" if self.target else "")
            return f"trace id {self.trace_id:08x} {where} rule {text} (verdict {verdict})"
        if self.type == "policy":
            return f"trace id {self.trace_id:08x} {where} policy {self.policy or self.verdict}"
        return f"trace id {self.trace_id:08x} {where} verdict {self.verdict or 'continue'}"


def _be32(b: bytes | None) -> int | None:
    return struct.unpack("!I", b[:4])[0] if b is not None and len(b) >= 4 else None


def _verdict_name(code: int) -> str:
    if code < 0:
        return NFT_VERDICTS.get(code, str(code))
    return NF_VERDICTS.get(code & 0xFF, str(code))


def _string(b: bytes | None) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace") if b else ""


def decode_trace_attrs(family: int, payload: bytes) -> TraceEvent:
    """A TraceEvent from the attribute block of one NFT_MSG_TRACE message."""
    a = attrs(payload)
    verdict = target = None
    if NFTA_TRACE_VERDICT in a:
        v = attrs(a[NFTA_TRACE_VERDICT])
        if NFTA_VERDICT_CODE in v:
            verdict = _verdict_name(struct.unpack("!i", v[NFTA_VERDICT_CODE][:4])[0])
        if NFTA_VERDICT_CHAIN in v:
            target = _string(v[NFTA_VERDICT_CHAIN])
    policy = _be32(a.get(NFTA_TRACE_POLICY))
    handle = struct.unpack("!Q", a[NFTA_TRACE_RULE_HANDLE][:8])[0] if NFTA_TRACE_RULE_HANDLE in a else None
    packet = None
    if NFTA_TRACE_NETWORK_HEADER in a:
        packet = decode_ipv4(a[NFTA_TRACE_NETWORK_HEADER], a.get(NFTA_TRACE_TRANSPORT_HEADER, b""))
    ct_state = _be32(a.get(NFTA_TRACE_CT_STATE))
    ct_dir = a.get(NFTA_TRACE_CT_DIRECTION)
    return TraceEvent(
        trace_id=_be32(a.get(NFTA_TRACE_ID)) or 0,
        family=NFPROTO_FAMILIES.get(family, str(family)),
        table=_string(a.get(NFTA_TRACE_TABLE)),
        chain=_string(a.get(NFTA_TRACE_CHAIN)),
        type=TRACE_TYPES.get(_be32(a.get(NFTA_TRACE_TYPE)) or 0, "unknown"),
        verdict=verdict, target=target, handle=handle,
        policy=_verdict_name(policy) if policy is not None else None,
        iif=_be32(a.get(NFTA_TRACE_IIF)), oif=_be32(a.get(NFTA_TRACE_OIF)),
        mark=_be32(a.get(NFTA_TRACE_MARK)), packet=packet,
        ct_state=None if ct_state is None else "|".join(
            n for bit, n in CT_STATES.items() if ct_state & bit) or str(ct_state),
        ct_direction=None if not ct_dir else ("original", "reply")[ct_dir[0] & 1],
        ct_id=_be32(a.get(NFTA_TRACE_CT_ID)),
    )


def decode_trace_messages(data: bytes) -> list[TraceEvent]:
    """All NFT_MSG_TRACE messages in one netlink datagram (other message types are skipped)."""
    return [decode_trace_attrs(body[0], body[NFGEN_HDR.size:])
            for kind, _flags, body in messages(data)
            if kind == TRACE_MSG_TYPE and len(body) >= NFGEN_HDR.size]


# -- the listener ----------------------------------------------------------------------------------
class NftTraceListener(NfnetlinkListener):
    """Member of NFNLGRP_NFTRACE inside namespace `ns`; `read()` returns the queued trace events."""

    def __init__(self, kernel: Kernel, ns: str, *, rcvbuf: int = 4 << 20):
        super().__init__(kernel, ns, [NFNLGRP_NFTRACE], what="nftables trace events", rcvbuf=rcvbuf)

    def read(self) -> list[TraceEvent]:
        """Everything queued now (non-blocking), in kernel order, with `ns` filled in."""
        return [dataclasses.replace(e, ns=self.ns)
                for data in self.datagrams() for e in decode_trace_messages(data)]


def tagged_only(events: Iterable[TraceEvent], tag: TraceTag) -> list[TraceEvent]:
    """Events of the trace ids whose packet is the tagged one.

    The kernel attaches headers only to the first event of each base chain, so a trace id is kept when
    any of its events shows the tagged packet; the others of that id follow it.
    """
    events = list(events)
    ids = {e.trace_id for e in events if e.packet is not None and tag.matches(e.packet)}
    return [e for e in events if e.trace_id in ids]


def decisions(events: Iterable[TraceEvent]) -> list[TraceEvent]:
    """What the ruleset did: rule verdicts, returns and policies, without the tracer's own tagging
    events and the "end of rules" markers."""
    return [e for e in events if not e.tagging and not e.end_of_chain]


def group_by_trace_id(events: Iterable[TraceEvent]) -> dict[int, list[TraceEvent]]:
    """Events of each traced skb (one packet in one namespace), in order."""
    out: dict[int, list[TraceEvent]] = {}
    for e in events:
        out.setdefault(e.trace_id, []).append(e)
    return out


# -- a tracer over several namespaces --------------------------------------------------------------
class NftTracer:
    """Trace one tagged packet through the nft/iptables-nft rules of several namespaces.

    Use as a context manager (or `start()` / `stop()`); `stop` removes the tagging tables and closes the
    sockets whatever happened, and may be called more than once. Tracers running at the same time in
    the same namespace need different `table` names (the table is replaced/removed by name). Rule
    listings are read on first use after the packet went through (`rules()`, cached per namespace).
    """

    def __init__(self, kernel: Kernel, namespaces: Sequence[str], tag: TraceTag, *,
                 table: str = DEFAULT_TABLE):
        self.kernel = kernel
        self.namespaces = list(dict.fromkeys(namespaces))
        self.tag = tag
        self.table = table
        self._listeners: dict[str, NftTraceListener] = {}
        self._tables: list[str] = []
        self._rules: dict[str, RuleIndex] = {}
        self._ifnames: dict[str, dict[int, str]] = {}

    def start(self) -> NftTracer:
        try:
            for ns in self.namespaces:  # listeners first: the kernel reports only to existing ones
                self._listeners[ns] = NftTraceListener(self.kernel, ns)
            payload = render_trace_table(self.tag, self.table)
            for ns in self.namespaces:
                self.kernel.nft_apply(ns, payload)
                self._tables.append(ns)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> NftTracer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def collect(self, *, timeout: float = 2.0, settle: float = 0.2) -> dict[str, list[TraceEvent]]:
        """Events per namespace, annotated with rule text/comment and interface names.

        The kernel has usually queued all events by the time the probe's sendto() returned (the
        packet crosses veths within the sender's softirq), so a short `settle` is enough. Events of
        other traced packets (another tracer in the same namespace) are left out by their trace id.

        Events of the tagging table itself are kept and flagged `tagging`: they prove the packet
        reached a namespace (with its input interface) even where no other rule looks at it.
        """
        got = drain(list(self._listeners.values()), timeout=timeout, settle=settle)
        out: dict[str, list[TraceEvent]] = {}
        for listener, events in got.items():
            out[listener.ns] = [self.annotate(listener.ns, e) for e in tagged_only(events, self.tag)]
        return out

    def overruns(self) -> list[str]:
        """Namespaces whose listener lost messages (buffer full)."""
        return [ns for ns, lst in self._listeners.items() if lst.overrun]

    def rules(self, ns: str, *, refresh: bool = False) -> RuleIndex:
        """The rule index of `ns`, read once (refresh after the ruleset changed)."""
        if refresh or ns not in self._rules:
            self._rules[ns] = load_rule_index(self.kernel, ns)
        return self._rules[ns]

    def ifname(self, ns: str, index: int | None) -> str | None:
        if index is None:
            return None
        names = self._ifnames.get(ns)
        if names is None or index not in names:
            names = {link.index: link.name for link in self.kernel.links(ns)}
            self._ifnames[ns] = names
        return names.get(index)

    def annotate(self, ns: str, event: TraceEvent) -> TraceEvent:
        """Fill in rule text + comment, base chain info and interface names of one event."""
        index = self.rules(ns)
        return dataclasses.replace(
            event, ns=ns, rule=index.rule(event.family, event.table, event.chain, event.handle),
            chain_info=index.chain(event.family, event.table, event.chain),
            iif_name=self.ifname(ns, event.iif), oif_name=self.ifname(ns, event.oif),
            tagging=event.family == "ip" and (event.table == self.table or event.table.startswith(DEFAULT_TABLE)))

    def stop(self) -> None:
        errors = []
        teardown = render_trace_teardown(self.table)
        for ns in self._tables:
            if not self.kernel.netns_exists(ns):
                continue
            try:
                self.kernel.nft_apply(ns, teardown)
            except KernelError as exc:
                errors.append(str(exc))
        self._tables.clear()
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        if errors:
            raise KernelError("; ".join(errors))
