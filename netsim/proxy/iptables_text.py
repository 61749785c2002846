"""Parsing of iptables-restore / iptables-save text into tables, chains and rules.

The lines come from the one iptables-save reader, `netsim.parsers.iptables_save`; this module tokenises
rule specifications and gives them iptables-restore's meaning.

Both the renderer (to find which jump rules and chains already exist in a netns, from `iptables-save`)
and the interpreter (to walk the rules) need it. `Ruleset.apply` follows `iptables-restore --noflush`
semantics, so several payloads (a full sync, then partial syncs) can be replayed to the state the kernel
would hold:

- `*table` ... `COMMIT` delimit a table;
- `:CHAIN POLICY [p:b]` creates a user chain or flushes it if it exists (built-in chains only get their
  policy set, never flushed);
- `-A CHAIN ...` appends, `-I CHAIN [N] ...` inserts (default position 1), `-D CHAIN ...` deletes the
  first rule with the same specification, `-D CHAIN N` by number, `-X CHAIN` deletes a user chain,
  `-F CHAIN` flushes, `-N CHAIN` creates.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from netsim.parsers.iptables_save import CHAIN, COMMIT, TABLE, read_lines

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


class IptablesParseError(ValueError):
    """A payload line the parser (or iptables-restore) would refuse; carries the 1-based line number."""

    def __init__(self, message: str, line_no: int):
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no


@dataclass
class Chain:
    name: str
    builtin: bool
    policy: str = "-"
    rules: list[list[str]] = field(default_factory=list)  # each rule: argument tokens after the chain name


@dataclass
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in BUILTIN_CHAINS.get(self.name, ()):
            self.chains.setdefault(c, Chain(c, builtin=True, policy="ACCEPT"))


def split_rule(line: str) -> list[str]:
    """Tokenise a rule line the way iptables-restore does (double quotes group words). Most lines have no
    quote or escape at all: those are split on whitespace, as shlex would, at a twentieth of its cost
    (a trace reads a node's whole ruleset)."""
    if "'" in line or "\\" in line or line.count('"') % 2:
        return shlex.split(line, posix=True)  # escapes, single quotes, or shlex's own error
    if '"' not in line:
        return line.split()
    return [t.replace('"', "") for t in _WORD.findall(line)]


# A word of a line without escapes: unquoted characters and "double-quoted groups", glued together.
_WORD = re.compile(r'(?:[^\s"]+|"[^"]*")+')


def format_args(args: list[str]) -> str:
    """Join rule tokens, quoting the ones with spaces like iptables-save does."""
    return " ".join(f'"{a}"' if (" " in a or a == "") else a for a in args)


def spec_key(args: list[str]) -> tuple[str, ...]:
    """Canonical form of a rule specification for -D matching and duplicate detection."""
    return tuple(args)


class Ruleset:
    """Tables of chains of rules; built by replaying restore payloads."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    @classmethod
    def from_text(cls, *texts: str) -> Ruleset:
        rs = cls()
        for t in texts:
            rs.apply(t)
        return rs

    def table(self, name: str) -> Table:
        if name not in self.tables:
            self.tables[name] = Table(name)
        return self.tables[name]

    def chain(self, table: str, chain: str) -> Chain | None:
        t = self.tables.get(table)
        return t.chains.get(chain) if t else None

    def chain_names(self, table: str) -> set[str]:
        t = self.tables.get(table)
        return set(t.chains) if t else set()

    def apply(self, text: str) -> None:
        """Apply one payload with --noflush semantics. Each table's changes are staged and committed at
        COMMIT, so a failing line leaves that table untouched (as iptables-restore's per-table commit)."""
        staged: Table | None = None
        for ln in read_lines(text):
            no = ln.no
            if ln.kind == TABLE:
                if staged is not None:
                    raise IptablesParseError("table started before COMMIT", no)
                staged = _copy_table(self.table(ln.table or ""))
                continue
            if staged is None:
                raise IptablesParseError(f"line outside a table: {ln.text!r}", no)
            if ln.kind == COMMIT:
                self.tables[staged.name] = staged
                staged = None
                continue
            if ln.kind == CHAIN:
                name = ln.chain or ""
                policy = ln.rest.split()[0] if ln.rest else "-"
                ch = staged.chains.get(name)
                if ch is None:
                    staged.chains[name] = Chain(name, builtin=False)
                elif ch.builtin:
                    if policy != "-":
                        ch.policy = policy
                else:
                    ch.rules.clear()
                continue
            _apply_command(staged, split_rule(ln.text), no)
        if staged is not None:
            raise IptablesParseError("missing COMMIT", len(text.splitlines()))

    def to_save(self) -> str:
        """Render the current state in iptables-save layout (for debugging and tests)."""
        out: list[str] = []
        for tname in sorted(self.tables):
            t = self.tables[tname]
            out.append(f"*{tname}")
            for c in t.chains.values():
                out.append(f":{c.name} {c.policy if c.builtin else '-'} [0:0]")
            for c in t.chains.values():
                for r in c.rules:
                    out.append(f"-A {c.name} {format_args(r)}".rstrip())
            out.append("COMMIT")
        return "\n".join(out) + "\n"


def _copy_table(t: Table) -> Table:
    nt = Table(t.name)
    nt.chains = {n: Chain(c.name, c.builtin, c.policy, [list(r) for r in c.rules]) for n, c in t.chains.items()}
    return nt


def _need_chain(t: Table, name: str, no: int) -> Chain:
    ch = t.chains.get(name)
    if ch is None:
        raise IptablesParseError(f"chain {name!r} does not exist in table {t.name}", no)
    return ch


def _check_target(t: Table, args: list[str], no: int) -> None:
    for i, a in enumerate(args[:-1]):
        if a in ("-j", "--jump", "-g", "--goto"):
            target = args[i + 1]
            if target.isupper() and "-" not in target:
                return  # a standard/extension target such as ACCEPT, DNAT, MARK
            if target not in t.chains:
                raise IptablesParseError(f"jump to unknown chain {target!r}", no)


def _apply_command(t: Table, tok: list[str], no: int) -> None:
    if not tok:
        return
    cmd = tok[0]
    if cmd in ("-A", "--append"):
        ch = _need_chain(t, tok[1], no)
        _check_target(t, tok[2:], no)
        ch.rules.append(tok[2:])
    elif cmd in ("-I", "--insert"):
        ch = _need_chain(t, tok[1], no)
        rest = tok[2:]
        pos = 1
        if rest and rest[0].isdigit():
            pos = int(rest[0])
            rest = rest[1:]
        if pos < 1 or pos > len(ch.rules) + 1:
            raise IptablesParseError(f"index of insertion {pos} too big", no)
        _check_target(t, rest, no)
        ch.rules.insert(pos - 1, rest)
    elif cmd in ("-D", "--delete"):
        ch = _need_chain(t, tok[1], no)
        rest = tok[2:]
        if len(rest) == 1 and rest[0].isdigit():
            idx = int(rest[0]) - 1
            if not 0 <= idx < len(ch.rules):
                raise IptablesParseError("index of deletion too big", no)
            del ch.rules[idx]
            return
        key = spec_key(rest)
        for i, r in enumerate(ch.rules):
            if spec_key(r) == key:
                del ch.rules[i]
                return
        raise IptablesParseError("bad rule (does a matching rule exist in that chain?)", no)
    elif cmd in ("-R", "--replace"):
        ch = _need_chain(t, tok[1], no)
        if len(tok) < 3 or not tok[2].isdigit():
            raise IptablesParseError("-R needs a rule number", no)
        idx = int(tok[2]) - 1
        if not 0 <= idx < len(ch.rules):
            raise IptablesParseError("index of replacement too big", no)
        _check_target(t, tok[3:], no)
        ch.rules[idx] = tok[3:]
    elif cmd in ("-X", "--delete-chain"):
        ch = _need_chain(t, tok[1], no)
        if ch.builtin:
            raise IptablesParseError(f"cannot delete built-in chain {ch.name}", no)
        if ch.rules:
            raise IptablesParseError(f"chain {ch.name} is not empty", no)
        for other in t.chains.values():
            for r in other.rules:
                if _rule_target(r) == ch.name:
                    raise IptablesParseError(f"chain {ch.name} is still referenced from {other.name}", no)
        del t.chains[ch.name]
    elif cmd in ("-F", "--flush"):
        _need_chain(t, tok[1], no).rules.clear()
    elif cmd in ("-N", "--new-chain"):
        if tok[1] in t.chains:
            raise IptablesParseError(f"chain {tok[1]} already exists", no)
        t.chains[tok[1]] = Chain(tok[1], builtin=False)
    else:
        raise IptablesParseError(f"unknown command {cmd!r}", no)


def _rule_target(args: list[str]) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in ("-j", "--jump", "-g", "--goto"):
            return args[i + 1]
    return None


def rule_target(args: list[str]) -> str | None:
    """The -j/-g target of a rule, or None for a rule without one."""
    return _rule_target(args)


def rule_comment(args: list[str]) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a == "--comment":
            return args[i + 1]
    return None
