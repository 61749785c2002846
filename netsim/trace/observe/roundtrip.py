"""One observed trace round trip: the building blocks wired together in the order that works.

Order matters: the kernel reports trace and conntrack events only to listeners that exist when the
packet passes, and queues them until read, so every listener and capture is opened first, then the
probe is sent, then everything is read, and finally torn down (also when something failed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from netsim.kernel.api import Kernel
from netsim.trace.observe.capture import CapturedPacket, PacketCapture, tag_filter
from netsim.trace.observe.conntrack import ConntrackWatcher, CtEntry, flow_entries
from netsim.trace.observe.inject import Probe, inject_probe
from netsim.trace.observe.nftrace import DEFAULT_TABLE, NftTracer, TraceEvent
from netsim.trace.observe.tag import TraceTag


@dataclass
class Observation:
    """What the kernel showed of one probe, per namespace."""

    probe: Probe
    events: dict[str, list[TraceEvent]]  # nft trace events, annotated with rules
    conntrack: dict[str, list[CtEntry]]  # conntrack events of the tagged flow (new/update/destroy)
    packets: list[CapturedPacket]  # captured copies, in time order
    elapsed: float  # seconds from opening the listeners to the end of teardown
    lost: list[str] = field(default_factory=list)  # namespaces whose listeners overflowed

    def nat(self, ns: str) -> CtEntry | None:
        """The first conntrack entry of the flow in `ns` (its reply tuple tells DNAT/SNAT)."""
        entries = self.conntrack.get(ns) or []
        return entries[0] if entries else None


@contextmanager
def listening(kernel: Kernel, tracer: NftTracer, capture: PacketCapture,
              conntrack_ns: Sequence[str]) -> Iterator[list[ConntrackWatcher]]:
    """Conntrack watchers in `conntrack_ns`, then the nft tracer, then the capture, opened in that order
    and all torn down on leaving the block, also when opening or the probe failed (a failing
    `tracer.stop()` still lets the capture and the watchers close). Yields the watchers. Shared by
    `observe` and `netsim.trace.observe.cluster.observe_path`."""
    watchers: list[ConntrackWatcher] = []
    try:
        for ns in conntrack_ns:
            watchers.append(ConntrackWatcher(kernel, ns))
        tracer.start()
        capture.start()
        yield watchers
    finally:
        try:
            tracer.stop()
        finally:
            capture.stop()
            for w in watchers:
                w.close()


def flow_conntrack(tracer: NftTracer, watchers: Sequence[ConntrackWatcher],
                   tag: TraceTag) -> tuple[dict[str, list[CtEntry]], list[str]]:
    """The tagged flow's conntrack entries per watched namespace, and the namespaces whose trace or
    conntrack listener overflowed (sorted, no repeats)."""
    conntrack = {w.ns: flow_entries(w.read(), tag) for w in watchers}
    lost = tracer.overruns() + [w.ns for w in watchers if w.overrun]
    return conntrack, sorted(set(lost))


def observe(kernel: Kernel, source_ns: str, dst: str, tag: TraceTag, dport: int | None = None, *,
            namespaces: Sequence[str] = (), capture_points: Sequence[tuple[str, str]] = (),
            pcap: str | Path | None = None, timeout: float = 2.0, settle: float = 0.2,
            table: str = DEFAULT_TABLE) -> Observation:
    """Send the tagged probe from `source_ns` to `dst` and observe it in `namespaces` (the source is
    always included) and on `capture_points`; write the captured frames to `pcap` when given."""
    spaces = list(dict.fromkeys([source_ns, *namespaces]))
    t0 = time.monotonic()
    tracer = NftTracer(kernel, spaces, tag, table=table)
    capture = PacketCapture(kernel, capture_points, match=tag_filter(tag))
    with listening(kernel, tracer, capture, spaces) as watchers:
        probe = inject_probe(kernel, source_ns, dst, tag, dport)
        events = tracer.collect(timeout=timeout, settle=settle)
        packets = capture.collect(timeout=timeout, settle=settle) if capture_points else []
        conntrack, lost = flow_conntrack(tracer, watchers, tag)
    if pcap is not None:
        capture.write_pcap(pcap)
    return Observation(probe, events, conntrack, packets, time.monotonic() - t0, lost)
