"""One Service with more chains than a restore stage holds (netsim.proxy.huge), replayed as the kernel would.

Every restore must mention at most about `restore_stage_chains` chain names (iptables-nft-restore is
quadratic in them), the stages replayed in order must give exactly the rules of the single payload, and
after every stage each service chain that KUBE-SERVICES jumps to must still end in an unconditional jump to
an existing endpoint chain (new connections keep reaching an endpoint while the Service is rewritten).
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from netsim.proxy.iptables_text import Ruleset
from netsim.proxy.model import Endpoint
from netsim.proxy.render import RenderState, SyncResult, render_full, render_partial

from .scenarios import CONFIG, NODE, svc

LIMIT = 10
CFG = dataclasses.replace(CONFIG, restore_stage_chains=LIMIT, large_cluster_threshold=20)
SKIP = dataclasses.replace(CFG, skip_unchanged_top_chains=True)


def _eps(lo: int, hi: int) -> list[Endpoint]:
    return [Endpoint(f"10.244.{2 + i // 250}.{i % 250 + 1}", 8080, "node-2") for i in range(lo, hi)]


def _rules(rs: Ruleset) -> dict[str, dict[str, list[tuple[str, ...]]]]:
    return {t: {n: [tuple(r) for r in c.rules] for n, c in rs.tables[t].chains.items()} for t in ("filter", "nat")}


def _mentioned(payload: str) -> set[str]:
    return set(re.findall(r"KUBE-(?:SEP|SVC|SVL|EXT|FW)-[A-Z0-9]+", payload))


def _serving(rs: Ruleset) -> None:
    """Every KUBE-SVC chain that KUBE-SERVICES / KUBE-NODEPORTS jump to ends in an unconditional jump to an
    endpoint chain; every jump target exists."""
    nat = rs.tables["nat"].chains
    for top in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
        for r in nat[top].rules if top in nat else ():
            target = r[r.index("-j") + 1]
            chain = nat[target]  # KeyError: a jump to a missing chain
            if target.startswith("KUBE-SVC-"):
                # The cascade's end: a jump to an endpoint chain without a probability (rules after
                # it, appended while the chain grows, are not reached yet).
                ends = [r for r in chain.rules if r[-1].startswith("KUBE-SEP-") and "statistic" not in r
                        and "recent" not in r]
                assert ends, f"{target} has no unconditional jump to an endpoint"


def _apply(rs: Ruleset, res: SyncResult) -> None:
    for stage in res.restores():
        assert len(_mentioned(stage)) <= LIMIT + 2, "a restore mentions too many chains"
        rs.apply(stage)
        _serving(rs)


def _expect(services, eps) -> dict:
    return _rules(Ruleset.from_text(render_full(services, eps, NODE, dataclasses.replace(CFG, restore_stage_chains=0)).payload))


@pytest.mark.parametrize("cfg", [CFG, SKIP], ids=["rewrite-top", "skip-top"])
@pytest.mark.parametrize("sticky", [False, True], ids=["plain", "affinity"])
def test_a_service_larger_than_a_stage_is_rewritten_in_small_serving_restores(cfg, sticky) -> None:
    kw = {"session_affinity_timeout": 10800} if sticky else {}
    big = svc("big", "10.96.0.50", node_port=30050, **kw)
    small = svc("small", "10.96.0.51")
    services = [big, small]
    rs = Ruleset()
    state: RenderState | None = None
    # Fresh node, then grow, shrink below one stage (many stale chains), grow again, move every endpoint.
    for lo, hi in ((0, 35), (0, 52), (40, 46), (3, 40), (100, 131)):
        eps = {big.key: _eps(lo, hi), small.key: _eps(300, 302)}
        res = render_full(services, eps, NODE, cfg) if state is None else render_partial(state, services, eps, NODE, cfg)
        _apply(rs, res)
        assert _rules(rs) == _expect(services, eps), (lo, hi)
        state = res.state
    # A restarted agent: no previous state, the rules already in the kernel (read back with iptables-save).
    eps = {big.key: _eps(10, 44), small.key: _eps(300, 302)}
    res = render_full(services, eps, NODE, cfg, existing_save=rs.to_save())
    assert res.counts.stages > 3
    _apply(rs, res)
    assert _rules(rs) == _expect(services, eps)


def test_a_partial_sync_leaves_unchanged_endpoint_chains_alone() -> None:
    big = svc("big", "10.96.0.50")
    first = render_full([big], {big.key: _eps(0, 30)}, NODE, SKIP)
    res = render_partial(first.state, [big], {big.key: _eps(0, 31)}, NODE, SKIP)
    declared = [x for s in res.restores() for x in s.splitlines() if x.startswith(":KUBE-SEP-")]
    assert len(declared) == 1  # only the new endpoint's chain; the SVC chain is rewritten in place
    assert any(x.startswith("-R KUBE-SVC-") for s in res.restores() for x in s.splitlines())


def test_many_stale_chains_are_deleted_in_chunks_after_the_switch_over() -> None:
    big = svc("big", "10.96.0.50")
    first = render_full([big], {big.key: _eps(0, 8)}, NODE, SKIP)  # 9 chains: one stage
    assert first.counts.stages == 1
    gone = render_partial(first.state, [], {}, NODE, SKIP)
    assert gone.restores() == (gone.payload,)  # 9 stale chains: deleted in the one restore
    grown = render_full([big], {big.key: _eps(0, 40)}, NODE, SKIP)
    gone = render_partial(grown.state, [], {}, NODE, SKIP)
    assert gone.counts.stages >= 5 and all(len(_mentioned(s)) <= LIMIT for s in gone.restores())
    rs = Ruleset.from_text(*grown.restores())
    for s in gone.restores():
        rs.apply(s)
    assert not [c for c in rs.tables["nat"].chains if c.startswith(("KUBE-SEP-", "KUBE-SVC-"))]
