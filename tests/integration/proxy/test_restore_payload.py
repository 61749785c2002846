"""The rendered payloads are accepted by the real iptables-restore, in a throwaway network namespace.

Never touches the root namespace: everything runs under `ip netns exec netsim-tproxy-<random>`, and the
namespace is deleted by the fixture finaliser whatever happens.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit"))

from proxy.scenarios import NODE, NODE_IP, POD_CLIENT, combined, remote_ep  # noqa: E402

from netsim.proxy.chains import ServiceChains  # noqa: E402
from netsim.proxy.interpret import Interpreter, Packet, aggregate  # noqa: E402
from netsim.proxy.iptables_text import Ruleset  # noqa: E402
from netsim.proxy.render import render_full, render_partial  # noqa: E402

pytestmark = pytest.mark.root


def _run(ns: str, *argv: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)} failed: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def netns(kernel):
    if shutil.which("iptables-restore") is None or shutil.which("ip") is None:
        pytest.skip("needs ip and iptables-restore")
    name = f"netsim-tproxy-{secrets.token_hex(4)}"
    # netsim's own namespace maker, not `ip netns add`: the first `ip netns add` on a machine bind-mounts
    # /run/netns over itself, which hides the namespaces other tests have mounted there meanwhile (their
    # removal then fails with EBUSY).
    kernel.netns_create(name)
    try:
        yield name
    finally:
        kernel.netns_delete(name)


def test_full_then_partial_payload_restore(netns: str) -> None:
    services, eps, cfg = combined()
    restore = ("iptables-restore", "--noflush")

    # A foreign hook (as flannel's) must survive our syncs.
    _run(netns, *restore, stdin="*nat\n:FLANNEL-POSTRTG - [0:0]\n-A POSTROUTING -j FLANNEL-POSTRTG\nCOMMIT\n")

    full = render_full(services, eps, NODE, cfg, existing_save=_run(netns, "iptables-save"))
    _run(netns, *restore, stdin=full.payload)
    saved = Ruleset.from_text(_run(netns, "iptables-save"))
    model = Ruleset.from_text(full.payload)
    for table in ("filter", "nat"):
        for name, chain in model.tables[table].chains.items():
            if chain.builtin:
                continue
            got = saved.chain(table, name)
            assert got is not None, f"{table}/{name} missing after restore"
            assert len(got.rules) == len(chain.rules), f"{table}/{name}"
    assert [r[-1] for r in saved.chain("nat", "POSTROUTING").rules] == ["KUBE-POSTROUTING", "FLANNEL-POSTRTG"]

    # A second full sync adds no jump rules.
    again = render_full(services, eps, NODE, cfg, existing_save=_run(netns, "iptables-save"), prev=full.state)
    assert again.counts.jump_rules_added == 0
    _run(netns, *restore, stdin=again.payload)
    assert len(Ruleset.from_text(_run(netns, "iptables-save")).chain("nat", "PREROUTING").rules) == 1

    # The interpreter reads the kernel's own iptables-save output.
    interp = Interpreter(_run(netns, "iptables-save"), [NODE_IP])
    agg = aggregate(interp.trace(Packet(POD_CLIENT, "10.96.0.20", dport=80)))
    assert set(agg) == {"10.244.1.2:8080", "10.244.2.1:8080", "10.244.2.3:8080"}
    assert all(abs(p - 1 / 3) < 1e-6 for p in agg.values())

    # Partial sync: web loses endpoints, the external-IP service is deleted.
    web = next(s for s in services if s.name == "web")
    ext = next(s for s in services if s.name == "ext")
    services2 = [s for s in services if s is not ext]
    eps2 = {k: v for k, v in eps.items() if k != ext.key}
    eps2[web.key] = [remote_ep(1)]
    part = render_partial(again.state, services2, eps2, NODE, cfg)
    assert set(part.counts.services_rewritten) == {"default/web"}
    assert part.counts.chains_deleted
    _run(netns, *restore, stdin=part.payload)
    after = Ruleset.from_text(_run(netns, "iptables-save"))
    nat = after.chain_names("nat")
    assert not set(part.counts.chains_deleted) & nat
    assert ServiceChains(ext).svc not in nat and ServiceChains(web).svc in nat
    assert len(after.chain("nat", ServiceChains(web).svc).rules) == 2  # masquerade rule + one endpoint
    expected = Ruleset.from_text(render_full(services2, eps2, NODE, cfg).payload)
    kube_nat = {c for c in expected.chain_names("nat") if c.startswith("KUBE-")}
    assert kube_nat == {c for c in nat if c.startswith("KUBE-")}
