"""Cluster DNS records: every record type, NXDOMAIN vs NODATA, headless readiness, SRV, PTR, quirks."""

from __future__ import annotations

import pytest
from dns_fixtures import cluster_snapshot, eps, svc

from netsim.dns.records import NOERROR, NXDOMAIN, REFUSED, ClusterDNS, Snapshot, Soa, Srv, resolve

D = "default.svc.cluster.local."


@pytest.fixture
def snapshot() -> Snapshot:
    return cluster_snapshot()


@pytest.fixture
def dns(snapshot) -> ClusterDNS:
    return ClusterDNS(snapshot)


def test_clusterip_service_a_record(dns):
    ans = dns.answer("web.default.svc.cluster.local", "A")
    assert ans.rcode == NOERROR and ans.authoritative
    assert [(r.name, r.type, r.ttl, r.data) for r in ans.answers] == [(f"web.{D}", "A", 5, "10.96.0.20")]
    assert ans.authority == ()


def test_names_match_case_insensitively_and_keep_the_query_case(dns):
    ans = dns.answer("WEB.Default.SVC.Cluster.Local.", "A")
    assert ans.data() == ["10.96.0.20"]
    assert ans.answers[0].name == "WEB.Default.SVC.Cluster.Local."


def test_missing_service_is_nxdomain_with_the_zone_soa(dns):
    ans = dns.answer("nope.default.svc.cluster.local", "A")
    assert ans.rcode == NXDOMAIN and ans.answers == ()
    (soa,) = ans.authority
    assert (soa.name, soa.type, soa.ttl) == ("cluster.local.", "SOA", 5)
    assert soa.data == Soa("ns.dns.cluster.local.", "hostmaster.cluster.local.", 1234, 7200, 1800, 86400, 5)


@pytest.mark.parametrize("qtype", ["AAAA", "MX", "TXT", "CNAME", "PTR", "HTTPS", "NS"])
def test_existing_name_with_another_type_is_nodata(dns, qtype):
    ans = dns.answer("web.default.svc.cluster.local", qtype)
    assert ans.rcode == NOERROR and ans.answers == ()
    assert [r.type for r in ans.authority] == ["SOA"]


@pytest.mark.parametrize("qtype", ["AAAA", "MX", "TXT", "CNAME", "HTTPS"])
def test_missing_name_with_any_type_is_nxdomain(dns, qtype):
    assert dns.answer("nope.default.svc.cluster.local", qtype).rcode == NXDOMAIN


@pytest.mark.parametrize("name,rcode", [
    ("default.svc.cluster.local", NOERROR),  # an existing namespace: NODATA
    ("kube-public.svc.cluster.local", NOERROR),  # built-in namespaces exist even when empty
    ("nons.svc.cluster.local", NXDOMAIN),
    ("web.nons.svc.cluster.local", NXDOMAIN),
    ("svc.cluster.local", NOERROR),
    ("pod.cluster.local", NOERROR),
    ("cluster.local", NOERROR),
    ("foo.cluster.local", NXDOMAIN),
    ("a.b.c.web.default.svc.cluster.local", NXDOMAIN),  # too many labels
])
def test_structural_names(dns, name, rcode):
    ans = dns.answer(name, "A")
    assert ans.rcode == rcode and ans.answers == ()


def test_headless_service_lists_ready_endpoints_only(dns):
    assert dns.answer(f"db.{D}", "A").data() == ["10.244.1.10", "10.244.2.11"]


def test_headless_publish_not_ready_addresses_includes_not_ready(dns):
    assert dns.answer(f"peers.{D}", "A").data() == ["10.244.1.20"]


def test_headless_without_ready_endpoints_is_nxdomain(dns):
    assert dns.answer(f"empty.{D}", "A").rcode == NXDOMAIN


def test_endpoint_hostnames_statefulset_style(dns):
    assert dns.answer(f"db-0.db.{D}", "A").data() == ["10.244.1.10"]
    # no hostname in the slice: taken from the pod's hostname/subdomain, as the EndpointSlice controller does
    assert dns.answer(f"db-1.db.{D}", "A").data() == ["10.244.2.11"]
    assert dns.answer(f"db-2.db.{D}", "A").rcode == NXDOMAIN  # not ready
    assert dns.answer(f"db-9.db.{D}", "A").rcode == NXDOMAIN


def test_endpoint_names_from_dashed_ips_even_for_clusterip_services(dns):
    assert dns.answer(f"10-244-1-5.web.{D}", "A").data() == ["10.244.1.5"]
    assert dns.answer(f"10-244-9-9.web.{D}", "A").rcode == NXDOMAIN


def test_pod_hostname_only_counts_when_subdomain_names_the_service():
    snap = cluster_snapshot()
    from dataclasses import replace
    pods = tuple(replace(p, subdomain="other") if p.name == "db-1" else p for p in snap.pods)
    dns = ClusterDNS(replace(snap, pods=pods))
    assert dns.answer(f"db-1.db.{D}", "A").rcode == NXDOMAIN
    assert dns.answer(f"10-244-2-11.db.{D}", "A").data() == ["10.244.2.11"]


def test_srv_for_a_named_port_of_a_clusterip_service(dns):
    ans = dns.answer(f"_http._tcp.web.{D}", "SRV")
    assert ans.data() == [Srv(0, 100, 80, f"web.{D}")]
    assert [(r.name, r.type, r.data) for r in ans.additional] == [(f"web.{D}", "A", "10.96.0.20")]


def test_srv_for_a_headless_service_targets_each_endpoint(dns):
    ans = dns.answer(f"_pg._tcp.db.{D}", "SRV")
    assert ans.data() == [Srv(0, 50, 5432, f"db-0.db.{D}"), Srv(0, 50, 5432, f"db-1.db.{D}")]
    assert {(r.name, r.data) for r in ans.additional} == {(f"db-0.db.{D}", "10.244.1.10"),
                                                         (f"db-1.db.{D}", "10.244.2.11")}


def test_srv_protocol_and_port_must_match(dns):
    assert dns.answer(f"_http._udp.web.{D}", "SRV").rcode == NXDOMAIN
    assert dns.answer(f"_nope._tcp.web.{D}", "SRV").rcode == NXDOMAIN
    assert dns.answer(f"_gossip._udp.peers.{D}", "SRV").data() == [Srv(0, 100, 7000, f"10-244-1-20.peers.{D}")]


def test_unnamed_ports_have_no_named_srv(dns):
    assert dns.answer("_https._tcp.api.other.svc.cluster.local", "SRV").rcode == NXDOMAIN


def test_srv_on_the_service_name_lists_every_port(dns):
    assert dns.answer(f"web.{D}", "SRV").data() == [Srv(0, 50, 80, f"web.{D}"), Srv(0, 50, 9090, f"web.{D}")]


def test_ptr_for_a_cluster_ip(dns):
    ans = dns.answer("20.0.96.10.in-addr.arpa", "PTR")
    assert ans.data() == [f"web.{D}"] and ans.answers[0].ttl == 5


def test_ptr_for_endpoint_ips(dns):
    assert dns.answer("10.1.244.10.in-addr.arpa.", "PTR").data() == [f"db-0.db.{D}"]
    assert dns.answer("5.1.244.10.in-addr.arpa.", "PTR").data() == [f"10-244-1-5.web.{D}"]
    # not-ready endpoints are not in DNS at all
    assert dns.answer("12.3.244.10.in-addr.arpa.", "PTR").rcode == NXDOMAIN


def test_ptr_miss_is_nxdomain_with_the_reverse_zone_soa(dns):
    ans = dns.answer("99.99.99.10.in-addr.arpa", "PTR")
    assert ans.rcode == NXDOMAIN
    assert ans.authority[0].name == "in-addr.arpa."
    assert ans.authority[0].data.mname == "ns.dns.in-addr.arpa."


def test_external_name_is_a_cname(dns):
    ans = dns.answer(f"ext.{D}", "A")
    assert [(r.type, r.data) for r in ans.answers] == [("CNAME", "example.com.")]
    assert dns.answer(f"ext.{D}", "CNAME").data() == ["example.com."]
    assert dns.answer(f"ext.{D}", "SRV").rcode == NOERROR  # NODATA: no SRV for external services
    assert dns.answer(f"_x._tcp.ext.{D}", "SRV").rcode == NXDOMAIN


def test_external_name_inside_the_cluster_is_chased(dns):
    ans = dns.answer(f"alias.{D}", "A")
    assert [(r.name, r.type, r.data) for r in ans.answers] == [
        (f"alias.{D}", "CNAME", f"web.{D}"), (f"web.{D}", "A", "10.96.0.20")]


def test_pod_records_insecure_verified_disabled(snapshot):
    name = "10-244-1-5.default.pod.cluster.local"
    assert ClusterDNS(snapshot).answer(name, "A").data() == ["10.244.1.5"]
    assert ClusterDNS(snapshot).answer("10-1-2-3.default.pod.cluster.local", "A").data() == ["10.1.2.3"]
    assert ClusterDNS(snapshot).answer("10-1-2-3.nons.pod.cluster.local", "A").rcode == NXDOMAIN
    assert ClusterDNS(snapshot).answer("not-an-ip.default.pod.cluster.local", "A").rcode == NXDOMAIN
    verified = ClusterDNS(snapshot, pods="verified")
    assert verified.answer(name, "A").data() == ["10.244.1.5"]
    assert verified.answer("10-1-2-3.default.pod.cluster.local", "A").rcode == NXDOMAIN
    assert verified.answer("10-244-1-5.kube-system.pod.cluster.local", "A").rcode == NXDOMAIN
    assert ClusterDNS(snapshot, pods="disabled").answer(name, "A").rcode == NXDOMAIN
    with pytest.raises(ValueError):
        ClusterDNS(snapshot, pods="bogus")


def test_dns_version_txt(dns):
    ans = dns.answer("dns-version.cluster.local", "TXT")
    assert ans.data() == ["1.1.0"] and ans.answers[0].ttl == 28800


def test_apex_soa_and_ns(dns):
    assert [r.type for r in dns.answer("cluster.local", "SOA").answers] == ["SOA"]
    assert dns.answer(f"web.{D}", "SOA").answers == ()  # SOA only at the apex (CoreDNS)
    ns = dns.answer("cluster.local.", "NS")
    assert ns.data() == ["kube-dns.kube-system.svc.cluster.local."]
    assert [r.data for r in ns.additional] == ["10.96.0.10"]
    assert dns.answer("ns.dns.cluster.local", "A").data() == ["10.96.0.10"]


def test_names_outside_the_zone_are_refused(dns):
    for name in ("example.com", "web", "web.default", "cluster.local.example.com"):
        ans = dns.answer(name, "A")
        assert ans.rcode == REFUSED and not ans.authoritative and ans.authority == ()


def test_search_paths_are_the_clients_business(dns):
    """The server answers fully qualified names only: what a resolver tries while walking its search list."""
    assert dns.answer(f"web.default.{D}", "A").rcode == NXDOMAIN  # 'web.default' + first search domain
    assert dns.answer("web.default.svc.cluster.local", "A").data() == ["10.96.0.20"]  # + 'svc.cluster.local'
    assert dns.answer("web.default.svc.cluster.local.cluster.local", "A").rcode == NXDOMAIN


def test_non_ptr_queries_for_reverse_names_are_nxdomain(dns):
    assert dns.answer("20.0.96.10.in-addr.arpa", "A").rcode == NXDOMAIN
    assert dns.answer("in-addr.arpa", "A").rcode == NOERROR


def test_axfr_is_refused(dns):
    assert dns.answer("cluster.local", "AXFR").rcode == REFUSED


def test_custom_domain_and_ttl(snapshot):
    dns = ClusterDNS(snapshot, "Corp.Internal", ttl=30)
    ans = dns.answer("web.default.svc.corp.internal", "A")
    assert ans.data() == ["10.96.0.20"] and ans.answers[0].ttl == 30
    assert dns.answer("web.default.svc.cluster.local", "A").rcode == REFUSED
    assert dns.answer("20.0.96.10.in-addr.arpa", "PTR").data() == ["web.default.svc.corp.internal."]
    soa = dns.answer("nope.default.svc.corp.internal", "A").authority[0]
    assert soa.ttl == 30 and soa.data.minimum == 30


def test_duplicate_endpoints_across_slices_are_answered_once():
    snap = Snapshot(
        (svc("h", clusterIP="None", ports=[{"name": "p", "port": 1}]),),
        (eps("h-1", "h", [{"addresses": ["10.0.0.1"]}], [{"name": "p", "port": 1}]),
         eps("h-2", "h", [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}], [{"name": "p", "port": 1}])))
    assert resolve(snap, f"h.{D}", "A").data() == ["10.0.0.1", "10.0.0.2"]


def test_headless_slice_without_ports_has_names_but_no_srv():
    snap = Snapshot((svc("h", clusterIP="None"),), (eps("h-1", "h", [{"addresses": ["10.0.0.1"]}], []),))
    assert resolve(snap, f"h.{D}", "A").data() == ["10.0.0.1"]
    assert resolve(snap, f"h.{D}", "SRV").rcode == NOERROR and resolve(snap, f"h.{D}", "SRV").answers == ()
    assert resolve(snap, f"_p._tcp.h.{D}", "SRV").rcode == NXDOMAIN


def test_slices_of_other_namespaces_do_not_leak():
    snap = Snapshot((svc("h", clusterIP="None", ports=[{"name": "p", "port": 1}]),),
                    (eps("h-1", "h", [{"addresses": ["10.0.0.1"]}], [{"name": "p", "port": 1}], ns="other"),))
    assert resolve(snap, f"h.{D}", "A").rcode == NXDOMAIN


def test_explicit_namespace_list_is_authoritative(snapshot):
    from dataclasses import replace
    dns = ClusterDNS(replace(snapshot, namespaces=frozenset({"default"})))
    assert dns.answer("kube-dns.kube-system.svc.cluster.local", "A").rcode == NXDOMAIN
    assert dns.answer(f"web.{D}", "A").data() == ["10.96.0.20"]


def test_record_str_reads_like_a_zone_file(dns):
    ans = dns.answer(f"_http._tcp.web.{D}", "SRV")
    assert str(ans.answers[0]) == f"_http._tcp.web.{D} 5 IN SRV 0 100 80 web.{D}"
