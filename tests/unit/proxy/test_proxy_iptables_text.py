"""The restore-text model follows iptables-restore --noflush semantics."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netsim.proxy.iptables_text import IptablesParseError, Ruleset


def test_chain_line_flushes_user_chain_but_not_builtin() -> None:
    rs = Ruleset.from_text("*nat\n:X - [0:0]\n-A X -j RETURN\n-A PREROUTING -j X\nCOMMIT\n")
    rs.apply("*nat\n:X - [0:0]\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert rs.chain("nat", "X").rules == []
    assert rs.chain("nat", "PREROUTING").rules == [["-j", "X"]]


def test_failed_table_is_not_committed() -> None:
    rs = Ruleset.from_text("*nat\n:X - [0:0]\n-A X -j RETURN\nCOMMIT\n")
    with pytest.raises(IptablesParseError, match="line 3"):
        rs.apply("*nat\n:X - [0:0]\n-A Y -j RETURN\nCOMMIT\n")
    assert rs.chain("nat", "X").rules == [["-j", "RETURN"]]


def test_delete_chain_rules() -> None:
    rs = Ruleset.from_text("*nat\n:X - [0:0]\n:Y - [0:0]\n-A Y -j X\nCOMMIT\n")
    with pytest.raises(IptablesParseError, match="referenced"):
        rs.apply("*nat\n-X X\nCOMMIT\n")
    rs.apply("*nat\n:Y - [0:0]\n:X - [0:0]\n-X X\nCOMMIT\n")
    assert "X" not in rs.chain_names("nat")
    with pytest.raises(IptablesParseError, match="matching rule"):
        rs.apply("*nat\n-D PREROUTING -j Y\nCOMMIT\n")


def test_insert_positions_and_quoted_comments() -> None:
    rs = Ruleset.from_text('*filter\n:K - [0:0]\n-A INPUT -j ACCEPT\n-I INPUT 1 -m comment --comment "a b" -j K\n'
                           "COMMIT\n")
    assert rs.chain("filter", "INPUT").rules[0] == ["-m", "comment", "--comment", "a b", "-j", "K"]
    assert '-A INPUT -m comment --comment "a b" -j K' in rs.to_save()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab -"\t\\\'/:', max_size=24))
def test_split_rule_tokenises_as_shlex_does(line):
    """The fast paths of split_rule (no quotes; double quotes only) give shlex's tokens or shlex's error."""
    import shlex

    from netsim.proxy.iptables_text import split_rule
    try:
        expected = shlex.split(line, posix=True)
    except ValueError:
        with pytest.raises(ValueError):
            split_rule(line)
        return
    assert split_rule(line) == expected
