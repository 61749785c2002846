"""The workload server's socket-free parts: the identity contract, port lists, SCTP answers, failures."""

from __future__ import annotations

import json

import pytest

from netsim.kernel.fake import FakeKernel
from netsim.workload import identity, sctp
from netsim.workload.server import WorkloadServer, _normalise_ports, _SctpResponder


def _ip(src: str, dst: str, payload: bytes) -> bytes:
    octets = [int(x) for x in (src + "." + dst).split(".")]
    return bytes([0x45, 0, 0, 20 + len(payload)]) + b"\0" * 5 + bytes([132]) + b"\0\0" + bytes(octets) + payload


def test_identity_line_has_the_contract_keys_in_order_and_ends_in_newline():
    line = identity.encode(identity.identity("y/b", "n1", "10.244.2.3", 40000, 80, "TCP"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = json.loads(line)
    assert list(obj) == ["pod", "node", "clientIP", "clientPort", "port", "protocol"]
    assert obj == {"pod": "y/b", "node": "n1", "clientIP": "10.244.2.3", "clientPort": 40000, "port": 80,
                   "protocol": "TCP"}
    assert identity.decode(line) == obj
    assert not identity.encode(obj, newline=False).endswith(b"\n")


@pytest.mark.parametrize("junk", [b"", b"HTTP/1.1 200 OK\r\n", b"[1, 2]\n", b'{"pod": 3}\n', b"\xff\xfe\n"])
def test_decode_rejects_what_is_not_an_identity(junk):
    assert identity.decode(junk) is None


def test_port_lists_are_normalised_and_checked():
    assert _normalise_ports([(80, "tcp"), (80, "TCP"), (53, "UDP"), (7, "")]) == [(80, "TCP"), (53, "UDP"), (7, "TCP")]
    with pytest.raises(ValueError):
        _normalise_ports([(80, "ICMP")])
    with pytest.raises(ValueError):
        _normalise_ports([(0, "TCP")])


def _responder() -> _SctpResponder:
    return _SctpResponder(sock=None, netns="ns", ports={7777: ("y/b", "n1")})  # type: ignore[arg-type]


def test_sctp_init_to_a_served_port_gets_init_ack_with_identity_cookie():
    init = sctp.build_init(40000, 7777, 0x5EED, 1)
    reply = WorkloadServer._sctp_reply(_responder(), _ip("10.250.0.1", "10.250.0.2", init))
    assert reply is not None
    packet, to, frm = reply
    assert (to, frm) == ("10.250.0.1", "10.250.0.2")
    ack = sctp.parse(packet)
    assert ack.checksum_ok and ack.first_type == sctp.CHUNK_INIT_ACK and ack.vtag == 0x5EED
    assert (ack.src_port, ack.dst_port) == (7777, 40000)
    assert ack.init is not None and ack.init.initiate_tag != 0
    assert json.loads(ack.init.state_cookie) == identity.identity("y/b", "n1", "10.250.0.1", 40000, 7777, "SCTP")


def test_sctp_init_to_an_unserved_port_gets_abort():
    reply = WorkloadServer._sctp_reply(_responder(), _ip("10.250.0.1", "10.250.0.2", sctp.build_init(1, 9, 77, 1)))
    assert reply is not None
    abort = sctp.parse(reply[0])
    assert abort.first_type == sctp.CHUNK_ABORT and abort.vtag == 77


@pytest.mark.parametrize("payload", [
    sctp.build_abort(sctp.parse(sctp.build_init(1, 7777, 77, 1))),  # not an INIT
    sctp.build_init(1, 7777, 77, 1)[:8] + b"\0\0\0\0" + sctp.build_init(1, 7777, 77, 1)[12:],  # bad checksum
    b"\x01\x02",  # garbage
])
def test_sctp_anything_but_a_valid_init_is_ignored(payload):
    assert WorkloadServer._sctp_reply(_responder(), _ip("10.250.0.1", "10.250.0.2", payload)) is None


def test_init_with_nonzero_verification_tag_is_ignored():
    init = bytearray(sctp.build_init(1, 7777, 77, 1))
    init[4:8] = b"\0\0\0\1"
    fixed = sctp._with_checksum(bytes(init))
    assert WorkloadServer._sctp_reply(_responder(), _ip("10.250.0.1", "10.250.0.2", fixed)) is None


def test_serving_in_a_missing_namespace_reports_not_ready():
    srv = WorkloadServer(FakeKernel())
    try:
        status = srv.serve("x/a", "n1", "netsim-tnope-pod", [(80, "TCP"), (7777, "SCTP")])
        assert status == {(80, "TCP"): False, (7777, "SCTP"): False}
        assert not srv.ready("x/a") and srv.listening("x/a") == []
        assert set(srv.failures("x/a")) == {(80, "TCP"), (7777, "SCTP")}
        assert srv.unserve("x/a") and not srv.unserve("x/a")
    finally:
        srv.stop()


def test_a_listener_never_takes_the_last_descriptors_of_the_process():
    """With RLIMIT_NOFILE at 200 the reserve is 50: descriptor 149 may listen, 150 may not, and the refusal
    names the count and the limit. Run in a child with its own lowered limit."""
    import subprocess
    import sys
    code = (
        "import errno, resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from netsim.workload.server import _check_reserve\n"
        "_check_reserve(149)\n"
        "try:\n"
        "    _check_reserve(150)\n"
        "except OSError as e:\n"
        "    assert e.errno == errno.EMFILE, e\n"
        "    print(e.strerror)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "holds 151 of its 200 file descriptors" in out.stdout and "kept for the rest" in out.stdout, out
