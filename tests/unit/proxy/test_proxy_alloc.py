"""ClusterIP, NodePort and LoadBalancer IP allocation: lowest free, requests honoured or rejected."""

from __future__ import annotations

import pytest

from netsim.model.errors import Source, SpecError
from netsim.proxy.alloc import ClusterIPAllocator, LoadBalancerIPAllocator, NodePortAllocator


def test_cluster_ip_lowest_free_skips_network_and_dns() -> None:
    a = ClusterIPAllocator("10.96.0.0/28")
    got = [a.allocate(owner=f"Service default/s{i}") for i in range(10)]
    assert got[0] == "10.96.0.1"
    assert "10.96.0.10" not in got and "10.96.0.0" not in got
    assert got[-1] == "10.96.0.11"
    # The reserved DNS address is handed out when asked for.
    assert a.allocate("10.96.0.10", owner="Service kube-system/kube-dns") == "10.96.0.10"
    assert a.dns_ip == "10.96.0.10"


def test_cluster_ip_never_broadcast_and_exhaustion_is_a_spec_error() -> None:
    a = ClusterIPAllocator("10.96.0.0/29", dns_offset=None)
    got = [a.allocate(owner=f"o{i}") for i in range(6)]
    assert got == [f"10.96.0.{i}" for i in range(1, 7)]
    with pytest.raises(SpecError, match="no ClusterIP left"):
        a.allocate(owner="o7")
    with pytest.raises(SpecError, match="not in the valid range"):
        ClusterIPAllocator("10.96.0.0/29").allocate("10.96.0.7", owner="x")


def test_cluster_ip_requested_taken_or_out_of_range() -> None:
    a = ClusterIPAllocator()
    assert a.allocate("10.96.5.5", owner="Service default/a") == "10.96.5.5"
    assert a.allocate("10.96.5.5", owner="Service default/a") == "10.96.5.5"  # re-apply is fine
    src = Source("web.yaml", 0)
    with pytest.raises(SpecError) as e:
        a.allocate("10.96.5.5", owner="Service default/b", source=src, obj="Service default/b")
    assert "already allocated" in str(e.value) and e.value.field == "spec.clusterIP"
    assert "web.yaml (document 1)" in str(e.value) and "Service default/b" in str(e.value)
    with pytest.raises(SpecError, match="not in the valid range"):
        a.allocate("192.168.1.1", owner="Service default/c")
    with pytest.raises(SpecError, match="not a valid IP"):
        a.allocate("nope", owner="Service default/c")


def test_cluster_ip_release_and_same_owner() -> None:
    a = ClusterIPAllocator("10.96.0.0/24")
    ip = a.allocate(owner="Service default/a")
    assert a.allocate(owner="Service default/a") == ip
    assert a.release_owner("Service default/a") == [ip]
    assert a.allocate(owner="Service default/b") == ip


def test_node_ports() -> None:
    p = NodePortAllocator()
    assert p.allocate(owner="Service default/a") == 30000
    assert p.allocate(owner="Service default/a") == 30001  # a second port of the same service
    assert p.allocate(31000, owner="Service default/b") == 31000
    with pytest.raises(SpecError, match="already allocated") as e:
        p.allocate(31000, owner="Service default/c", field="spec.ports[1].nodePort")
    assert e.value.field == "spec.ports[1].nodePort"
    with pytest.raises(SpecError, match="30000-32767"):
        p.allocate(8080, owner="Service default/c")
    # Health check node ports share the range.
    assert p.allocate(owner="Service default/b healthCheckNodePort") == 30002
    p.release(30000)
    assert p.allocate(owner="Service default/d") == 30000


def test_node_port_exhaustion() -> None:
    p = NodePortAllocator(30000, 30001)
    p.allocate(owner="a")
    p.allocate(owner="b")
    with pytest.raises(SpecError, match="no port left"):
        p.allocate(owner="c")


def test_load_balancer_pool() -> None:
    lb = LoadBalancerIPAllocator(["203.0.113.200-203.0.113.201", "198.51.100.0/31"])
    assert lb.allocate(owner="Service default/a") == "198.51.100.0"  # lowest address across pools
    assert lb.allocate("203.0.113.201", owner="Service default/b") == "203.0.113.201"
    with pytest.raises(SpecError, match="not in any LoadBalancer pool"):
        lb.allocate("10.0.0.1", owner="Service default/c")
    with pytest.raises(SpecError, match="already allocated"):
        lb.allocate("203.0.113.201", owner="Service default/c")
    assert lb.allocate(owner="Service default/c") == "198.51.100.1"
    assert lb.allocate(owner="Service default/d") == "203.0.113.200"
    with pytest.raises(SpecError, match="no LoadBalancer IP left"):
        lb.allocate(owner="Service default/e")


def test_thousands_of_cluster_ips_cost_a_linear_number_of_candidate_checks(monkeypatch) -> None:
    """Admission of 10,000 Services in one apply: each allocation resumes where the last one stopped and
    finds an owner's value by index (a scan from the first address each time took minutes)."""
    import ipaddress

    from netsim.proxy import alloc
    made = 0
    real = ipaddress.ip_address

    def counting(v):
        nonlocal made
        made += 1
        return real(v)
    monkeypatch.setattr(alloc.ipaddress, "ip_address", counting)
    a = ClusterIPAllocator("10.96.0.0/12")
    ips = [a.allocate(owner=f"Service default/s{i}") for i in range(3_000)]
    assert len(set(ips)) == 3_000 and "10.96.0.10" not in ips and ips[0] == "10.96.0.1"
    assert made < 2 * 3_000
    assert a.allocate(owner="Service default/s2000") == ips[2000]  # its own value back, by index
    a.release(ips[20])
    a.release_owner("Service default/s30")
    assert a.allocate(owner="new-1") == ips[20] and a.allocate(owner="new-2") == ips[30]  # lowest free again
    assert a.allocate(owner="new-3") == "10.96.11.186"  # then on after the last one handed out


def test_node_ports_resume_after_the_last_and_reuse_released() -> None:
    a = NodePortAllocator(30000, 30010)
    assert [a.allocate(owner=f"s{i}") for i in range(3)] == [30000, 30001, 30002]
    a.allocate(30004, owner="x")
    assert a.allocate(owner="s3") == 30003 and a.allocate(owner="s4") == 30005
    a.release(30001)
    assert a.allocate(owner="s5") == 30001 and a.allocate(owner="s6") == 30006
