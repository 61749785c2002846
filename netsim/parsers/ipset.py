"""The one reader of `ipset save` text: set name -> members.

`ipset save` prints a `create NAME TYPE ...` line per set and an `add NAME MEMBER ...` line per member
(ipset(8), "save" command; the restore format `ipset restore` reads)."""

from __future__ import annotations


def parse_ipset_save(text: str) -> dict[str, list[str]]:
    """`ipset save` output -> set name -> members (every set, also the empty ones)."""
    sets: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "create":
            sets.setdefault(words[1], [])
        elif len(words) >= 3 and words[0] == "add":
            sets.setdefault(words[1], []).append(words[2])
    return sets
