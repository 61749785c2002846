"""IP address management: host-local (reference layout on disk) and calico-style /26 block IPAM."""
