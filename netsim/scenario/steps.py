"""Typed, validated scenario steps: what `netsim.scenario.format` produces and the runner consumes.

Every step keeps `raw` (the mapping as the user wrote it, for the report) and `path` (`steps[3]`, or
`steps[3].repeat.step` for a nested one) so a runtime failure can be traced back to the line that asked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from netsim.model.selectors import LabelSelector
from netsim.model.targets import Selector

STEP_TYPES = ("apply", "delete", "scale", "rollout", "kill", "node", "wait", "probe", "reachability", "trace",
              "spread", "dns", "exec", "repeat", "load")
# Steps that change the cluster: if one of them errors, the state later steps assume never came to be.
MUTATING_STEPS = ("apply", "delete", "scale", "rollout", "kill", "node", "wait")
# Steps that only look: what `repeat` may repeat.
CHECK_STEPS = ("probe", "reachability", "trace", "spread", "dns", "exec")


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str | None
    name: str

    @property
    def text(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


@dataclass(frozen=True)
class ApplyStep:
    objects: tuple[Any, ...]
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteStep:
    refs: tuple[ObjectRef, ...]
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScaleStep:
    kind: str
    namespace: str
    name: str
    replicas: int


@dataclass(frozen=True)
class RolloutStep:
    action: str  # update | undo | status
    kind: str
    namespace: str
    name: str
    image: str | None = None
    container: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    to_revision: int | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class KillStep:
    namespace: str
    name: str | None = None
    selector: LabelSelector | None = None


@dataclass(frozen=True)
class NodeStep:
    action: str  # fail | restore
    name: str


@dataclass(frozen=True)
class WaitStep:
    mode: str  # converged | condition | duration
    timeout: float = 60.0
    duration: float | None = None
    condition: dict[str, Any] | None = None  # {kind, namespace, name, condition}


@dataclass(frozen=True)
class ProbeStep:
    source: Selector
    target: Selector
    port: int | None  # None when the target carries it (IP:PORT)
    protocol: str = "TCP"
    via: str = "pod"
    count: int = 1
    timeout: float = 1.0
    expect: str = "allow"  # allow | deny
    expect_served_by: tuple[Selector, ...] = ()
    expect_client_ip: ipaddress.IPv4Network | None = None


@dataclass(frozen=True)
class ReachRule:
    """One exception of the compact form: traffic from `source` to `target` (on port/protocol) is `allowed`."""

    source: Selector
    target: Selector
    port: int | None
    protocol: str | None
    allowed: bool


ANY = "any"  # a `?` cell: either outcome is acceptable


@dataclass(frozen=True)
class CompactExpectation:
    default: bool
    exceptions: tuple[ReachRule, ...] = ()

    def expected(self, src: str, dst: str, port: int, protocol: str) -> bool | str | None:
        """The last matching exception wins (later lines refine earlier ones); else the default."""
        verdict: bool | str | None = self.default
        for rule in self.exceptions:
            if rule.source.matches(src) and rule.target.matches(dst) and rule.port in (None, port) \
                    and rule.protocol in (None, protocol):
                verdict = rule.allowed
        return verdict


@dataclass(frozen=True)
class MatrixExpectation:
    """A cyclonus-style truth table: rows are sources, columns destinations; `.` allowed, `X` blocked.

    The layout follows the upstream netpol e2e truth table (kubernetes test/e2e/network/netpol/truthtable.go,
    PrettyPrint: a header `-  <to>...`, then `<from>  <mark>...`), read back instead of printed.
    """

    rows: tuple[Selector, ...]
    cols: tuple[Selector, ...]
    cells: tuple[tuple[bool | str, ...], ...]  # True allowed, False blocked, ANY either

    def _index(self, sels: tuple[Selector, ...], ident: str) -> int | None:
        for i, s in enumerate(sels):  # an exact name wins over a wildcard row/column
            if s.text == ident:
                return i
        for i, s in enumerate(sels):
            if s.matches(ident):
                return i
        return None

    def expected(self, src: str, dst: str, port: int, protocol: str) -> bool | str | None:
        r, c = self._index(self.rows, src), self._index(self.cols, dst)
        if r is None or c is None:
            return None
        return self.cells[r][c]


@dataclass(frozen=True)
class ReachabilityStep:
    sources: tuple[Selector, ...]
    targets: tuple[Selector, ...]
    ports: tuple[int, ...]
    protocols: tuple[str, ...]
    expectation: CompactExpectation | MatrixExpectation
    via: str = "pod"
    count: int = 1
    timeout: float = 1.0


TRACE_VERDICTS = ("delivered", "dropped", "rejected", "unreachable")


@dataclass(frozen=True)
class TraceStep:
    source: Selector
    target: Selector
    port: int | None
    protocol: str = "TCP"
    verdict: str | None = None
    policy: str | None = None
    hops: tuple[str, ...] = ()       # must appear in this order (not necessarily adjacent)
    contains: tuple[str, ...] = ()   # must each appear in some hop
    agree: bool | None = None        # simulated and observed paths must (not) agree


@dataclass(frozen=True)
class SpreadStep:
    source: Selector
    target: Selector
    port: int | None
    protocol: str = "TCP"
    count: int = 100
    timeout: float = 1.0
    endpoints: int | None = None
    uniform: bool = False
    p_value: float = 0.001


DNS_TYPES = ("A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "NS", "SOA", "ANY")
DNS_RCODES = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP")


@dataclass(frozen=True)
class DnsStep:
    source: Selector
    name: str
    qtype: str = "A"
    server: str | None = None
    timeout: float = 2.0
    addresses: tuple[str, ...] | None = None
    rcode: str | None = None


@dataclass(frozen=True)
class ExecStep:
    where: Selector  # pod, node or host
    command: tuple[str, ...]
    timeout: float = 10.0
    exit_code: int | None = 0
    stdout_contains: tuple[str, ...] = ()
    stderr_contains: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepeatStep:
    every: float
    step: Step
    duration: float | None = None
    during: Step | None = None
    max_failures: int = 0


# The expectations a load step may state, and which report number each one bounds (min or max).
LOAD_EXPECT = {"minOk": ("ok", "min"), "maxFailed": ("failed", "max"), "minFailed": ("failed", "min"),
               "maxRefused": ("refused", "max"), "maxTimeout": ("timeout", "max"), "maxReset": ("reset", "max"),
               "maxP50Ms": ("p50", "max"), "maxP99Ms": ("p99", "max"), "minMaxMs": ("max", "min"), "minEndpoints": ("endpoints", "min")}


@dataclass(frozen=True)
class LoadStep:
    source: Selector
    target: Selector
    port: int | None
    protocol: str = "TCP"
    rate: float | None = None
    connections: int | None = None
    duration: float = 10.0
    timeout: float = 1.0
    during: Step | None = None
    after: float = 0.0  # seconds into the load before `during` starts
    expect: tuple[tuple[str, float], ...] = ()  # (LOAD_EXPECT key, bound)


@dataclass(frozen=True)
class Step:
    index: int
    type: str
    path: str
    params: Any
    raw: Any = field(default=None, compare=False)

    def describe(self) -> str:
        return describe_step(self)


def _port_text(target: Selector, port: int | None, protocol: str | None = None) -> str:
    # An IP:PORT target already carries its port.
    text = target.text + (f":{port}" if port is not None and target.port is None else "")
    return f"{text}/{protocol}" if protocol else text


def describe_step(step: Step) -> str:
    """One line a person recognises the step by (reports and the live display)."""
    p = step.params
    t = step.type
    if t == "apply":
        return "apply " + (", ".join(p.files) if p.files else f"{len(p.objects)} inline object(s)")
    if t == "delete":
        return "delete " + (", ".join(p.files) if p.files else ", ".join(r.text for r in p.refs))
    if t == "scale":
        return f"scale {p.kind} {p.namespace}/{p.name} to {p.replicas}"
    if t == "rollout":
        extra = f" image={p.image}" if p.image else ""
        extra += f" toRevision={p.to_revision}" if p.to_revision else ""
        return f"rollout {p.action} {p.kind} {p.namespace}/{p.name}{extra}"
    if t == "kill":
        return f"kill pod {p.namespace}/{p.name}" if p.name else \
            f"kill pods in {p.namespace} matching {p.selector.describe() if p.selector else '<all>'}"
    if t == "node":
        return f"node {p.action} {p.name}"
    if t == "wait":
        if p.mode == "duration":
            return f"wait {p.duration:g}s"
        if p.mode == "converged":
            return "wait for convergence"
        c = p.condition or {}
        where = f"{c['namespace']}/{c.get('name')}" if c.get("namespace") else c.get("name")
        return f"wait for {c.get('kind')} {where} {c.get('condition')}"
    if t == "probe":
        return f"probe {p.source} -> {_port_text(p.target, p.port, p.protocol)} expect {p.expect}"
    if t == "reachability":
        return (f"reachability {','.join(s.text for s in p.sources)} -> {','.join(s.text for s in p.targets)} "
                f"ports {','.join(map(str, p.ports))} {','.join(p.protocols)}")
    if t == "trace":
        return f"trace {p.source} -> {_port_text(p.target, p.port, p.protocol)}" + \
            (f" expect {p.verdict}" if p.verdict else "")
    if t == "spread":
        return f"spread {p.source} -> {_port_text(p.target, p.port, p.protocol)} x{p.count}"
    if t == "dns":
        return f"dns {p.source} {p.name} {p.qtype}"
    if t == "exec":
        return f"exec {p.where} {' '.join(p.command)}"
    if t == "load":
        shape = f"{p.rate:g}/s" if p.connections is None else f"{p.connections} clients"
        extra = f" during [{p.during.describe()}]" if p.during is not None else ""
        return f"load {p.source} -> {_port_text(p.target, p.port, p.protocol)} {shape} for {p.duration:g}s{extra}"
    if t == "repeat":
        span = f"for {p.duration:g}s" if p.duration is not None else f"during [{p.during.describe()}]"
        return f"repeat every {p.every:g}s {span}: {p.step.describe()}"
    return t
