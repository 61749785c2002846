"""A pcap file writer (the classic libpcap format, nanosecond variant) for captured trace packets.

Format (https://www.tcpdump.org/manpages/pcap-savefile.5.txt; IETF draft-ietf-opsawg-pcap): a 24-byte
file header -- magic 0xa1b23c4d (nanosecond timestamps), version 2.4, thiszone 0, sigfigs 0, snaplen,
link type (1 = Ethernet) -- then per packet a 16-byte record header (seconds, nanoseconds, captured
length, original length) and the bytes. Written in host byte order, as libpcap does; readers detect the
order from the magic. Wireshark, tcpdump and scapy's rdpcap read it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # bare IPv4/IPv6 packets, e.g. the probe as sent
FILE_HEADER = struct.Struct("=IHHiIII")
RECORD_HEADER = struct.Struct("=IIII")


def pcap_bytes(records: Iterable[tuple[int, bytes]], *, linktype: int = LINKTYPE_ETHERNET,
               snaplen: int = 262144) -> bytes:
    """The whole file for (timestamp in ns since the epoch, frame) records."""
    parts = [FILE_HEADER.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, linktype)]
    for ts_ns, frame in records:
        data = frame[:snaplen]
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        parts.append(RECORD_HEADER.pack(sec, nsec, len(data), len(frame)))
        parts.append(data)
    return b"".join(parts)


def write_pcap(target: str | Path | BinaryIO, records: Iterable[tuple[int, bytes]], *,
               linktype: int = LINKTYPE_ETHERNET) -> None:
    """Write records to a path or an open binary file."""
    data = pcap_bytes(records, linktype=linktype)
    if isinstance(target, (str, Path)):
        Path(target).write_bytes(data)
    else:
        target.write(data)
