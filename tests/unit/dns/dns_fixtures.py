"""A small cluster for the DNS tests: ClusterIP, headless (with a StatefulSet-like pod), ExternalName."""

from __future__ import annotations

from typing import Any

from netsim.dns.records import PodInfo, Snapshot
from netsim.model.endpointslice import EndpointSlice, parse_endpointslice
from netsim.model.errors import Source
from netsim.model.service import Service, parse_service

SRC = Source("<test>")


def svc(name: str, ns: str = "default", **spec: Any) -> Service:
    return parse_service({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                          "spec": spec}, SRC)


def eps(name: str, service: str, endpoints: list[dict], ports: list[dict], ns: str = "default") -> EndpointSlice:
    return parse_endpointslice({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports}, SRC)


def cluster_snapshot() -> Snapshot:
    services = (
        svc("web", clusterIP="10.96.0.20", selector={"app": "web"},
            ports=[{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9090}]),
        svc("db", clusterIP="None", selector={"app": "db"}, ports=[{"name": "pg", "port": 5432}]),
        svc("peers", clusterIP="None", publishNotReadyAddresses=True, ports=[{"name": "gossip", "port": 7000,
                                                                               "protocol": "UDP"}]),
        svc("empty", clusterIP="None", ports=[{"name": "x", "port": 1}]),
        svc("ext", type="ExternalName", externalName="example.com"),
        svc("alias", type="ExternalName", externalName="web.default.svc.cluster.local"),
        svc("kube-dns", "kube-system", clusterIP="10.96.0.10",
            ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]),
        svc("api", "other", clusterIP="10.96.5.5", ports=[{"port": 443}]),
    )
    slices = (
        eps("web-abc", "web", [{"addresses": ["10.244.1.5"]},
                               {"addresses": ["10.244.2.6"], "conditions": {"ready": True}}],
            [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]),
        eps("db-xyz", "db", [
            {"addresses": ["10.244.1.10"], "hostname": "db-0"},
            {"addresses": ["10.244.2.11"], "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-1"}},
            {"addresses": ["10.244.3.12"], "hostname": "db-2", "conditions": {"ready": False}},
        ], [{"name": "pg", "port": 5432}]),
        eps("peers-1", "peers", [{"addresses": ["10.244.1.20"], "conditions": {"ready": False}}],
            [{"name": "gossip", "port": 7000, "protocol": "UDP"}]),
        eps("kube-dns-1", "kube-dns", [{"addresses": ["10.244.0.2"]}],
            [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}], ns="kube-system"),
    )
    pods = (
        PodInfo("default", "db-1", ips=("10.244.2.11",), hostname="db-1", subdomain="db"),
        PodInfo("default", "web-1", ips=("10.244.1.5",)),
    )
    return Snapshot(services, slices, pods, serial=1234)
