"""Restores for a Service too large for one restore stage, and for many stale chains (pure).

Why: iptables-nft-restore 1.8.x is quadratic in the chain names one payload mentions (see
ProxyConfig.restore_stage_chains), and a single Service with 10,000 endpoints mentions 10,001 chains in its
KUBE-SVC-* chain alone: measured here, one restore of such a chain (its 10,000 KUBE-SEP-* chains already in
place) took 35 s, beyond the kernel layer's 30 s limit, so no node's rules could ever hold such a Service.
Whole-service stages (`render._stages`) cannot split it. kube-proxy itself writes every sync in one
`iptables-restore` (pkg/proxy/iptables/proxier.go syncProxyRules: one `iptables.RestoreAll` of the
filter and nat buffers) and never splits a restore; netsim does, leaving the kernel with exactly the rules
of that one restore, and keeps every intermediate state serving:

1. the Service's KUBE-SEP-* chains in chunks of at most `limit` chains (each chunk atomic). On a partial
   sync the endpoint chains whose rules did not change are left out (their name is a hash of the endpoint,
   their rules follow from it; upstream rewrites them, with the same result);
2. its dispatch chains (KUBE-SVC/SVL/EXT/FW, the order in which they jump to each other reversed). A chain
   with at most `limit` rules is rewritten atomically (`:CHAIN` + rules). A longer one that already exists
   is rewritten in place by position: rules past its old length appended first (unreachable behind the
   old chain's last rule, which is always an unconditional jump), then positions 1..n replaced with `-R`
   in chunks, then surplus positions deleted with `-D CHAIN n+1`. Every intermediate chain jumps only to
   chains that exist and ends in an unconditional jump, so each new connection still reaches an endpoint
   (with a briefly uneven spread) while the chain is rewritten. A long chain that does not exist yet is
   declared and filled by appends: nothing jumps to it before the top-level stage.
3. stale chains, when there are more than `limit` of them, are deleted after the top-level stage in chunks
   (`:CHAIN` flush + `-X`), the chains that jump first (FW, EXT, SVC/SVL, then SEP), so each chunk
   deletes only chains nothing else still references.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from netsim.proxy import chains as C


def _rule_chain(line: str) -> str:
    end = line.find(" ", 3)
    return line[3:end] if end > 0 else line[3:]


def by_chain(names: Sequence[str], rules: Sequence[str]) -> dict[str, list[str]]:
    """The rules of each of `names`, in write order (rules of other chains are ignored)."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for r in rules:
        lst = out.get(_rule_chain(r))
        if lst is not None:
            lst.append(r)
    return out


# Which dispatch chain jumps to which: FW -> EXT -> SVC/SVL -> SEP. Written callee first.
_WRITE_RANK = {C.SVC_PREFIX: 0, C.SVL_PREFIX: 0, C.EXT_PREFIX: 1, C.FW_PREFIX: 2}
# Deleted caller first.
_DELETE_RANK = {C.FW_PREFIX: 0, C.EXT_PREFIX: 1, C.SVC_PREFIX: 2, C.SVL_PREFIX: 2, C.SEP_PREFIX: 3}


def _rank(name: str, ranks: Mapping[str, int], default: int) -> int:
    for prefix, r in ranks.items():
        if name.startswith(prefix):
            return r
    return default


def _nat(lines: Sequence[str]) -> str:
    return "\n".join(["*nat", *lines, "COMMIT"]) + "\n"


def service_stages(names: Sequence[str], rules: Sequence[str], limit: int, *,
                   old_rules: Mapping[str, Sequence[str]] | None,
                   old_count: Callable[[str], int]) -> list[str]:
    """The restores that rewrite one Service's chains (`names`, `rules`: its ports' chains and rules in
    render order) in pieces of at most `limit` chain names each.

    `old_rules`: the Service's chains as the previous successful sync left them (partial syncs only), so
    unchanged endpoint chains are skipped; None rewrites them all. `old_count(chain)`: how many rules the
    chain holds in the kernel now (0 when absent or unknown, which declares it afresh)."""
    per = by_chain(names, rules)
    out: list[str] = []
    seps = [n for n in names if n.startswith(C.SEP_PREFIX)]
    if old_rules is not None:
        seps = [n for n in seps if list(old_rules.get(n, ())) != per[n]]
    for i in range(0, len(seps), limit):
        chunk = seps[i:i + limit]
        out.append(_nat([*(f":{c} - [0:0]" for c in chunk), *(r for c in chunk for r in per[c])]))
    small: list[str] = []  # dispatch chains rewritten atomically, batched into one restore
    dispatch = sorted((n for n in names if not n.startswith(C.SEP_PREFIX)), key=lambda n: _rank(n, _WRITE_RANK, 3))
    for name in dispatch:
        new = per[name]
        if len(new) <= limit:
            if len(small) + len(new) > limit and small:
                out.append(_nat(small))
                small = []
            small += [f":{name} - [0:0]", *new]
            continue
        if small:
            out.append(_nat(small))
            small = []
        out.extend(_long_chain(name, new, old_count(name), limit))
    if small:
        out.append(_nat(small))
    return out


def _long_chain(name: str, new: Sequence[str], old: int, limit: int) -> list[str]:
    """Stages that turn a chain of `old` rules into `new` (more than `limit` rules) in place."""
    out: list[str] = []
    if old <= 0:
        for i in range(0, len(new), limit):
            out.append(_nat(([f":{name} - [0:0]"] if i == 0 else []) + list(new[i:i + limit])))
        return out
    tail = new[old:]
    for i in range(0, len(tail), limit):
        out.append(_nat(tail[i:i + limit]))
    keep = min(old, len(new))
    for i in range(0, keep, limit):
        out.append(_nat([f"-R {name} {j + 1} {new[j].split(' ', 2)[2]}" for j in range(i, min(keep, i + limit))]))
    if old > len(new):
        # Deleting by position names only this chain, so one restore takes them all.
        out.append(_nat([f"-D {name} {len(new) + 1}"] * (old - len(new))))
    return out


def stale_stages(stale: Sequence[str], limit: int) -> list[str]:
    """Restores that delete `stale` chains in chunks of at most `limit`, callers before callees."""
    order = sorted(stale, key=lambda n: (_rank(n, _DELETE_RANK, 4), n))
    return [_nat([*(f":{c} - [0:0]" for c in order[i:i + limit]), *(f"-X {c}" for c in order[i:i + limit])])
            for i in range(0, len(order), limit)]
