"""Snapshots from store objects: pod IPs from status, StatefulSet identity, namespaces, bad objects skipped."""

from __future__ import annotations

from netsim.dns.records import ClusterDNS
from netsim.dns.source import snapshot_from_dicts, snapshot_from_store
from netsim.store import MemoryStore

D = "default.svc.cluster.local."

WEB_SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}
WEB_SET = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c"}]}}}}


def _pod(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                              "uid": "u1", "controller": True}]},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def _slice(*names_ips: tuple[str, str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": n}} for n, ip in names_ips]}


def test_statefulset_pods_get_stable_names_without_hostname_in_the_slice():
    snap = snapshot_from_dicts([WEB_SVC], [_slice(("web-0", "10.244.1.7"), ("web-1", "10.244.2.8"))],
                               [_pod("web-0", "10.244.1.7"), _pod("web-1", "10.244.2.8")], statefulsets=[WEB_SET])
    dns = ClusterDNS(snap)
    assert dns.answer(f"web-0.web.{D}", "A").data() == ["10.244.1.7"]
    assert dns.answer(f"web-1.web.{D}", "A").data() == ["10.244.2.8"]
    assert [s.target for s in dns.answer(f"_http._tcp.web.{D}", "SRV").data()] == [f"web-0.web.{D}",
                                                                                   f"web-1.web.{D}"]


def test_without_the_statefulset_the_names_fall_back_to_dashed_ips():
    snap = snapshot_from_dicts([WEB_SVC], [_slice(("web-0", "10.244.1.7"))], [_pod("web-0", "10.244.1.7")])
    dns = ClusterDNS(snap)
    assert dns.answer(f"web-0.web.{D}", "A").rcode == "NXDOMAIN"
    assert dns.answer(f"10-244-1-7.web.{D}", "A").data() == ["10.244.1.7"]


def test_bad_objects_are_skipped_not_fatal():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad_Name"}, "spec": {}}
    snap = snapshot_from_dicts([bad, WEB_SVC], [], [])
    assert [s.meta.name for s in snap.services] == ["web"]


def test_snapshot_from_a_store_uses_its_resource_version_as_serial():
    store = MemoryStore()
    store.create(WEB_SVC)
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    snap = snapshot_from_store(store)
    assert snap.serial == store.current_rv() > 0
    assert {"team-a", "default", "kube-system"} <= snap.namespaces
    dns = ClusterDNS(snap)
    assert dns.answer("team-a.svc.cluster.local", "A").rcode == "NOERROR"
    assert dns.answer("team-b.svc.cluster.local", "A").rcode == "NXDOMAIN"
    assert dns.answer(f"web.{D}", "A").rcode == "NXDOMAIN"  # headless without endpoints
