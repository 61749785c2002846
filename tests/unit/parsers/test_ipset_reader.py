"""The one `ipset save` reader (netsim.parsers.ipset): every set, also the empty ones, with its members; the
cluster view's node reader is the one place that runs `ipset save` and reads it."""

from __future__ import annotations

from pathlib import Path

from netsim.parsers.ipset import parse_ipset_save

ROOT = Path(__file__).resolve().parents[3]
SAVE = """create cali40all-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12
add cali40all-ipam-pools 10.244.0.0/16
create cali40masq-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12
create KUBE-X hash:ip,port family inet
add KUBE-X 10.96.0.1,tcp:443 timeout 0
"""


def test_sets_and_members():
    assert parse_ipset_save(SAVE) == {"cali40all-ipam-pools": ["10.244.0.0/16"], "cali40masq-ipam-pools": [],
                                      "KUBE-X": ["10.96.0.1,tcp:443"]}
    assert parse_ipset_save("") == {}


def test_one_place_reads_ipset_save():
    readers = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "netsim").rglob("*.py"))
               if '"ipset", "save"' in p.read_text()]
    assert readers == ["netsim/trace/observe/facts.py"]
    assert "parse_ipset_save" in (ROOT / "netsim/trace/observe/facts.py").read_text()
