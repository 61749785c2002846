"""Map (family, table, chain, rule handle) of a trace event back to the rule a person wrote.

Two listings are read once per namespace:
- `nft -a list ruleset` (every rule ends in `# handle N`), giving the nft text of every rule and the
  hook/type/priority/policy of base chains;
- `iptables-nft-save`, for the tables iptables-nft manages. nft 1.0.x prints an iptables `-m comment`
  match as nothing, so kube-proxy's "default/web cluster IP" or calico's "cali:..." comments are only in
  the iptables form. iptables-nft-save walks a chain's nft rules in order (iptables
  `iptables/nft.c`, nft_chain_save/nft_rule_list), so the n-th `-A CHAIN` line is the n-th nft rule of
  that chain; the two are zipped per chain, and only when their counts agree.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from netsim.kernel.api import Kernel, KernelError
from netsim.parsers.iptables_save import rules_by_chain

IPTABLES_TABLES = ("raw", "mangle", "nat", "filter", "security")
_HANDLE = re.compile(r"\s*#\s*handle\s+(\d+)\s*$")
_COUNTER = re.compile(r"counter packets \d+ bytes \d+")
_TABLE = re.compile(r"^table\s+(\S+)\s+(\S+)\s*\{")
_CHAIN = re.compile(r"^chain\s+(\S+)\s*\{")
_BASE = re.compile(r"type\s+(\S+)\s+hook\s+(\S+)(?:\s+device\s+\S+)?\s+priority\s+([^;]+);(?:\s*policy\s+(\w+);)?")


@dataclass(frozen=True)
class ChainInfo:
    family: str
    table: str
    name: str
    type: str | None = None  # base chains: filter / nat / route
    hook: str | None = None
    priority: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class RuleInfo:
    """A rule as nft prints it, and, for iptables-nft rules, as iptables-save prints it."""

    family: str
    table: str
    chain: str
    handle: int
    position: int  # 1-based, as `iptables -L --line-numbers`
    nft: str
    iptables: str | None = None
    comment: str | None = None

    @property
    def text(self) -> str:
        """The most familiar form: the iptables spec where there is one, else the nft text."""
        return self.iptables or self.nft


@dataclass
class RuleIndex:
    """Rules and chains of one namespace, keyed by (family, table, chain[, handle])."""

    rules: dict[tuple[str, str, str, int], RuleInfo] = field(default_factory=dict)
    chains: dict[tuple[str, str, str], ChainInfo] = field(default_factory=dict)

    def rule(self, family: str, table: str, chain: str, handle: int | None) -> RuleInfo | None:
        if handle is None:
            return None
        return self.rules.get((family, table, chain, handle))

    def chain(self, family: str, table: str, chain: str) -> ChainInfo | None:
        return self.chains.get((family, table, chain))


def _braces(text: str) -> int:
    """Net brace depth change of a line, ignoring braces inside double-quoted strings."""
    depth, quoted = 0, False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "{":
            depth += 1
        elif not quoted and ch == "}":
            depth -= 1
    return depth


def parse_nft_ruleset(text: str) -> RuleIndex:
    """Parse `nft -a list ruleset` output (rules without iptables forms yet)."""
    index = RuleIndex()
    family = table = chain = None
    depth = 0
    pending = ""  # a statement spread over several lines (long anonymous sets)
    positions: dict[tuple[str, str, str], int] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not pending):
            continue
        if pending:
            line = pending + " " + line
            pending = ""
        change = _braces(line)
        if depth == 0:
            m = _TABLE.match(line)
            if m:
                family, table = m.group(1), m.group(2)
            depth += change
            continue
        if depth == 1:
            m = _CHAIN.match(line)
            chain = m.group(1) if m else None  # sets, maps, flowtables are skipped
            if chain is not None:
                index.chains[(family, table, chain)] = ChainInfo(family, table, chain)
            depth += change
            continue
        if depth == 2 and chain is not None and line != "}":
            if change > 0:  # an open brace not closed on this line: a multi-line statement
                pending = line
                continue
            base = _BASE.search(line)
            if base and not _HANDLE.search(line):
                index.chains[(family, table, chain)] = ChainInfo(
                    family, table, chain, type=base.group(1), hook=base.group(2),
                    priority=base.group(3).strip(), policy=base.group(4))
                continue
            m = _HANDLE.search(line)
            if m:
                key = (family, table, chain)
                positions[key] = positions.get(key, 0) + 1
                nft = _COUNTER.sub("counter", line[: m.start()]).strip()
                nft = re.sub(r"\s{2,}", " ", nft)
                handle = int(m.group(1))
                index.rules[(family, table, chain, handle)] = RuleInfo(
                    family, table, chain, handle, positions[key], nft)
            continue
        depth += change
        if depth <= 1:
            chain = None
        if depth == 0:
            family = table = None
    return index


def parse_iptables_save(text: str) -> dict[tuple[str, str], list[str]]:
    """`iptables-save` output -> {(table, chain): [rule spec without "-A CHAIN", in order]} (the one
    iptables-save reader, netsim.parsers.iptables_save)."""
    return rules_by_chain(text)


_COMMENT = re.compile(r'--comment (?:"([^"\\]*)"|([^\s"]+))')


def rule_comment(spec: str) -> str | None:
    """The `--comment` of an iptables rule spec (all of them joined if a rule has several)."""
    if "--comment" not in spec:
        return None
    if "\\" not in spec:  # the common case, without shlex's cost (a trace reads hundreds of rules)
        found = [m.group(1) if m.group(1) is not None else m.group(2) for m in _COMMENT.finditer(spec)]
        return " ".join(found) if found else None
    try:
        words = shlex.split(spec)
    except ValueError:
        return None
    comments = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--comment"]
    return " ".join(comments) if comments else None


def merge_iptables(index: RuleIndex, saved: dict[tuple[str, str], list[str]], family: str = "ip") -> RuleIndex:
    """Attach iptables forms and comments to the rules of iptables-nft managed chains of `family`."""
    by_chain: dict[tuple[str, str], list[RuleInfo]] = {}
    for (fam, table, chain, _), info in index.rules.items():
        if fam == family:
            by_chain.setdefault((table, chain), []).append(info)
    for key, specs in saved.items():
        rules = sorted(by_chain.get(key, []), key=lambda r: r.position)
        if len(rules) != len(specs):
            continue  # listings taken at different moments, or not an iptables chain: no guessing
        for info, spec in zip(rules, specs):
            index.rules[(family, info.table, info.chain, info.handle)] = RuleInfo(
                info.family, info.table, info.chain, info.handle, info.position, info.nft,
                iptables=f"-A {info.chain} {spec}".strip(), comment=rule_comment(spec))
    return index


def load_rule_index(kernel: Kernel, ns: str) -> RuleIndex:
    """Read the ruleset of `ns` (and its iptables-nft forms when it has iptables tables)."""
    index = parse_nft_ruleset(kernel.run(ns, ["nft", "-a", "list", "ruleset"]).stdout)
    if any(fam == "ip" and table in IPTABLES_TABLES for fam, table, _ in index.chains):
        try:
            saved = kernel.run(ns, ["iptables-nft-save"]).stdout
        except KernelError:
            return index  # no iptables-nft: nft text only
        merge_iptables(index, parse_iptables_save(saved))
    return index
