"""The one netlink codec (netsim.kernel.nlcodec), shared by the kernel's rtnetlink path and trace's
nfnetlink listeners: attributes and messages round-trip, flag bits are masked, malformed input ends the
walk instead of reading past it, and memoryviews are sliced without copies."""

from __future__ import annotations

from netsim.kernel import fastnl
from netsim.kernel.nlcodec import NLA_F_NESTED, NLMSG_HDR, attrs, messages, nla, nlmsg


def test_attributes_round_trip_with_padding_and_flags_masked():
    body = nla(3, b"eth0\0") + nla(4 | NLA_F_NESTED, nla(1, b"\x01\x02")) + nla(3, b"eth1\0")
    assert len(nla(3, b"eth0\0")) == 12  # 4 + 5, padded to 12
    got = attrs(body)
    assert got[3] == b"eth1\0"  # a repeated type keeps the last
    assert attrs(got[4]) == {1: b"\x01\x02"}


def test_messages_round_trip_and_stop_at_a_truncated_one():
    data = nlmsg(16, nla(3, b"a\0"), flags=2, seq=7) + nlmsg(3, b"")
    assert [(k, f, attrs(b)) for k, f, b in messages(data)] == [(16, 2, {3: b"a\0"}), (3, 0, {})]
    assert NLMSG_HDR.unpack_from(data)[3] == 7
    assert list(messages(data[:-4])) == [(16, 2, nla(3, b"a\0"))]


def test_malformed_attributes_end_the_walk():
    good = nla(1, b"\x00\x00\x00\x01")
    assert attrs(good + b"\x08\x00\x02\x00") == {1: b"\x00\x00\x00\x01"}  # claims 8 bytes, has 4
    assert attrs(b"\x02\x00\x01\x00" + good) == {}  # a length below the header's


def test_memoryviews_are_sliced_and_regions_respected():
    data = memoryview(b"\0" * 4 + nla(1, b"xy") + nla(2, b"zz"))
    got = attrs(data, 4, 4 + 8)
    assert list(got) == [1] and isinstance(got[1], memoryview) and bytes(got[1]) == b"xy"


def test_the_kernel_fast_path_uses_the_same_codec():
    assert fastnl.attrs is attrs and fastnl.nla is nla
