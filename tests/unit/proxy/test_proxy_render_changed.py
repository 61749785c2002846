"""A partial sync told which Services changed (kube-proxy's serviceChanged / endpointsChanged sets) looks at
those Services only, and writes exactly what a partial sync comparing every port writes: the same payload,
stages and counts, and, replayed on the previous rules, the rules of a fresh full sync."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from netsim.proxy import render as R
from netsim.proxy.iptables_text import Ruleset
from netsim.proxy.model import Endpoint, ProxyConfig, ServicePort
from netsim.proxy.render import render_full, render_partial

from .scenarios import CONFIG, NODE, local_ep, remote_ep, svc

SKIP = dataclasses.replace(CONFIG, skip_unchanged_top_chains=True)
CONFIGS = {"upstream": CONFIG, "skip-top": SKIP, "staged": dataclasses.replace(SKIP, restore_stage_chains=4),
           "large-at-12": dataclasses.replace(CONFIG, large_cluster_threshold=12, restore_stage_chains=5)}


def _rules(rs: Ruleset) -> dict:
    return {t: {n: [tuple(r) for r in c.rules] for n, c in rs.tables[t].chains.items()} for t in ("filter", "nat")}


def _ports(i: int, kind: int) -> list[ServicePort]:
    """Service s<i> in one of a few shapes (ClusterIP, NodePort, eTP=Local, affinity, two ports, LB)."""
    ip = f"10.96.1.{i + 1}"
    if kind == 0:
        return [svc(f"s{i}", ip)]
    if kind == 1:
        return [svc(f"s{i}", ip, node_port=30000 + i)]
    if kind == 2:
        return [svc(f"s{i}", ip, node_port=30000 + i, external_traffic_policy="Local")]
    if kind == 3:
        return [svc(f"s{i}", ip, session_affinity_timeout=10800)]
    if kind == 4:
        return [svc(f"s{i}", ip, port_name="http"), svc(f"s{i}", ip, port=53, port_name="dns", protocol="UDP")]
    return [svc(f"s{i}", ip, node_port=30000 + i, load_balancer_ips=[f"203.0.113.{i + 1}"],
                load_balancer_source_ranges=["198.51.100.0/24"])]


OPS = st.lists(st.tuples(st.sampled_from(["ep+", "ep~", "ep-", "none", "unready", "svc+", "svc-", "reshape"]),
                         st.integers(0, 9), st.integers(0, 5), st.integers(1, 60)), min_size=1, max_size=20)


class World:
    """Services s0..s9 (some absent), their endpoints, and the Services changed since the last sync."""

    def __init__(self, kinds: list[int]):
        self.ports: dict[str, list[ServicePort]] = {}
        self.eps: dict[tuple[str, str], list[Endpoint]] = {}
        self.changed: set[str] = set()
        for i, kind in enumerate(kinds):
            self._set(i, kind)
            for sp in self.ports[f"default/s{i}"]:
                self.eps[sp.key] = [remote_ep(i + 1), local_ep(i + 1)]

    def _set(self, i: int, kind: int | None) -> None:
        name = f"default/s{i}"
        for sp in self.ports.pop(name, []):
            self.eps.pop(sp.key, None)
        if kind is not None:
            self.ports[name] = _ports(i, kind)
        self.changed.add(name)

    def apply(self, op: str, i: int, k: int, n: int) -> None:
        name = f"default/s{i}"
        if op == "svc+":
            if name not in self.ports:
                self._set(i, k)
            return
        if name not in self.ports:
            return
        if op == "svc-":
            self._set(i, None)
            return
        if op == "reshape":
            self._set(i, k)
            return
        sp = self.ports[name][n % len(self.ports[name])]
        cur = list(self.eps.get(sp.key, []))
        if op == "ep+":
            cur.append((local_ep if n % 2 else remote_ep)(n))
        elif op == "ep~" and cur:
            cur[n % len(cur)] = remote_ep(n)
        elif op == "ep-" and cur:
            cur.pop(n % len(cur))
        elif op == "none":
            cur = []
        elif op == "unready" and cur:
            cur[0] = dataclasses.replace(cur[0], ready=False, serving=True, terminating=True)
        self.eps[sp.key] = cur
        self.changed.add(name)

    def services(self) -> tuple[ServicePort, ...]:
        return tuple(sp for name in sorted(self.ports) for sp in self.ports[name])

    def take_changed(self) -> dict[str, tuple[ServicePort, ...]]:
        out = {name: tuple(self.ports.get(name, ())) for name in self.changed}
        self.changed = set()
        return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=10), OPS, st.integers(1, 3),
       st.sampled_from(sorted(CONFIGS)))
def test_a_partial_sync_told_what_changed_equals_one_comparing_every_port(kinds, ops, batch, cfg_name):
    cfg = CONFIGS[cfg_name]
    world = World(kinds)
    first = render_full(world.services(), world.eps, NODE, cfg)
    world.take_changed()
    replayed = Ruleset.from_text(*first.restores())
    told = walked = first.state
    for n, op in enumerate(ops):
        world.apply(*op)
        if n % batch and n != len(ops) - 1:
            continue
        services = world.services()
        a = render_partial(told, services, world.eps, NODE, cfg, changed=world.take_changed())
        b = render_partial(walked, services, world.eps, NODE, cfg)
        assert a.payload == b.payload
        assert a.stages == b.stages
        assert a.counts == b.counts
        assert a.state == b.state and a.state.book.keys == b.state.book.keys
        for payload in a.restores():
            replayed.apply(payload)
        assert _rules(replayed) == _rules(Ruleset.from_text(render_full(services, world.eps, NODE, cfg).payload))
        told, walked = a.state, b.state


def _world(n: int) -> tuple[list[ServicePort], dict]:
    services = [svc(f"svc-{i:05d}", f"10.96.{i // 250}.{i % 250 + 1}", node_port=30000 + i % 2000 if i % 3 == 0
                    else 0) for i in range(n)]
    eps = {sp.key: [remote_ep(i % 200 + 1), local_ep(i % 200 + 1)] for i, sp in enumerate(services)}
    return services, eps


def _count_calls(fn: Callable[[], object]) -> int:
    """Function calls (Python and C) made while `fn` runs: Python-level work, counted, never timed."""
    calls = 0

    def profile(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def _one_endpoint_change(n: int, cfg: ProxyConfig) -> tuple[int, int, R.SyncResult]:
    services, eps = _world(n)
    state = render_full(services, eps, NODE, cfg).state
    sp = services[n // 2]
    eps2 = {**eps, sp.key: [remote_ep(250), local_ep(250)]}
    rendered = []
    real = R._render_port

    def counting(*a, **kw):
        rendered.append(a[0])
        return real(*a, **kw)
    out: list[R.SyncResult] = []
    R._render_port = counting
    try:
        calls = _count_calls(lambda: out.append(
            render_partial(state, services, eps2, NODE, cfg, changed={sp.service_name: (sp,)})))
    finally:
        R._render_port = real
    assert rendered == [sp]
    return calls, len(rendered), out[0]


def test_a_one_service_change_does_work_for_that_service_only():
    """At 200 and at 2,000 ports, one Service's change renders one port and makes the same number of calls
    (a walk over every port would make thousands more at 2,000)."""
    for cfg in (SKIP, CONFIG):  # with and without the top-level chains written
        small, _, _ = _one_endpoint_change(200, cfg)
        big, rendered, res = _one_endpoint_change(2000, cfg)
        assert rendered == 1 and res.counts.services_rewritten == ("default/svc-01000",)
        assert big <= small + 20, (cfg.skip_unchanged_top_chains, small, big)
