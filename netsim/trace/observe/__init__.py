"""Kernel observation for `netsim trace`: what the kernel reports of one tagged packet.

Each building block works on one or more network namespaces through `netsim.kernel.api.Kernel` (sockets
are opened inside a namespace with `Kernel.call_in` and stay there), and keeps its pure parts (payload
rendering, packet decoding, pcap writing) separate and unit-tested:
`tag` (the tag a probe carries), `craft`/`inject` (probe bytes; sending them), `nftrace` (nftables trace
events), `conntrack` (ctnetlink events and `conntrack -L`), `capture`/`pcap` (AF_PACKET copies),
`netlink` (the NETLINK_NETFILTER listener), `poll` (waiting on many sockets), `rules` (trace event ->
the rule a person wrote), `packet` (header decoding). `roundtrip.observe` wires them for one namespace
round trip, `cluster.observe_path` over a whole cluster. `facts` reads the cluster view (`netsim.trace.view`)
from the kernel and the store: `read_node` (the one node reader), `from_cluster` (lazily, for a trace),
`read_cluster` (at once, for the topology picture).
"""
