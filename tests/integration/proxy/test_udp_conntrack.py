"""UDP flows and kube-proxy's conntrack clean-up (root).

A UDP "connection" through a Service is a conntrack entry that keeps the DNAT chosen for its first
datagram. When that endpoint goes away, kube-proxy deletes the entries whose reply source is the removed
endpoint (kubernetes pkg/proxy/conntrack/cleanup.go, deleteStaleEndpointConnections), so the client's next
datagram on the same 5-tuple is load-balanced afresh instead of vanishing into a dead pod until the entry
times out (nf_conntrack_udp_timeout_stream, 120 s).
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from svc_cluster import describe, running_cluster

pytestmark = pytest.mark.root

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: udp-a, labels: {app: udp}}
spec:
  nodeName: node-1
  containers: [{name: dns, image: agnhost, ports: [{containerPort: 5353, protocol: UDP}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: udp-b, labels: {app: udp}}
spec:
  nodeName: node-2
  containers: [{name: dns, image: agnhost, ports: [{containerPort: 5353, protocol: UDP}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: client, image: busybox}]
---
apiVersion: v1
kind: Service
metadata: {name: udp}
spec:
  selector: {app: udp}
  ports: [{port: 53, targetPort: 5353, protocol: UDP}]
"""


@pytest.fixture(scope="module")
def cluster():
    with running_cluster("flannel", "vxlan") as c:
        c.apply(MANIFESTS)
        yield c


def _ask(sock: socket.socket) -> str | None:
    """One datagram on the flow; the pod that answered, or None after a timeout."""
    sock.send(b"netsim-probe\n")
    try:
        return json.loads(sock.recv(4096))["pod"]
    except (TimeoutError, OSError):
        return None


def test_udp_service_answers(cluster):
    res = cluster.probe(frm="default/client", to="svc/default/udp", protocols=["UDP"], count=10)
    assert all(r.connected for r in res), describe(res)
    assert {r.served_by for r in res} <= {"default/udp-a", "default/udp-b"}


def test_udp_flow_moves_when_its_endpoint_goes_away(cluster):
    vip = cluster.service("default", "udp")["spec"]["clusterIP"]
    netns = cluster.sources("default/client")[0].netns

    def open_flow() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 40053))  # one fixed 5-tuple for the whole test
        s.connect((vip, 53))
        s.settimeout(1.0)
        return s

    sock = cluster.kernel.call_in(netns, open_flow)
    try:
        first = _ask(sock)
        assert first in ("default/udp-a", "default/udp-b")
        assert all(_ask(sock) == first for _ in range(3))  # the flow sticks (conntrack)
        cluster.delete("Pod", first.split("/")[1])
        other = "default/udp-b" if first == "default/udp-a" else "default/udp-a"
        deadline = time.monotonic() + 5
        answers = []
        while time.monotonic() < deadline:
            got = _ask(sock)
            answers.append(got)
            if got == other:
                break
        assert answers[-1] == other, f"same 5-tuple after {first} was deleted: {answers}"
    finally:
        sock.close()
