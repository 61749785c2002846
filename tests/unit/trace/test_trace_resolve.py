"""Resolving `netsim trace SRC DST[:PORT]` against a stand-in cluster: every destination form, and the
usage errors a person can make (exit code 2)."""

from __future__ import annotations

import pytest

from netsim.api import ProbeEndpoint
from netsim.model import targets as sel
from netsim.model.errors import UsageError
from netsim.store import MemoryStore
from netsim.trace.resolve import resolve_destination, resolve_source


class FakeCluster:
    pods = {"default/client": ("10.244.0.2", "node-a"), "default/web": ("10.244.1.5", "node-b")}
    store = MemoryStore()  # its parse cache decodes what the stand-in hands out, as a cluster's store does

    def sources(self, s):
        s = sel.parse_source(s) if isinstance(s, str) else s
        if s.kind == sel.POD:
            ip, node = self.pods[s.text]
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": s.name, "namespace": "default"},
                   "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}
            return [ProbeEndpoint(s.text, f"netsim-t-pod-{s.name}", ip, pod)]
        if s.kind == sel.NODE:
            return [ProbeEndpoint(s.text, f"netsim-t-node-{s.name}", "172.18.0.2")]
        return [ProbeEndpoint(s.text, f"netsim-t-host-{s.name}", "203.0.113.10")]

    def service(self, ns, name):
        ports = [{"port": 80}] if name == "web" else [{"name": "dns", "port": 53}, {"name": "metrics", "port": 9153}]
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"clusterIP": "10.96.0.20", "ports": ports}}


C = FakeCluster()


def test_sources():
    s = resolve_source(C, "default/client")
    assert (s.kind, s.ip, s.node, s.pod) == ("pod", "10.244.0.2", "node-a", "default/client")
    assert resolve_source(C, "node/node-a").node == "node-a"
    assert resolve_source(C, "host/ext").kind == "host"
    with pytest.raises(UsageError):
        resolve_source(C, "default/*")


def test_destinations():
    d = resolve_destination(C, "svc/default/web", None, "tcp")
    assert (d.kind, d.ip, d.port, d.protocol, d.service) == (
        "service",
        "10.96.0.20",
        80,
        "TCP",
        "default/web",
    )
    assert resolve_destination(C, "svc/default/web:80", None, "TCP").port == 80
    d = resolve_destination(C, "172.18.0.3:30080", None, "TCP")
    assert (d.kind, d.ip, d.port) == ("ip", "172.18.0.3", 30080)
    d = resolve_destination(C, "default/web:8080", None, "UDP")
    assert (d.kind, d.ip, d.pod, d.protocol) == ("pod", "10.244.1.5", "default/web", "UDP")
    assert resolve_destination(C, "default/web", None, "ICMP").port is None


@pytest.mark.parametrize(
    "dst, port, proto, msg",
    [
        ("svc/kube-system/dns", None, "UDP", "several ports"),
        ("default/web", None, "TCP", "which port"),
        ("default/web:80", 81, "TCP", "conflicts"),
        ("default/web:80", None, "GRE", "not one of"),
        ("*/*", 80, "TCP", "one destination"),
    ],
)
def test_destination_errors(dst, port, proto, msg):
    with pytest.raises(UsageError, match=msg):
        resolve_destination(C, dst, port, proto)
