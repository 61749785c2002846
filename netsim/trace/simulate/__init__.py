"""Simulation for `netsim trace`: one packet walked through the cluster without sending it.

`view` reads a lazily filled picture of the live cluster (addresses, routes, links, neighbours/FDB,
iptables-save, ipsets; pods, hosts and the NetworkPolicy model from the store), `walk.simulate` follows the
packet ovn-trace style through the node's real rules (the kube-proxy interpreter), routes and tunnels with
the policy model, and `reply` walks the answer's way back.
"""
