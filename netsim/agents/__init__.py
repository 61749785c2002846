"""Agents that read the store: the kubelet's pod logic, the LoadBalancer speaker, and the store-facing side of
the data-plane agents (kube-proxy, felix, DNS, the pod network's backend).

Each takes its identity (cluster, node), a kernel and a store (or a change feed from it), and has one entry
point per pass; the daemon (`netsim/daemon.py`) only constructs and drives them. They sit above the control
plane, whose store and object helpers they read, and below the daemon.
"""
