"""Conntrack entries of a traced flow: which endpoint DNAT chose, which source SNAT/masquerade used.

A conntrack entry holds the original tuple (as the packet arrived) and the reply tuple (what a reply
must look like): after DNAT the reply comes *from* the chosen endpoint, after SNAT it goes *to* the
translated source. Two ways to read them, both per namespace:
- `lookup`: dump with `conntrack -L` run inside the namespace and read its text with the one conntrack
  text reader, `netsim.parsers.conntrack` (entries that live on: UDP, ICMP, established TCP);
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
import struct
from collections.abc import Iterable

from netsim.kernel.api import Kernel, KernelError
from netsim.kernel.nlcodec import attrs, messages
from netsim.parsers.conntrack import PROTO_NAMES, CtEntry, CtTuple, parse_conntrack_output
from netsim.trace.observe.netlink import NfnetlinkListener
from netsim.trace.observe.tag import TraceTag

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
