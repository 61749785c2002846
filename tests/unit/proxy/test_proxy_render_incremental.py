"""Incremental rendering: reused per-port renders, skipped unchanged top-level chains, staged restores.

Whatever shortcut a sync takes, replaying the full sync and every later sync (as the kernel's
iptables-restore --noflush would) must give exactly the rules a fresh full sync of the final state gives.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random

import pytest

from netsim.proxy import chains as C
from netsim.proxy.iptables_text import Ruleset
from netsim.proxy.model import Endpoint, ProxyConfig
from netsim.proxy.render import render_full, render_partial

from .scenarios import CONFIG, NODE, local_ep, remote_ep, svc

SKIP = dataclasses.replace(CONFIG, skip_unchanged_top_chains=True)


def _rules(rs: Ruleset) -> dict[str, dict[str, list[tuple[str, ...]]]]:
    return {t: {n: [tuple(r) for r in c.rules] for n, c in rs.tables[t].chains.items()} for t in ("filter", "nat")}


def _random_world(rng: random.Random, n: int = 12):
    services, eps = [], {}
    for i in range(n):
        kind = rng.choice(["plain", "nodeport", "local", "sticky"])
        kw = {}
        if kind in ("nodeport", "local"):
            kw["node_port"] = 30000 + i
        if kind == "local":
            kw["external_traffic_policy"] = "Local"
        if kind == "sticky":
            kw["session_affinity_timeout"] = 10800
        ports = [svc(f"s{i}", f"10.96.1.{i + 1}", **kw)]
        if i % 4 == 0:  # a second, named port on the same Service (one digest per Service)
            ports = [svc(f"s{i}", f"10.96.1.{i + 1}", port_name="http", **kw),
                     svc(f"s{i}", f"10.96.1.{i + 1}", port=9090, port_name="metrics", protocol="UDP")]
        for sp in ports:
            services.append(sp)
            eps[sp.key] = [rng.choice([local_ep, remote_ep])(rng.randrange(1, 40))
                           for _ in range(rng.randrange(0, 4))]
    return services, eps


def _mutate(rng: random.Random, services, eps):
    services, eps = list(services), dict(eps)
    what = rng.choice(["endpoint", "endpoint", "endpoint", "drop-all", "add", "remove", "nodeport"])
    i = rng.randrange(len(services))
    sp = services[i]
    if what == "endpoint":
        cur = list(eps.get(sp.key, []))
        if cur and rng.random() < 0.5:
            cur[rng.randrange(len(cur))] = remote_ep(rng.randrange(40, 80))
        else:
            cur.append(local_ep(rng.randrange(40, 80)))
        eps[sp.key] = cur
    elif what == "drop-all":
        eps[sp.key] = []
    elif what == "add":
        new = svc(f"n{rng.randrange(10_000)}", f"10.96.2.{rng.randrange(1, 250)}")
        if all(s.key != new.key for s in services):
            services.append(new)
            eps[new.key] = [remote_ep(rng.randrange(1, 40))]
    elif what == "remove" and len(services) > 2:
        services.pop(i)
        eps.pop(sp.key, None)
    elif what == "nodeport":
        services[i] = dataclasses.replace(sp, node_port=0 if sp.node_port else 31000 + i)
    return services, eps


@pytest.mark.parametrize("cfg", [CONFIG, SKIP, dataclasses.replace(SKIP, restore_stage_chains=4)],
                         ids=["upstream", "skip-top", "skip-top-staged"])
@pytest.mark.parametrize("seed", range(4))
def test_partial_syncs_replay_to_a_fresh_full_sync(cfg: ProxyConfig, seed: int) -> None:
    rng = random.Random(seed)
    services, eps = _random_world(rng)
    first = render_full(services, eps, NODE, cfg)
    replayed = Ruleset.from_text(*first.restores())
    state = first.state
    for _ in range(12):
        services, eps = _mutate(rng, services, eps)
        part = render_partial(state, services, eps, NODE, cfg)
        for payload in part.restores():
            replayed.apply(payload)
        state = part.state
        fresh = Ruleset.from_text(render_full(services, eps, NODE, cfg).payload)
        assert _rules(replayed) == _rules(fresh)


def test_reusing_renders_changes_nothing_in_a_full_sync() -> None:
    services, eps = _random_world(random.Random(7), n=20)
    first = render_full(services, eps, NODE, CONFIG)
    again = render_full(services, eps, NODE, CONFIG, prev=first.state)
    fresh = render_full(services, eps, NODE, CONFIG)
    # prev only changes the jump rules (assumed present) and nothing else.
    strip = [x for x in again.payload.splitlines() if not x.startswith("-I ")]
    assert strip == [x for x in fresh.payload.splitlines() if not x.startswith("-I ")]
    # The reused entries are the very same objects (no re-render).
    assert all(again.state.ports[k] is first.state.ports[k] for k in first.state.ports)


def test_endpoint_change_with_skip_writes_only_that_service() -> None:
    a, b = svc("a", "10.96.1.1", node_port=30001), svc("b", "10.96.1.2")
    eps = {a.key: [remote_ep(1), local_ep(1)], b.key: [remote_ep(2)]}
    full = render_full([a, b], eps, NODE, SKIP)
    eps2 = {**eps, a.key: [remote_ep(1), local_ep(7)]}
    part = render_partial(full.state, [a, b], eps2, NODE, SKIP)
    assert part.counts.services_rewritten == ("default/a",)
    assert "nat/KUBE-SERVICES" in part.counts.top_chains_skipped
    assert "*filter" not in part.payload and f":{C.KUBE_SERVICES} " not in part.payload
    assert "-A KUBE-SERVICES" not in part.payload and "-A KUBE-NODEPORTS" not in part.payload
    assert len(part.counts.chains_deleted) == 1 and f"-X {part.counts.chains_deleted[0]}" in part.payload
    # Without the option the same change rewrites the top-level chains, as kube-proxy does.
    up = render_partial(render_full([a, b], eps, NODE, CONFIG).state, [a, b], eps2, NODE, CONFIG)
    assert "-A KUBE-SERVICES" in up.payload and up.counts.top_chains_skipped == ()


def test_losing_the_last_endpoint_rewrites_the_top_level_chains() -> None:
    a = svc("a", "10.96.1.1")
    full = render_full([a], {a.key: [remote_ep(1)]}, NODE, SKIP)
    part = render_partial(full.state, [a], {a.key: []}, NODE, SKIP)
    assert part.counts.top_chains_skipped == ()
    assert '"default/a has no endpoints"' in part.payload and "-j REJECT" in part.payload


def test_nothing_changed_means_nothing_to_restore() -> None:
    a = svc("a", "10.96.1.1")
    eps = {a.key: [remote_ep(1)]}
    full = render_full([a], eps, NODE, SKIP)
    part = render_partial(full.state, [a], {a.key: [remote_ep(1)]}, NODE, SKIP)  # equal, not identical
    assert part.payload == "" and part.restores() == ()


def test_large_syncs_are_staged_by_whole_services() -> None:
    services = [svc(f"s{i}", f"10.96.1.{i + 1}") for i in range(6)]
    eps = {sp.key: [remote_ep(i * 3 + j + 1) for j in range(2)] for i, sp in enumerate(services)}  # 3 chains each
    cfg = dataclasses.replace(CONFIG, restore_stage_chains=7)
    res = render_full(services, eps, NODE, cfg)
    assert res.counts.stages == len(res.stages) == 4  # 6 services, two per chunk, then the top-level stage
    for i, stage in enumerate(res.stages[:-1]):
        declared = [x[1:].split()[0] for x in stage.splitlines() if x.startswith(":")]
        own = [c for c in declared if C.is_service_chain(c)]
        assert len(own) == 6  # two whole services
        assert (C.KUBE_MARK_MASQ in declared) == (i == 0)
        assert "-A KUBE-SERVICES" not in stage and "*filter" not in stage
    assert "-A KUBE-SERVICES" in res.stages[-1] and "*filter" in res.stages[-1]
    assert _rules(Ruleset.from_text(*res.stages)) == _rules(Ruleset.from_text(res.payload))
    # Below the threshold: one restore.
    assert render_full(services[:2], eps, NODE, cfg).restores() == (render_full(services[:2], eps, NODE, cfg).payload,)


def test_chain_hash_is_kube_proxys() -> None:
    """The shortened base32 (first 10 bytes of the digest) is the same string as upstream's
    base32(sha256)[:16]."""
    for text in ("ns1/svc1:p80tcp", "default/webtcp10.244.2.1:8080", "x" * 200):
        want = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]
        assert C._hash16(text) == want
    assert C.svc_chain("ns1/svc1:p80", "TCP") == "KUBE-SVC-XPGD46QRK7WJZT7O"  # from upstream's tests


def test_endpoint_string_cache_keeps_value_semantics() -> None:
    a, b = Endpoint("10.0.1.10", 80), Endpoint("10.0.1.10", 80)
    assert str(a) == "10.0.1.10:80" and a.key == "10.0.1.10:80"
    assert a == b and hash(a) == hash(b)
    assert str(dataclasses.replace(a, port=81)) == "10.0.1.10:81"
    assert str(Endpoint("fd00::1", 80)) == "[fd00::1]:80"


SAVE = """\
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -j FLANNEL-POSTRTG
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:6443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:KUBE-SEP-NOTNAT0000000000 - [0:0]
COMMIT
"""


def test_reading_an_existing_dump_looks_only_at_what_it_needs() -> None:
    from netsim.proxy.render import builtin_chains_only, existing_service_chains, render_jump_rules
    assert existing_service_chains(SAVE) == {"KUBE-SVC-AAAAAAAAAAAAAAAA", "KUBE-SEP-BBBBBBBBBBBBBBBB"}
    small = builtin_chains_only(SAVE)
    assert "KUBE-SVC-" not in small and "-A KUBE-SERVICES" not in small
    assert "-A POSTROUTING -j FLANNEL-POSTRTG" in small and ":FLANNEL-POSTRTG - [0:0]" in small
    jumps = render_jump_rules(SAVE, CONFIG)
    assert jumps == render_jump_rules(small, CONFIG)
    # The duplicated PREROUTING jump is removed once, the missing OUTPUT one is inserted.
    assert [x for x in jumps["nat"] if "PREROUTING" in x] == [
        '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    assert any(x.startswith("-I OUTPUT 1 ") and x.endswith("-j KUBE-SERVICES") for x in jumps["nat"])
