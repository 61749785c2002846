"""The one reader of `iptables-save` text (and of the `iptables-restore` payloads that share its format).

Layout (iptables/iptables-save.c, iptables-restore.c): `*TABLE` opens a table, `:CHAIN POLICY [packets:bytes]`
declares a chain (policy `-` for user chains), `-A CHAIN SPEC` appends a rule (a restore payload may also
say -I, -D, -R, -N, -X, -F, -Z, -P), `COMMIT` closes the table; `#` starts a comment. This module only
splits the text into those lines, keeping each rule's specification as the tool printed it (quoting
included): kube-proxy's ruleset replay (`netsim.proxy.iptables_text.Ruleset`, which tokenises specs and
applies restore semantics), felix's reading of the filter table it owns, and trace's listing of a node's
rules are all built on `read_lines`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

TABLE, CHAIN, RULE, COMMIT = "table", "chain", "rule", "commit"


class SaveLine(NamedTuple):
    """One meaningful line. `table` is the table the line belongs to (for a TABLE line, the one it opens;
    None outside any table); `chain` the chain a CHAIN line declares or a RULE line names after its
    command; `op` a RULE line's command (`-A`, `-I`, ...); `rest` what follows: a CHAIN line's policy and
    counters, a RULE line's specification."""

    no: int
    kind: str
    table: str | None
    chain: str | None
    op: str | None
    rest: str
    text: str


def read_lines(text: str) -> Iterator[SaveLine]:
    """Every table, chain, rule and COMMIT line of `text`, in order, with 1-based line numbers. Blank and
    comment lines are skipped; any other line (which iptables-restore would refuse) comes as a RULE with
    `op` None, for the caller to judge."""
    new = tuple.__new__  # SaveLine without its Python-level __new__: a 10k-service dump has 200k lines
    table: str | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        first = line[0]
        if first == "-":
            parts = line.split(" ", 2)
            n = len(parts)
            yield new(SaveLine, (no, RULE, table, parts[1] if n > 1 else None, parts[0], parts[2] if n > 2 else "",
                                 line))
        elif first == ":":
            bits = line[1:].split(None, 1)
            yield new(SaveLine, (no, CHAIN, table, bits[0] if bits else "", None, bits[1] if len(bits) > 1 else "",
                                 line))
        elif first == "*":
            table = line[1:].strip()
            yield new(SaveLine, (no, TABLE, table, None, None, "", line))
        elif first == "#":
            continue
        elif line == "COMMIT":
            yield new(SaveLine, (no, COMMIT, table, None, None, "", line))
            table = None
        else:
            yield new(SaveLine, (no, RULE, table, None, None, line, line))


def rules_by_chain(text: str) -> dict[tuple[str, str], list[str]]:
    """{(table, chain): [rule specification after `-A CHAIN`, in order]}, every declared chain present
    (empty ones too), from `iptables-save` output."""
    out: dict[tuple[str, str], list[str]] = {}
    for ln in read_lines(text):
        if ln.table is None or ln.chain is None:
            continue
        if ln.kind == CHAIN:
            out.setdefault((ln.table, ln.chain), [])
        elif ln.kind == RULE and ln.op == "-A":
            out.setdefault((ln.table, ln.chain), []).append(ln.rest)
    return out


def declared_chains(text: str, table: str) -> list[str]:
    """The chains `table` declares, in order, without splitting any rule: a fast path for kube-proxy's
    sync, whose nat dump at 10k services holds 170k rules (iptables-save declares every chain of a table
    before its rules)."""
    out: list[str] = []
    current = None
    for line in text.splitlines():
        first = line[:1]
        if first == "*":
            current = line[1:].strip()
        elif first == ":" and current == table:
            bits = line[1:].split(None, 1)
            if bits:
                out.append(bits[0])
    return out
