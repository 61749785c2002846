"""trafficDistribution: PreferClose end to end in pure code: the EndpointSlice controller hints each
endpoint for its node's zone, kube-proxy keeps only same-zone endpoints when every ready endpoint is hinted
(kubernetes pkg/proxy/topology.go topologyModeFromHints / CategorizeEndpoints)."""

from __future__ import annotations

import pytest

from netsim.controlplane.endpointslice import pod_endpoint
from netsim.model.endpointslice import parse_endpointslice
from netsim.model.errors import Source, SpecError
from netsim.objcache import decode_stored
from netsim.proxy.model import Endpoint
from netsim.proxy.render import categorize_endpoints

from .scenarios import svc


def _ep(n: int, zones: tuple[str, ...] = (), ready: bool = True) -> Endpoint:
    return Endpoint(f"10.244.{n}.5", 8080, node_name=f"node-{n}", ready=ready, zone_hints=zones)


def _ips(eps):
    return sorted(e.ip for e in eps)


def test_same_zone_endpoints_only_when_every_ready_endpoint_is_hinted():
    sp = svc("x", "10.96.0.50")
    eps = [_ep(1, ("a",)), _ep(2, ("b",)), _ep(3, ("a",))]
    assert _ips(categorize_endpoints(eps, sp, "node-1", "a").cluster) == ["10.244.1.5", "10.244.3.5"]
    assert _ips(categorize_endpoints(eps, sp, "node-2", "b").cluster) == ["10.244.2.5"]
    # A node without a zone label, or a zone no endpoint is hinted for: every endpoint.
    assert len(categorize_endpoints(eps, sp, "node-4", None).cluster) == 3
    assert len(categorize_endpoints(eps, sp, "node-4", "c").cluster) == 3
    # One ready endpoint without hints: hints ignored for the whole Service; a not-ready one does not count.
    assert len(categorize_endpoints([*eps, _ep(4)], sp, "node-1", "a").cluster) == 4
    assert len(categorize_endpoints([*eps, _ep(4, ready=False)], sp, "node-1", "a").cluster) == 2


def test_hints_do_not_narrow_the_local_set():
    sp = svc("x", "10.96.0.50", node_port=30050, external_traffic_policy="Local")
    eps = [_ep(1, ("a",)), _ep(2, ("b",))]
    cat = categorize_endpoints(eps, sp, "node-2", "a")
    assert _ips(cat.cluster) == ["10.244.1.5"] and _ips(cat.local) == ["10.244.2.5"]
    assert _ips(cat.reachable) == ["10.244.1.5", "10.244.2.5"]


def _pod(node: str):
    """A typed Pod, as the EndpointSlice controller reads it from the store's parse cache."""
    return decode_stored({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"},
                          "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
                          "status": {"podIP": "10.244.1.5", "phase": "Running",
                                     "conditions": [{"type": "Ready", "status": "True"}]}})


def _service(**spec):
    return decode_stored({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
                          "spec": {"selector": {"app": "s"}, "ports": [{"port": 80}], **spec}})


def _node(**labels):
    return decode_stored({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": labels}})


def test_controller_hints_endpoints_for_their_zone_with_prefer_close():
    node = _node(**{"topology.kubernetes.io/zone": "a"})
    close = _service(trafficDistribution="PreferClose")
    ep = pod_endpoint(close, _pod("node-1"), node)
    assert ep["zone"] == "a" and ep["hints"] == {"forZones": [{"name": "a"}]}
    assert "hints" not in pod_endpoint(_service(), _pod("node-1"), node)
    assert "hints" not in pod_endpoint(close, _pod("node-1"), _node())
    doc = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "s-1", "labels": {"kubernetes.io/service-name": "s"}},
           "addressType": "IPv4", "endpoints": [ep], "ports": [{"port": 8080}]}
    assert parse_endpointslice(doc, Source("<t>")).endpoints[0].zone_hints == ("a",)
    doc["endpoints"][0]["hints"] = {"forZones": [{"zone": "a"}]}
    with pytest.raises(SpecError, match=r"hints\.forZones\[0\]\.zone: unknown field"):
        parse_endpointslice(doc, Source("<t>"))
