"""Simulation: one packet walked through the cluster without sending it.

`walker` is the one packet walker (`step`: a namespace's forwarding decision over the cluster view,
`netsim.trace.view`; `walk`: steps strung together), which the topology graph's paths use too;
`walk.simulate` follows the packet ovn-trace style through each node's real rules (the kube-proxy
interpreter) and the policy model around the walker's decisions, and `reply` walks the answer's way back.
"""
