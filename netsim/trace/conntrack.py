"""Conntrack entries of a traced flow: which endpoint DNAT chose, which source SNAT/masquerade used.

A conntrack entry holds the original tuple (as the packet arrived) and the reply tuple (what a reply
must look like): after DNAT the reply comes *from* the chosen endpoint, after SNAT it goes *to* the
translated source. Two ways to read them, both per namespace:
- `lookup`: dump with `conntrack -L` run inside the namespace and parse its text (entries that live on:
  UDP, ICMP, established TCP);
- `ConntrackWatcher`: ctnetlink events (groups NFNLGRP_CONNTRACK_NEW/UPDATE/DESTROY = 1/2/3) on a
  NETLINK_NETFILTER socket opened inside the namespace, which also sees short-lived entries: a raw TCP SYN
  probe's entry is destroyed as soon as the RST comes back, before anyone could dump it.
Attribute layout from Linux `include/uapi/linux/netfilter/nfnetlink_conntrack.h` (CTA_TUPLE_ORIG=1,
CTA_TUPLE_REPLY=2, CTA_STATUS=3, CTA_PROTOINFO=4, CTA_TIMEOUT=7, CTA_MARK=8, CTA_ID=12, CTA_ZONE=18;
tuples nest CTA_TUPLE_IP{V4_SRC, V4_DST} and CTA_TUPLE_PROTO{NUM, SRC_PORT, DST_PORT, ICMP_ID,
ICMP_TYPE, ICMP_CODE}) and status bits from `nf_conntrack_common.h`.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from netsim.kernel.api import Kernel, KernelError
from netsim.trace.netlink import NfnetlinkListener, attrs, messages
from netsim.trace.packet import PROTO_NAMES, PROTO_NUMBERS
from netsim.trace.tag import TraceTag

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE = 0, 2
NLM_F_CREATE = 0x400
NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY = 1, 2, 3
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_TIMEOUT, CTA_MARK = 1, 2, 3, 4, 7, 8
CTA_ID, CTA_ZONE = 12, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
CTA_PROTOINFO_SCTP, CTA_PROTOINFO_SCTP_STATE = 3, 1

STATUS_BITS = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT", "SEQ_ADJUST",
               "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT", "TEMPLATE", "UNTRACKED",
               "HELPER", "OFFLOAD", "HW_OFFLOAD")
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
              "TIME_WAIT", "CLOSE", "SYN_SENT2")
SCTP_STATES = ("NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT",
               "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED")


@dataclass(frozen=True)
class CtTuple:
    """One direction of a connection; ports None for ICMP, which has type/code/id instead."""

    src: str
    dst: str
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None

    def __str__(self) -> str:
        if self.sport is not None:
            return f"{self.src}:{self.sport} -> {self.dst}:{self.dport}"
        return f"{self.src} -> {self.dst}" + (f" id={self.icmp_id}" if self.icmp_id is not None else "")


@dataclass(frozen=True)
class CtEntry:
    """A conntrack entry; `event` is new/update/destroy for watched entries, None for dumped ones."""

    proto: str
    original: CtTuple
    reply: CtTuple
    state: str | None = None
    timeout: int | None = None
    flags: frozenset[str] = frozenset()
    mark: int | None = None
    zone: int | None = None
    id: int | None = None
    event: str | None = None

    @property
    def dnat(self) -> bool:
        """The destination was translated: replies come from somewhere else than the original target."""
        return (self.reply.src, self.reply.sport) != (self.original.dst, self.original.dport)

    @property
    def snat(self) -> bool:
        """The source was translated (SNAT/masquerade): replies go to another address or port."""
        return (self.reply.dst, self.reply.dport) != (self.original.src, self.original.sport)

    @property
    def translated_dst(self) -> tuple[str, int | None]:
        """Where the packet really went (the endpoint after DNAT, else the original destination)."""
        return self.reply.src, self.reply.sport

    @property
    def translated_src(self) -> tuple[str, int | None]:
        """The source the packet left with (after SNAT/masquerade, else the original source)."""
        return self.reply.dst, self.reply.dport

    def matches(self, tag: TraceTag) -> bool:
        """True when the original direction is the tagged packet's flow."""
        if self.proto != tag.proto:
            return False
        if tag.proto == "icmp":
            return self.original.icmp_id == tag.sport
        return self.original.sport == tag.sport


# -- `conntrack -L` text -------------------------------------------------------------------------------
_KV = re.compile(r"^(\w+)=(\S+)$")
_TUPLE_KEYS = {"src", "dst", "sport", "dport", "type", "code", "id"}


def _tuple(fields: dict[str, str]) -> CtTuple:
    def num(key: str) -> int | None:
        return int(fields[key]) if key in fields else None
    return CtTuple(fields.get("src", ""), fields.get("dst", ""), num("sport"), num("dport"),
                   num("type"), num("code"), num("id"))


def parse_conntrack_line(line: str) -> CtEntry | None:
    """One line of `conntrack -L [-o extended]` or `conntrack -E` output, else None.

    Shape: `[ipv4 2] tcp 6 117 SYN_SENT src=.. dst=.. sport=.. dport=.. [UNREPLIED] src=.. dst=..
    sport=.. dport=.. [ASSURED] mark=0 [zone=N] use=1`: the first src/dst group is the original tuple,
    the second the reply tuple.
    """
    words = line.split()
    event = None
    if words and words[0].startswith("[") and words[0].strip("[]").lower() in ("new", "update", "destroy"):
        event = words.pop(0).strip("[]").lower()
    if len(words) >= 2 and words[0] in ("ipv4", "ipv6") and words[1].isdigit():
        words = words[2:]
    if len(words) < 3 or not words[1].isdigit():
        return None
    proto = words[0]
    if proto not in PROTO_NUMBERS:
        proto = PROTO_NAMES.get(int(words[1]), proto)
    rest = words[2:]
    timeout = None
    if rest and rest[0].isdigit():
        timeout = int(rest.pop(0))
    state = None
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        state = rest.pop(0)
    tuples: list[dict[str, str]] = [{}]
    flags: set[str] = set()
    extra: dict[str, str] = {}
    for w in rest:
        if w.startswith("[") and w.endswith("]"):
            flags.add(w.strip("[]"))
            continue
        m = _KV.match(w)
        if not m:
            continue
        key, value = m.groups()
        cur = tuples[-1]
        if key == "src" and "src" in cur and len(tuples) < 2:
            tuples.append({})
            cur = tuples[-1]
        in_tuple = key in _TUPLE_KEYS and key not in cur
        if key == "id" and "type" not in cur:  # an ICMP tuple's id, else the entry id (-o id)
            in_tuple = False
        if in_tuple:
            cur[key] = value
        else:
            extra[key] = value
    if len(tuples) < 2 or "src" not in tuples[0] or "src" not in tuples[1]:
        return None
    return CtEntry(proto=proto, original=_tuple(tuples[0]), reply=_tuple(tuples[1]), state=state,
                   timeout=timeout, flags=frozenset(flags),
                   mark=int(extra["mark"]) if "mark" in extra else None,
                   zone=int(extra["zone"]) if "zone" in extra else None,
                   id=int(extra["id"]) if "id" in extra else None, event=event)


def parse_conntrack_output(text: str) -> list[CtEntry]:
    return [e for e in (parse_conntrack_line(line) for line in text.splitlines()) if e is not None]


def lookup(kernel: Kernel, ns: str, *, proto: str | None = None, src: str | None = None,
           dst: str | None = None, sport: int | None = None, dport: int | None = None) -> list[CtEntry]:
    """Entries of `ns` whose original tuple matches the given fields (`conntrack -L` in `ns`)."""
    argv = ["conntrack", "-L"]
    if proto:
        argv += ["-p", proto]
    if src:
        argv += ["--orig-src", src]
    if dst:
        argv += ["--orig-dst", dst]
    if sport is not None:
        argv += ["--orig-port-src" if proto != "icmp" else "--icmp-id", str(sport)]
    if dport is not None and proto != "icmp":
        argv += ["--orig-port-dst", str(dport)]
    if (sport is not None or dport is not None) and not proto:
        raise ValueError("conntrack port filters need a protocol")
    proc = kernel.run(ns, argv, check=False)
    if proc.returncode != 0:
        raise KernelError(f"{ns}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return parse_conntrack_output(proc.stdout)


# -- ctnetlink events ----------------------------------------------------------------------------------
def _u16(b: bytes | None) -> int | None:
    return struct.unpack("!H", b[:2])[0] if b and len(b) >= 2 else None


def _u32(b: bytes | None) -> int | None:
    return struct.unpack("!I", b[:4])[0] if b and len(b) >= 4 else None


def _decode_tuple(data: bytes) -> tuple[int, CtTuple]:
    a = attrs(data)
    ip = attrs(a.get(CTA_TUPLE_IP, b""))
    proto = attrs(a.get(CTA_TUPLE_PROTO, b""))
    src = str(ipaddress.IPv4Address(ip[CTA_IP_V4_SRC][:4])) if CTA_IP_V4_SRC in ip else ""
    dst = str(ipaddress.IPv4Address(ip[CTA_IP_V4_DST][:4])) if CTA_IP_V4_DST in ip else ""
    num = proto[CTA_PROTO_NUM][0] if CTA_PROTO_NUM in proto else 0
    if num == 1:
        return num, CtTuple(src, dst, icmp_type=proto.get(CTA_PROTO_ICMP_TYPE, b"\0")[0],
                            icmp_code=proto.get(CTA_PROTO_ICMP_CODE, b"\0")[0],
                            icmp_id=_u16(proto.get(CTA_PROTO_ICMP_ID)))
    return num, CtTuple(src, dst, _u16(proto.get(CTA_PROTO_SRC_PORT)), _u16(proto.get(CTA_PROTO_DST_PORT)))


def decode_ct_attrs(payload: bytes, event: str | None = None) -> CtEntry | None:
    """A CtEntry from the attribute block of one ctnetlink message (IPv4 only)."""
    a = attrs(payload)
    if CTA_TUPLE_ORIG not in a or CTA_TUPLE_REPLY not in a:
        return None
    num, orig = _decode_tuple(a[CTA_TUPLE_ORIG])
    _, reply = _decode_tuple(a[CTA_TUPLE_REPLY])
    status = _u32(a.get(CTA_STATUS)) or 0
    flags = {name for bit, name in enumerate(STATUS_BITS) if status & (1 << bit)}
    state = None
    info = attrs(a.get(CTA_PROTOINFO, b""))
    if CTA_PROTOINFO_TCP in info:
        tcp = attrs(info[CTA_PROTOINFO_TCP])
        if CTA_PROTOINFO_TCP_STATE in tcp:
            s = tcp[CTA_PROTOINFO_TCP_STATE][0]
            state = TCP_STATES[s] if s < len(TCP_STATES) else str(s)
    elif CTA_PROTOINFO_SCTP in info:
        sctp = attrs(info[CTA_PROTOINFO_SCTP])
        if CTA_PROTOINFO_SCTP_STATE in sctp:
            s = sctp[CTA_PROTOINFO_SCTP_STATE][0]
            state = SCTP_STATES[s] if s < len(SCTP_STATES) else str(s)
    zone = _u16(a.get(CTA_ZONE))
    return CtEntry(proto=PROTO_NAMES.get(num, str(num)), original=orig, reply=reply, state=state,
                   timeout=_u32(a.get(CTA_TIMEOUT)), flags=frozenset(flags), mark=_u32(a.get(CTA_MARK)),
                   zone=zone or None, id=_u32(a.get(CTA_ID)), event=event)


def decode_ct_messages(data: bytes) -> list[CtEntry]:
    """All ctnetlink NEW/DELETE messages of one datagram; NEW without NLM_F_CREATE is an update."""
    out = []
    for kind, flags, body in messages(data):
        subsys, msg = kind >> 8, kind & 0xFF
        if subsys != NFNL_SUBSYS_CTNETLINK or msg not in (IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE):
            continue
        if msg == IPCTNL_MSG_CT_DELETE:
            event = "destroy"
        else:
            event = "new" if flags & NLM_F_CREATE else "update"
        entry = decode_ct_attrs(body[4:], event)  # after the nfgenmsg header
        if entry is not None:
            out.append(entry)
    return out


class ConntrackWatcher(NfnetlinkListener):
    """ctnetlink event socket inside `ns`; events queue in the socket until `read()`.

    Conntrack events are on by default (sysctl net.netfilter.nf_conntrack_events=2: when someone
    listens), per namespace.
    """

    def __init__(self, kernel: Kernel, ns: str, *, rcvbuf: int = 4 << 20):
        super().__init__(kernel, ns, [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE,
                                      NFNLGRP_CONNTRACK_DESTROY], what="conntrack events", rcvbuf=rcvbuf)

    def read(self) -> list[CtEntry]:
        return [e for data in self.datagrams() for e in decode_ct_messages(data)]


def flow_entries(entries: Iterable[CtEntry], tag: TraceTag) -> list[CtEntry]:
    """The entries (events) of the tagged flow, in order."""
    return [e for e in entries if e.matches(tag)]
