"""Observation primitives of `netsim trace`: probe injection, nftables trace events, conntrack, capture.

Each building block works on one or more network namespaces through `netsim.kernel.api.Kernel` (sockets
are opened inside a namespace with `Kernel.call_in` and stay there), and keeps its pure parts (payload
rendering, netlink/packet decoding, text parsing, pcap writing) separate and unit-tested.

A tracer uses them in this order (`observe.observe` does exactly this): pick a `tag.TraceTag`; open
`conntrack.ConntrackWatcher`s, `nftrace.NftTracer` (listeners, then tagging tables) and
`capture.PacketCapture` on the namespaces/interfaces of interest; `inject.inject_probe` in the source
namespace; `collect` events and packets, `read` conntrack events; stop everything (also on failure).
"""
