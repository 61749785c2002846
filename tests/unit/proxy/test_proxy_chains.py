"""Chain-name hashing and probability formatting against values hard-coded in upstream tests
(kubernetes pkg/proxy/iptables/proxier_test.go TestTracePacket / TestOverallIPTablesRules)."""

from __future__ import annotations

import pytest

from netsim.proxy import chains as C
from netsim.proxy.model import Endpoint, ServicePort
from netsim.proxy.render import probability


@pytest.mark.parametrize(("port_name", "expected"), [
    ("ns1/svc1:p80", "KUBE-SVC-XPGD46QRK7WJZT7O"),
    ("ns2/svc2:p80", "KUBE-SVC-GNZBNJ2PO5MGZ6GT"),
    ("ns3/svc3:p80", "KUBE-SVC-X27LE4BHSL4DOUIK"),
    ("ns4/svc4:p80", "KUBE-SVC-4SW47YFZTEDKD3PK"),
    ("ns5/svc5:p80", "KUBE-SVC-NUKIZ6OKUXPJNT4C"),
])
def test_service_chain_names(port_name: str, expected: str) -> None:
    assert C.svc_chain(port_name, "tcp") == expected
    suffix = expected.removeprefix("KUBE-SVC-")
    assert C.svl_chain(port_name, "TCP") == "KUBE-SVL-" + suffix
    assert C.ext_chain(port_name, "tcp") == "KUBE-EXT-" + suffix
    assert C.fw_chain(port_name, "tcp") == "KUBE-FW-" + suffix


@pytest.mark.parametrize(("port_name", "endpoint", "expected"), [
    ("ns1/svc1:p80", "10.0.1.1:80", "KUBE-SEP-SNQ3ZNILQDEJNDQO"),
    ("ns1/svc1:p80", "10.180.0.1:80", "KUBE-SEP-SXIVWICOYRO3J4NJ"),
    ("ns4/svc4:p80", "10.180.0.4:80", "KUBE-SEP-UKSFD7AGPMPPLUHC"),
    ("ns4/svc4:p80", "10.180.0.5:80", "KUBE-SEP-C6EBXVWJJZMIWKLZ"),
    ("ns5/svc5:p80", "10.180.0.3:80", "KUBE-SEP-I77PXRDZVX7PMWMN"),
])
def test_endpoint_chain_names(port_name: str, endpoint: str, expected: str) -> None:
    assert C.sep_chain(port_name, "tcp", endpoint) == expected


def test_service_chains_object_uses_port_name_string_and_protocol() -> None:
    sp = ServicePort("ns1", "svc1", "p80", "TCP", "172.30.0.41", 80)
    names = C.ServiceChains(sp)
    assert names.svc == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert names.sep(Endpoint("10.180.0.1", 80)) == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    # The protocol is part of the hash: the UDP twin gets another chain.
    udp = C.ServiceChains(ServicePort("ns1", "svc1", "p80", "UDP", "172.30.0.41", 80))
    assert udp.svc != names.svc
    # An unnamed port hashes "ns/name" without the colon.
    assert ServicePort("ns1", "svc1").port_name_string == "ns1/svc1"
    assert len(names.svc) <= 28 and len(names.sep(Endpoint("10.180.0.1", 80))) <= 28


def test_ipv6_endpoint_string_is_bracketed() -> None:
    assert str(Endpoint("fd00::1", 80)) == "[fd00::1]:80"


def test_service_chain_prefixes() -> None:
    assert C.is_service_chain("KUBE-SEP-SXIVWICOYRO3J4NJ")
    assert C.is_service_chain("KUBE-FW-NUKIZ6OKUXPJNT4C")
    assert not C.is_service_chain("KUBE-SERVICES")
    assert not C.is_service_chain("FLANNEL-FWD")


@pytest.mark.parametrize(("n", "expected"), [
    (2, "0.5000000000"), (3, "0.3333333333"), (4, "0.2500000000"), (10, "0.1000000000"),
    (100001, "0.0000099999"),
])
def test_probability_format(n: int, expected: str) -> None:
    assert probability(n) == expected
