"""Observe one tagged packet crossing a live cluster (side effects; the hops are built by `netsim.trace.report.observed`).

nft trace tagging tables + listeners in every node (and the fabric when an external host takes part) --
the trace bit is cleared whenever the packet changes namespace, so each needs its own tagging table; pods
and hosts have no rules, so they get none (that halves the fixed cost); conntrack listeners in the nodes;
AF_PACKET captures on every node's eth0 (VXLAN outer copies, opened as VXLAN by `packet.decode_frame`),
on the source's eth0 and on every pod's and host's eth0 (a socket each), filtered afterwards to the
tagged packet and what came back (a reply matching a conntrack tuple of the flow, an ICMP error quoting
the tagged packet). Reading stops as soon as the packet's fate is known (`gather`). Everything is torn
down in `finally`, also when sending failed.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Collection, Sequence
from pathlib import Path as FsPath

from netsim.kernel.api import Kernel
from netsim.trace.observe import craft
from netsim.trace.observe.capture import ANY, CapturedPacket, PacketCapture
from netsim.trace.observe.conntrack import CtEntry
from netsim.trace.observe.inject import Probe, inject_probe, send_raw, source_address
from netsim.trace.observe.nftrace import DEFAULT_TABLE, NftTracer, TraceEvent, render_trace_table, tagged_only
from netsim.trace.observe.poll import wait_readable
from netsim.trace.observe.raw import RawObservation, is_reply, reply_tuples
from netsim.trace.observe.roundtrip import flow_conntrack, listening
from netsim.trace.observe.tag import TraceTag
from netsim.trace.resolve import TraceDestination, TraceSource
from netsim.trace.view import ClusterView


class _FastTracer(NftTracer):
    """NftTracer whose tagging tables are loaded and removed in parallel (one `nft -f` per namespace, all
    started before any is waited for): on a 3-node cluster this halves the fixed cost of a trace."""

    def _parallel(self, namespaces: Sequence[str], payload: str) -> list[str]:
        procs = []
        errors = []
        for ns in namespaces:
            if not self.kernel.netns_exists(ns):
                continue
            procs.append(
                (
                    ns,
                    self.kernel.call_in(
                        ns,
                        lambda: subprocess.Popen(
                            ["nft", "-f", "-"],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                            text=True,
                        ),
                    ),
                )
            )
        for ns, proc in procs:
            _, err = proc.communicate(payload, timeout=30)
            if proc.returncode != 0:
                errors.append(f"{ns}: nft -f failed: {(err or '').strip()}")
        return errors

    def start(self) -> NftTracer:
        from netsim.trace.observe.nftrace import NftTraceListener

        try:
            for ns in self.namespaces:
                self._listeners[ns] = NftTraceListener(self.kernel, ns)
            self._tables = list(self.namespaces)
            errors = self._parallel(self.namespaces, render_trace_table(self.tag, self.table))
            if errors:
                raise RuntimeError("; ".join(errors))
        except BaseException:
            self.stop()
            raise
        return self

    def annotate(self, ns: str, event: TraceEvent) -> TraceEvent:
        """As NftTracer.annotate, without reading the ruleset for the tagging table's own events."""
        if event.family == "ip" and event.table == self.table:
            return dataclasses.replace(
                event,
                ns=ns,
                tagging=True,
                iif_name=self.ifname(ns, event.iif),
                oif_name=self.ifname(ns, event.oif),
            )
        return super().annotate(ns, event)

    def stop(self) -> None:
        from netsim.trace.observe.nftrace import render_trace_teardown

        tables, self._tables = self._tables, []
        errors = self._parallel(tables, render_trace_teardown(self.table)) if tables else []
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        if errors:
            from netsim.kernel.api import KernelError

            raise KernelError("; ".join(errors))


def probe_payload(dest: TraceDestination) -> bytes:
    """A DNS query for port 53 (so the cluster DNS answers), a short text otherwise (UDP)."""
    if dest.protocol == "UDP" and dest.port == 53:
        import dnslib

        return dnslib.DNSRecord.question("kubernetes.default.svc.cluster.local", "A").pack()
    if dest.protocol == "UDP":
        return b"netsim trace\n"
    return b""


def _finished(
    events: dict[str, list[TraceEvent]], packets: list[CapturedPacket], source: TraceSource, tag: TraceTag
) -> bool:
    """Is the packet's fate known: a rule dropped it, or an answer (reply, RST, ICMP error) came back to
    the source?"""
    if any(e.outcome == "drop" and not e.tagging for evs in events.values() for e in evs):
        return True
    return any(p.ns == source.netns and p.direction != "outgoing" and is_reply(p, tag) for p in packets)


def gather(
    tracer: NftTracer,
    capture: PacketCapture,
    view: ClusterView,
    source: TraceSource,
    tag: TraceTag,
    *,
    timeout: float,
    settle: float,
    idle: float = 1.0,
) -> tuple[dict[str, list[TraceEvent]], list[CapturedPacket]]:
    """Read trace events and captured copies until the packet's fate is known and things went quiet for
    `settle` seconds; without a known fate (lost, left the cluster, an unanswered delivery) until nothing
    new came for `idle` seconds; never longer than `timeout`. On a loaded machine the packet's softirq
    work can lag the sender by a good fraction of a second, so a fixed short window is not enough."""
    listeners = dict(tracer._listeners)
    raw: dict[str, list[TraceEvent]] = {ns: [] for ns in listeners}
    t0 = time.monotonic()
    last_new = t0
    while True:
        new = False
        for ns, lst in listeners.items():
            got = lst.read()
            if got:
                raw[ns].extend(got)
                new = True
        if capture.collect(timeout=0, settle=0):
            new = True
        now = time.monotonic()
        if new:
            last_new = now
        quiet = now - last_new
        if now - t0 >= timeout or quiet >= idle:
            break
        if quiet >= settle and _finished(raw, capture.packets, source, tag):
            break
        wait_readable([*listeners.values(), *capture._taps], min(settle / 2, max(0.0, timeout - (now - t0))))
    events = {ns: [tracer.annotate(ns, e) for e in tagged_only(evs, tag)] for ns, evs in raw.items()}
    return events, list(capture.packets)


def send_probe(kernel: Kernel, ns: str, dest: TraceDestination, tag: TraceTag) -> Probe:
    """inject.inject_probe, with the packet built without scapy where possible (a cold start is faster)."""
    payload = probe_payload(dest)
    if tag.proto == "sctp":
        return inject_probe(kernel, ns, dest.ip, tag, dest.port, payload=payload)
    src = source_address(kernel, ns, dest.ip)
    raw = craft.build(tag, src, dest.ip, dest.port, payload=payload)
    at = send_raw(kernel, ns, dest.ip, raw)
    return Probe(ns=ns, tag=tag, src=src, dst=dest.ip, dport=dest.port, raw=raw, sent_at=at)


def observe_path(
    kernel: Kernel,
    view: ClusterView,
    source: TraceSource,
    dest: TraceDestination,
    tag: TraceTag,
    *,
    extra_pods: Sequence[str] = (),
    scope: Collection[str] | None = None,
    pcap: str | FsPath | None = None,
    timeout: float = 3.0,
    settle: float = 0.06,
    table: str | None = None,
) -> RawObservation:
    """Send the tagged probe from the source and record what every namespace on the way saw.

    The tagging table is named after the tag (`netsim_trace_<ip id>`), so two traces running at the same
    time in one cluster do not replace each other's tables.

    `scope`: the namespaces the packet may pass (the simulation's hops, the source's node, every candidate
    endpoint and its node); when given, only those nodes are traced and only those pods captured, so the
    cost of a trace follows its path, not the cluster (listeners in 100 nodes and taps on 10,000 pods
    would take seconds to open). None observes every node and pod."""
    table = table or f"{DEFAULT_TABLE}_{tag.ip_id:04x}"
    node_ns = [view.node_ns(n) for n in view.node_ips]
    if scope is not None:
        node_ns = [ns for ns in node_ns if ns in scope]
    hosts_involved = source.kind == "host" or view.host_by_ip(dest.ip) is not None
    # nft tracing where rules decide: the nodes (and the fabric when an external host takes part). Pods
    # and hosts have no rules of their own; captures on their eth0 show sending and arrival.
    spaces = [s for s in dict.fromkeys([*node_ns, *([view.fabric] if hosts_involved else [])]) if s]
    if source.kind == "node" and source.netns not in spaces:
        spaces.insert(0, source.netns)
    # A node source receives its answer on whichever interface routes it there (a pod's veth, the bridge,
    # the VXLAN device, lo): one tap on all of them, besides eth0's own.
    points = (
        [(source.netns, "eth0")]
        + ([(source.netns, ANY)] if source.kind == "node" else [])
        + [(ns, "eth0") for ns in node_ns]
        + [(p.netns, "eth0") for p in view.pods
           if not p.host_network and p.netns != source.netns and (scope is None or p.netns in scope)]
        + [(view.host_ns(h), "eth0") for h in view.hosts if view.host_ns(h) != source.netns]
    )
    points = [pt for pt in dict.fromkeys(points) if pt[0] and kernel.netns_exists(pt[0])]
    t0 = time.monotonic()
    tracer = _FastTracer(kernel, spaces, tag, table=table)
    # The simulation already dumped the links of the nodes it walked: their names by index serve the
    # tracer too (a dump costs ~0.2 s on a node with 300 pods); an index it does not know still re-reads.
    for nv in view.nodes.values():
        if nv.netns in spaces and nv.links:
            tracer._ifnames.setdefault(nv.netns, {link.index: link.name for link in nv.links.values()})
    capture = PacketCapture(kernel, points, match=lambda info: info.packet is not None)
    probe = None
    error = None
    events: dict[str, list[TraceEvent]] = {}
    conntrack: dict[str, list[CtEntry]] = {}
    packets: list[CapturedPacket] = []
    lost: list[str] = []
    with listening(kernel, tracer, capture, node_ns) as watchers:
        try:
            probe = send_probe(kernel, source.netns, dest, tag)
        except Exception as exc:  # no route in the source: the trace ends there
            error = str(exc)
        if error is None:
            events, packets = gather(tracer, capture, view, source, tag, timeout=timeout, settle=settle)
        conntrack, lost = flow_conntrack(tracer, watchers, tag)
    replies = reply_tuples(conntrack)
    packets = [p for p in packets if tag.matches(p.info.packet) or is_reply(p, tag, replies)]
    if pcap is not None:
        capture.write_pcap(pcap, packets)
    return RawObservation(probe, events, conntrack, packets, time.monotonic() - t0, error, lost)
