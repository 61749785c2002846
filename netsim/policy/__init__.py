"""NetworkPolicy: the pure evaluator (model.py, the expected truth table) and the calico-like felix renderer
(felix.py, iptables/ipset payloads enforcing it on a node)."""
