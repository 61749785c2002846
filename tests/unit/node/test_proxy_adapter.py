"""Service + EndpointSlice objects become the renderer's ServicePorts and Endpoints as kube-proxy sees them."""

from __future__ import annotations

from netsim.model.loader import parse_documents
from netsim.proxy.adapter import collect, endpoints_for, service_ports

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  clusterIP: 10.96.0.50
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abcde, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
endpoints:
- addresses: [10.244.1.5]
  nodeName: node-2
- addresses: [10.244.0.7]
  nodeName: node-1
  conditions: {ready: false, serving: true, terminating: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-x, namespace: shop, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
ports: [{name: http, port: 9999}]
endpoints: [{addresses: [10.244.9.9]}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
"""


def objects():
    objs = parse_documents(MANIFEST, "m.yaml")
    services = [o for o in objs if o.kind == "Service"]
    slices = [o for o in objs if o.kind == "EndpointSlice"]
    return services, slices


def test_service_ports_carry_the_proxy_relevant_fields():
    services, _ = objects()
    web = service_ports(services[0])
    assert [(sp.port_name, sp.protocol, sp.port, sp.node_port) for sp in web] == [
        ("http", "TCP", 80, 30080), ("dns", "UDP", 53, 0)]  # an unallocated nodePort is 0
    assert web[0].session_affinity_timeout == 10800
    assert web[0].external_traffic_policy == "Cluster"
    assert service_ports(services[1]) == []  # headless: no proxy rules


def test_endpoints_matched_by_port_name_with_condition_defaults():
    services, slices = objects()
    eps = endpoints_for(services[0], slices)
    http = eps[service_ports(services[0])[0].key]
    assert {(e.ip, e.port) for e in http} == {("10.244.1.5", 8080), ("10.244.0.7", 8080)}
    ready = {e.ip: (e.ready, e.serving, e.terminating) for e in http}
    assert ready["10.244.1.5"] == (True, True, False)  # unset conditions: ready, serving, not terminating
    assert ready["10.244.0.7"] == (False, True, True)
    assert all(e.ip != "10.244.9.9" for lst in eps.values() for e in lst)  # another service's slice


def test_collect_gathers_everything():
    services, slices = objects()
    sps, eps = collect(services, slices)
    assert len(sps) == 2 and set(eps) == {sp.key for sp in sps}
