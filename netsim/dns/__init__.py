"""Cluster DNS: the records CoreDNS's kubernetes plugin serves, a responder, and the pods' resolver config.

- `records`: pure; a snapshot of Services, EndpointSlices and pods -> answers to (qname, qtype).
- `server`: one selector thread answering UDP and TCP port 53 in any number of network namespaces.
- `resolvconf`: the resolv.conf the kubelet gives a pod, written where `ip netns exec` binds it, and the
  service environment variables the kubelet injects.
"""
