from __future__ import annotations

import struct

from scapy.all import rdpcap
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from netsim.trace.observe.pcap import LINKTYPE_RAW, PCAP_MAGIC_NS, pcap_bytes, write_pcap


def test_header_and_records():
    data = pcap_bytes([(1_700_000_000_123_456_789, b"\x01\x02\x03")], snaplen=2)
    magic, major, minor, zone, sigfigs, snaplen, link = struct.unpack_from("=IHHiIII", data)
    assert (magic, major, minor, zone, sigfigs, snaplen, link) == (PCAP_MAGIC_NS, 2, 4, 0, 0, 2, 1)
    sec, nsec, incl, orig = struct.unpack_from("=IIII", data, 24)
    assert (sec, nsec, incl, orig) == (1_700_000_000, 123_456_789, 2, 3)
    assert data[40:] == b"\x01\x02"


def test_scapy_reads_back_frames_and_nanosecond_times(tmp_path):
    frames = [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", id=i) / TCP(sport=1000 + i, dport=80))
              for i in range(3)]
    path = tmp_path / "trace.pcap"
    write_pcap(path, [(1_700_000_000_000_000_001 + i * 1000, f) for i, f in enumerate(frames)])
    pkts = rdpcap(str(path))
    assert [bytes(p) for p in pkts] == frames
    assert pkts[1][IP].id == 1 and pkts[2][TCP].sport == 1002
    assert [int(p.time * 10**9) % 10**6 for p in pkts] == [1, 1001, 2001]


def test_raw_ip_linktype_into_open_file(tmp_path):
    pkt = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP())
    path = tmp_path / "raw.pcap"
    with open(path, "wb") as f:
        write_pcap(f, [(0, pkt)], linktype=LINKTYPE_RAW)
    [p] = rdpcap(str(path))
    assert p[IP].dst == "10.0.0.2"
