"""Readers of the text the kernel's tools print (`iptables-save`, `ipset save`, `conntrack -L`/`-E`): one reader per
format, pure, shared by the renderers (kube-proxy, felix), the node agents and trace."""
