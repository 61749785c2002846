"""The hand-packed netlink messages of netsim.kernel.fastnl, checked against pyroute2's independent codec."""

from __future__ import annotations

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netsim.kernel import fastnl
from netsim.kernel.nlcodec import NLA_HDR


def _decode(body: bytes, typ: int = fastnl.RTM_NEWLINK) -> ifinfmsg:
    msg = ifinfmsg(fastnl.message(typ, fastnl.NLM_F_REQUEST, 7, body))
    msg.decode()
    return msg


def test_nla_is_padded_to_four_bytes():
    assert fastnl.nla(3, b"ab\0") == b"\x07\x00\x03\x00ab\x00\x00"
    assert len(fastnl.nla(1, b"\x01\x02\x03\x04\x05\x06")) == 12


def test_veth_body_nests_the_peer_as_the_kernel_expects():
    body = fastnl.veth_body("vethA", "eth0", peer_ns_fd=42, mtu=1450, mac="02:00:00:00:00:01",
                            peer_mac="02:00:00:00:00:02", master=9, up=True)
    msg = _decode(body)
    assert (msg["flags"], msg["change"]) == (fastnl.IFF_UP, fastnl.IFF_UP)
    assert msg.get("IFLA_IFNAME") == "vethA" and msg.get("IFLA_MTU") == 1450
    assert msg.get("IFLA_ADDRESS") == "02:00:00:00:00:01" and msg.get("IFLA_MASTER") == 9
    info = msg.get("IFLA_LINKINFO")
    assert info.get("IFLA_INFO_KIND") == "veth"
    peer = info.get("IFLA_INFO_DATA").get("VETH_INFO_PEER")
    assert (peer["flags"], peer["change"]) == (0, 0)  # the peer cannot be created up (veth_open: ENOTCONN)
    assert peer.get("IFLA_IFNAME") == "eth0" and peer.get("IFLA_MTU") == 1450
    assert peer.get("IFLA_ADDRESS") == "02:00:00:00:00:02" and peer.get("IFLA_NET_NS_FD") == 42


def test_veth_body_minimal_is_down_and_without_optional_attributes():
    msg = _decode(fastnl.veth_body("a", "b", up=False))
    assert (msg["flags"], msg["change"]) == (0, 0)
    assert msg.get("IFLA_MASTER") is None and msg.get("IFLA_MTU") is None
    peer = msg.get("IFLA_LINKINFO").get("IFLA_INFO_DATA").get("VETH_INFO_PEER")
    assert peer.get("IFLA_NET_NS_FD") is None and peer.get("IFLA_IFNAME") == "b"


def test_brport_body_sets_hairpin_for_the_bridge_family():
    def mode(body: bytes) -> bytes:
        family, _, index, _, _ = fastnl._IFINFO.unpack_from(body)
        assert (family, index) == (fastnl.AF_BRIDGE, 5)
        length, typ = NLA_HDR.unpack_from(body, 16)
        assert typ == fastnl.IFLA_PROTINFO | fastnl.NLA_F_NESTED and 16 + length == len(body)
        protinfo = fastnl.attrs(memoryview(body), 16, len(body))[fastnl.IFLA_PROTINFO]
        return bytes(fastnl.attrs(protinfo, 0, len(protinfo))[fastnl.IFLA_BRPORT_MODE])
    assert mode(fastnl.brport_body(5, hairpin=True)) == b"\x01"
    assert mode(fastnl.brport_body(5, hairpin=False)) == b"\x00"


def test_decode_link_reads_what_pyroute2_encodes():
    m = ifinfmsg()
    m["index"], m["flags"] = 12, 1
    m["attrs"] = [("IFLA_IFNAME", "flannel.1"), ("IFLA_MTU", 1450), ("IFLA_ADDRESS", "0a:0b:0c:0d:0e:0f"),
                  ("IFLA_MASTER", 3), ("IFLA_LINK_NETNSID", 2),
                  ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": [
                      ("IFLA_VXLAN_ID", 1), ("IFLA_VXLAN_LINK", 2), ("IFLA_VXLAN_LOCAL", "172.18.0.2"),
                      ("IFLA_VXLAN_LEARNING", 0), ("IFLA_VXLAN_PORT", 8472)]})]})]
    m["header"]["type"] = fastnl.RTM_NEWLINK
    m.encode()
    d = fastnl.decode_link(bytes(m.data))
    assert (d["index"], d["flags"], d["IFLA_IFNAME"], d["IFLA_MTU"]) == (12, 1, "flannel.1", 1450)
    assert (d["IFLA_ADDRESS"], d["IFLA_MASTER"], d["IFLA_LINK_NETNSID"]) == ("0a:0b:0c:0d:0e:0f", 3, 2)
    assert d["IFLA_LINKINFO"] == {"IFLA_INFO_KIND": "vxlan", "IFLA_INFO_DATA": {
        "IFLA_VXLAN_ID": 1, "IFLA_VXLAN_LINK": 2, "IFLA_VXLAN_LOCAL": "172.18.0.2", "IFLA_VXLAN_LEARNING": 0,
        "IFLA_VXLAN_PORT": 8472}}


def test_inet_conf_attr_nests_ipv4_devconf_as_the_kernel_expects():
    """IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { IPV4_DEVCONF_ARP_NOTIFY (22): u32 1 } } }
    (rtnetlink inet_validate_link_af / inet_set_link_af); an unknown setting is refused before sending."""
    raw = fastnl.inet_conf_attr({"arp_notify": 1})
    spec = fastnl.attrs(memoryview(raw), 0, len(raw))[fastnl.IFLA_AF_SPEC]
    inet = fastnl.attrs(spec, 0, len(spec))[2]  # AF_INET
    conf = fastnl.attrs(inet, 0, len(inet))[fastnl.IFLA_INET_CONF]
    assert {k: bytes(v) for k, v in fastnl.attrs(conf, 0, len(conf)).items()} == {22: b"\x01\x00\x00\x00"}
    with pytest.raises(fastnl.KernelError):
        fastnl.inet_conf_attr({"rp_filter": 1})


def test_inet_conf_attr_carries_calicos_host_end_settings():
    """forwarding (1), proxy_arp (3), route_localnet (26): linux/ip.h IPV4_DEVCONF_* numbering."""
    raw = fastnl.inet_conf_attr({"forwarding": 1, "proxy_arp": 1, "route_localnet": 1})
    spec = fastnl.attrs(memoryview(raw), 0, len(raw))[fastnl.IFLA_AF_SPEC]
    inet = fastnl.attrs(spec, 0, len(spec))[2]
    conf = fastnl.attrs(inet, 0, len(inet))[fastnl.IFLA_INET_CONF]
    assert sorted(fastnl.attrs(conf, 0, len(conf))) == [1, 3, 26]


def test_neightbl_parms_body_names_the_arp_table_and_the_interface():
    """ndtmsg (AF_INET), NDTA_NAME "arp_cache", NDTA_PARMS { NDTPA_IFINDEX u32, NDTPA_PROXY_DELAY u64 ms }
    (linux/neighbour.h; neighbour.c neightbl_set)."""
    raw = fastnl.neightbl_parms_body(7, proxy_delay_ms=0)
    assert raw[:4] == b"\x02\x00\x00\x00"
    top = fastnl.attrs(memoryview(raw), 4, len(raw))
    assert bytes(top[fastnl.NDTA_NAME]) == b"arp_cache\0"
    parms = top[fastnl.NDTA_PARMS]
    got = {k: bytes(v) for k, v in fastnl.attrs(parms, 0, len(parms)).items()}
    assert got == {1: b"\x07\x00\x00\x00", 13: b"\x00" * 8}
