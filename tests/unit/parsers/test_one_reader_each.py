"""One reader per kernel text format and one netlink codec: nothing outside them splits iptables-save
text into tables or packs netlink headers on its own, and the former readers delegate."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HOMES = {"netsim/parsers/iptables_save.py", "netsim/kernel/nlcodec.py"}
PATTERNS = {
    "an iptables-save table marker": re.compile(r"""startswith\(\(?["']\*["']"""),
    "a netlink header struct": re.compile(r"""Struct\(["']=(?:HH|IHHII|LHHLL)["']\)"""),
}


def test_no_second_reader_or_codec():
    found = []
    for path in sorted((ROOT / "netsim").rglob("*.py")) + sorted((ROOT / "cni_plugins").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in HOMES:
            continue
        text = path.read_text()
        found += [f"{rel}: {what}" for what, pat in PATTERNS.items() if pat.search(text)]
    assert found == []


def test_former_readers_delegate():
    from netsim.policy import felix
    from netsim.proxy import conntrack as proxy_ct
    from netsim.proxy import iptables_text
    from netsim.trace.observe import conntrack as trace_ct
    from netsim.trace.observe import rules
    assert "iter_entries" in proxy_ct.parse_flows.__code__.co_names
    assert trace_ct.parse_conntrack_output.__module__ == "netsim.parsers.conntrack"
    assert "rules_by_chain" in rules.parse_iptables_save.__code__.co_names
    assert "read_lines" in felix.parse_filter_save.__code__.co_names
    assert "read_lines" in iptables_text.Ruleset.apply.__code__.co_names
