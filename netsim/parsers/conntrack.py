"""The one reader of `conntrack` text: `conntrack -L [-o extended|id]` dumps and `conntrack -E` events.

A conntrack entry holds the original tuple (as the packet arrived) and the reply tuple (what a reply must
look like): after DNAT the reply comes *from* the chosen endpoint, after SNAT it goes *to* the translated
source. Line shape (conntrack-tools, src/conntrack.c and libnetfilter_conntrack's snprintf_default.c):
`[EVENT] [ipv4 2] PROTO PROTONUM [TIMEOUT] [STATE] src=.. dst=.. sport=.. dport=.. [UNREPLIED] src=..
dst=.. sport=.. dport=.. [ASSURED] mark=N [zone=N] [id=N] use=N`; ICMP tuples carry type/code/id instead
of ports. Used by trace (which entry NAT chose for a traced flow) and by kube-proxy's stale UDP entry
cleanup (`netsim.proxy.conntrack`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}
PROTO_NUMBERS = {v: k for k, v in PROTO_NAMES.items()}


class _Flow(Protocol):
    proto: str
    sport: int


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

    def matches(self, tag: _Flow) -> bool:
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
