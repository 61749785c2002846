"""Observation primitives of `netsim trace`: probe injection, nftables trace events, conntrack, capture.

Each building block works on one or more network namespaces through `netsim.kernel.api.Kernel` (sockets
are opened inside a namespace with `Kernel.call_in` and stay there), and keeps its pure parts (payload
rendering, netlink/packet decoding, text parsing, pcap writing) separate and unit-tested.

A tracer uses them in this order (`observe.observe` does exactly this): pick a `tag.TraceTag`; open
`conntrack.ConntrackWatcher`s, `nftrace.NftTracer` (listeners, then tagging tables) and
`capture.PacketCapture` on the namespaces/interfaces of interest; `inject.inject_probe` in the source
namespace; `collect` events and packets, `read` conntrack events; stop everything (also on failure).

`netsim trace` on top of them: `resolve` (SRC/DST), `view` (a lazily read picture of the cluster),
`simulate` (ovn-trace style walk over the node's real iptables-save, routes, neigh/FDB, with the policy
model), `observe_cluster` (sending and watching over a whole cluster), `observed` (kernel reports -> hops),
`compare`, `hops` (the record shape), `report` (text), `craft` (probe bytes without scapy),
`api` (`trace`, `trace_for_scenario`).
"""
