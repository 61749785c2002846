"""calico natOutgoing: felix's masquerade manager payloads (ipsets + cali-nat-outgoing) and how the node
daemon applies them, against FakeKernel; the rule's effect through the iptables interpreter."""

from __future__ import annotations

from conftest import NODES

from cni_plugins import calico_nat
from cni_plugins.calico import CalicoNetConf, CalicoNode, CalicoNodeDaemon
from netsim.proxy.interpret import Interpreter, Packet

POOL = "10.244.0.0/16"


def test_ipsets_hold_every_pool_and_the_masquerading_ones_swapped_in():
    text = calico_nat.render_ipsets(POOL, True)
    assert "add cali4tall-ipam-pools 10.244.0.0/16" in text and "add cali4tmasq-ipam-pools 10.244.0.0/16" in text
    assert "swap cali4tall-ipam-pools cali40all-ipam-pools" in text
    assert text.index("create cali40all-ipam-pools hash:net") < text.index("swap cali4tall-ipam-pools")
    off = calico_nat.render_ipsets(POOL, False)
    assert "add cali4tall-ipam-pools 10.244.0.0/16" in off and "add cali4tmasq" not in off


def test_nat_chain_masquerades_pool_sources_leaving_every_pool():
    text = calico_nat.render_nat(True, have_jump=False)
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert ":cali-POSTROUTING - [0:0]" in lines and ":cali-nat-outgoing - [0:0]" in lines
    [jump] = [x for x in lines if x.startswith("-A POSTROUTING ")]
    assert jump.endswith("-j cali-POSTROUTING") and '--comment "cali:' in jump
    [masq] = [x for x in lines if x.startswith("-A cali-nat-outgoing ")]
    assert ("-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst "
            "-j MASQUERADE") in masq
    # natOutgoing false: felix's NATOutgoingChain(false) is empty; the jump is never duplicated
    off = calico_nat.render_nat(False, have_jump=True)
    assert not any(x.startswith(("-A cali-nat-outgoing", "-A POSTROUTING")) for x in off.splitlines())
    assert calico_nat.has_jump(text) and not calico_nat.has_jump("*nat\n-A POSTROUTING -j KUBE-POSTROUTING\n")


def test_rule_effect_through_the_interpreter():
    rules = calico_nat.render_nat(True, have_jump=False)
    sets = {calico_nat.SET_ALL_POOLS: [POOL], calico_nat.SET_MASQ_POOLS: [POOL]}
    interp = Interpreter(rules, ["172.18.0.2"], ipsets=sets)
    [out] = interp.trace(Packet("10.244.0.5", "203.0.113.10"))  # pod -> outside: masqueraded
    assert out.masquerade and out.path[-1].chain == "cali-nat-outgoing"
    [pod] = interp.trace(Packet("10.244.0.5", "10.244.3.7"))  # pod -> pod: keeps its source
    assert not pod.masquerade
    [node] = interp.trace(Packet("172.18.0.3", "203.0.113.10"))  # not from a pool
    assert not node.masquerade
    off = Interpreter(rules, ["172.18.0.2"], ipsets={**sets, calico_nat.SET_MASQ_POOLS: []})
    assert not off.trace(Packet("10.244.0.5", "203.0.113.10"))[0].masquerade


def test_node_daemon_applies_sets_before_the_rule(kernel, ctx):
    nodes = [CalicoNode(n, ip) for n, ip in NODES.items()]
    d = CalicoNodeDaemon(kernel, ctx("a"), CalicoNetConf(pool=POOL, nat_outgoing=False), NODES["a"])
    d.start()
    kernel.calls.clear()
    d.sync(nodes)
    kinds = [name for name, _ in kernel.calls if name in ("ipset_restore", "iptables_restore")]
    assert kinds == ["ipset_restore", "iptables_restore"]
    payloads = kernel._get(ctx("a").node_ns).payloads
    assert any(k == "ipset" and "add cali4tmasq" not in p for k, p in payloads)
    assert any(k == "iptables-restore" and "cali-nat-outgoing" in p and "MASQUERADE" not in p for k, p in payloads)
