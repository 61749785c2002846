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

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

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
_TUPLE_KEYS = frozenset({"src", "dst", "sport", "dport", "type", "code", "id"})
_EVENTS = {"[NEW]": "new", "[UPDATE]": "update", "[DESTROY]": "destroy"}


class EntryFields(NamedTuple):
    """One entry as text fields, before any conversion: what every reader of conntrack text starts from
    (`parse_conntrack_line` makes a CtEntry of it; kube-proxy's stale-flow check needs three fields)."""

    event: str | None
    proto: str
    protonum: str
    timeout: str | None
    state: str | None
    original: dict[str, str]
    reply: dict[str, str]
    flags: frozenset[str]
    extra: dict[str, str]


def split_entry(line: str) -> EntryFields | None:
    """One line of `conntrack -L [-o extended|id]` or `conntrack -E` output as fields, else None.

    Shape: `[EVENT] [ipv4 2] tcp 6 117 SYN_SENT src=.. dst=.. sport=.. dport=.. [UNREPLIED] src=.. dst=..
    sport=.. dport=.. [ASSURED] mark=0 [zone=N] use=1`: the first src/dst group is the original tuple,
    the second the reply tuple.
    """
    words = line.split()
    event = None
    if words and words[0][:1] == "[":
        event = _EVENTS.get(words[0].upper())
        if event is not None:
            words = words[1:]
    if len(words) >= 2 and words[0] in ("ipv4", "ipv6") and words[1].isdigit():
        words = words[2:]
    if len(words) < 3 or not words[1].isdigit():
        return None
    proto, protonum = words[0], words[1]
    i, n = 2, len(words)
    timeout = None
    if words[i].isdigit():
        timeout = words[i]
        i += 1
    state = None
    if i < n and "=" not in words[i] and words[i][:1] != "[":
        state = words[i]
        i += 1
    orig: dict[str, str] = {}
    reply: dict[str, str] = {}
    cur = orig
    flags: set[str] = set()
    extra: dict[str, str] = {}
    for w in words[i:]:
        if w[:1] == "[" and w[-1:] == "]":
            flags.add(w[1:-1])
            continue
        key, eq, value = w.partition("=")
        if not eq or not key or not value:
            continue
        if key == "src" and "src" in cur and cur is orig:
            cur = reply
        if key in _TUPLE_KEYS and key not in cur and (key != "id" or "type" in cur):
            cur[key] = value  # an `id` is an ICMP tuple's, else the entry's (-o id)
        else:
            extra[key] = value
    if "src" not in orig or "src" not in reply:
        return None
    return EntryFields(event, proto, protonum, timeout, state, orig, reply, frozenset(flags), extra)


def iter_entries(text: str) -> Iterator[EntryFields]:
    """The entries of a whole dump (headers and the summary line are not entries)."""
    for line in text.splitlines():
        f = split_entry(line)
        if f is not None:
            yield f


def _tuple(fields: dict[str, str]) -> CtTuple:
    def num(key: str) -> int | None:
        return int(fields[key]) if key in fields else None
    return CtTuple(fields.get("src", ""), fields.get("dst", ""), num("sport"), num("dport"),
                   num("type"), num("code"), num("id"))


def entry(f: EntryFields) -> CtEntry:
    proto = f.proto if f.proto in PROTO_NUMBERS else PROTO_NAMES.get(int(f.protonum), f.proto)
    extra = f.extra
    return CtEntry(proto=proto, original=_tuple(f.original), reply=_tuple(f.reply), state=f.state,
                   timeout=int(f.timeout) if f.timeout is not None else None, flags=f.flags,
                   mark=int(extra["mark"]) if "mark" in extra else None,
                   zone=int(extra["zone"]) if "zone" in extra else None,
                   id=int(extra["id"]) if "id" in extra else None, event=f.event)


def parse_conntrack_line(line: str) -> CtEntry | None:
    """One line of `conntrack -L [-o extended|id]` or `conntrack -E` output, else None (`split_entry`)."""
    f = split_entry(line)
    return entry(f) if f is not None else None


def parse_conntrack_output(text: str) -> list[CtEntry]:
    return [entry(f) for f in iter_entries(text)]
