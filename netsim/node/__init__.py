"""Node agents: kubelet, kube-proxy, felix, flanneld, DNS - one set per node namespace."""
