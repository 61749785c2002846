"""`netsim trace`: one packet's path through the cluster, simulated and observed, compared and reported.

Split by concern (docs/architecture.md, "Trace"):
- `observe/`: kernel observation (probe injection, nftables trace events, conntrack, captures) in the
  namespaces the packet crosses;
- `simulate/`: the cluster view and the walk of the packet (and its answer) through routes, tunnels and
  the node's real iptables rules, with the NetworkPolicy model;
- `report/`: assembly of the observed path from the kernel's reports, comparison with the simulation,
  text rendering.
Shared by all three: `hops` (the record shape of a path) and `resolve` (SRC/DST selectors). The entry
points are `api.trace` and `api.trace_for_scenario` (`netsim.Cluster.trace_summary`).
"""
