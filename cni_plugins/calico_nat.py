"""calico's outgoing NAT (IP pool `natOutgoing`): felix's masquerade manager, for one node.

Upstream (projectcalico/calico):
* `felix/dataplane/linux/masq_mgr.go` (masqManager): two hash:net ipsets, every IPAM pool's CIDR in
  `all-ipam-pools`, the pools with `natOutgoing: true` also in `masq-ipam-pools`; the chain is refreshed
  from `NATOutgoingChain(masqPools > 0)`, so with no masquerading pool it is empty;
* `felix/rules/nat.go` (NATOutgoingChain, makeNATOutgoingRuleIPTables): `cali-nat-outgoing` holds one
  rule, `-m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst
  -j MASQUERADE`: pod traffic leaving every calico pool (to a node, an external host) takes the outgoing
  interface's address, pod-to-pod traffic keeps the pod source;
* `felix/rules/static.go` (StaticNATPostroutingChains): `cali-POSTROUTING` jumps to `cali-fip-snat` and
  `cali-nat-outgoing`; `felix/dataplane/linux/int_dataplane.go` appends the `cali-POSTROUTING` jump to
  nat POSTROUTING (after kube-proxy's, so its mark-based masquerade decides first);
* set names: `felix/rules/rule_defs.go` (IPSetIDNATOutgoingAllPools "all-ipam-pools",
  IPSetIDNATOutgoingMasqPools "masq-ipam-pools") with the `cali40` prefix of `felix/ipsets/ipset_defs.go`;
  calico-node's CALICO_IPV4POOL_NAT_OUTGOING (default true in the manifests) sets the default pool's flag.

netsim has one pool (the cluster's pod CIDR), so the payload is a function of (pool, natOutgoing). Not
modelled: `cali-fip-snat` (floating IPs) and the tunnel-source MASQUERADE rule felix adds for
`vxlan.calico` (the kernel already picks the tunnel address as source for routes through it here).
"""

from __future__ import annotations

import base64
import hashlib

from netsim.kernel.api import Kernel

CHAIN_POSTROUTING = "cali-POSTROUTING"
CHAIN_NAT_OUTGOING = "cali-nat-outgoing"
SET_ALL_POOLS = "cali40all-ipam-pools"
SET_MASQ_POOLS = "cali40masq-ipam-pools"
_SET_CREATE = "hash:net family inet hashsize 1024 maxelem 1048576 -exist"


def _rule_id(text: str) -> str:
    """A stable `cali:<16 chars>` rule comment, as felix tags every rule it owns (rules/rule_defs.go)."""
    return "cali:" + base64.urlsafe_b64encode(hashlib.sha224(text.encode()).digest()).decode()[:16]


def temp_set(name: str) -> str:
    """felix's temporary set for a swap: `cali4t...` instead of `cali40...`."""
    return "cali4t" + name[len("cali40"):]


def render_ipsets(pool: str, nat_outgoing: bool) -> str:
    """`ipset restore` payload: both sets built in a temporary set and swapped in (no rule ever sees a
    half-filled set)."""
    lines: list[str] = []
    for name, members in ((SET_ALL_POOLS, [pool]), (SET_MASQ_POOLS, [pool] if nat_outgoing else [])):
        tmp = temp_set(name)
        lines += [f"create {name} {_SET_CREATE}", f"create {tmp} {_SET_CREATE}", f"flush {tmp}"]
        lines += [f"add {tmp} {m}" for m in members]
        lines += [f"swap {tmp} {name}", f"destroy {tmp}"]
    return "".join(x + "\n" for x in lines)


POSTROUTING_JUMP = (f'-A POSTROUTING -m comment --comment "{_rule_id("nat-postrouting-jump")}" '
                    f"-j {CHAIN_POSTROUTING}")


def render_nat(nat_outgoing: bool, *, have_jump: bool) -> str:
    """`iptables-restore --noflush` payload for the nat table: declaring our two chains flushes and
    refills only them; the POSTROUTING jump is appended only when `have_jump` says it is not there yet."""
    lines = ["*nat", f":{CHAIN_POSTROUTING} - [0:0]", f":{CHAIN_NAT_OUTGOING} - [0:0]"]
    if not have_jump:
        lines.append(POSTROUTING_JUMP)
    lines.append(f'-A {CHAIN_POSTROUTING} -m comment --comment "{_rule_id("nat-outgoing-jump")}" '
                 f"-j {CHAIN_NAT_OUTGOING}")
    if nat_outgoing:
        lines.append(f'-A {CHAIN_NAT_OUTGOING} -m comment --comment "{_rule_id("nat-outgoing")}" '
                     f"-m set --match-set {SET_MASQ_POOLS} src -m set ! --match-set {SET_ALL_POOLS} dst "
                     "-j MASQUERADE")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def has_jump(nat_save: str) -> bool:
    """Does nat POSTROUTING already jump to cali-POSTROUTING (from `iptables-save -t nat`)?"""
    return any(line.startswith("-A POSTROUTING ") and line.rstrip().endswith(f"-j {CHAIN_POSTROUTING}")
               for line in nat_save.splitlines())


def apply(kernel: Kernel, ns: str, pool: str, nat_outgoing: bool) -> None:
    """Program the node: ipsets first (the rule references them), then the nat chains."""
    kernel.ipset_restore(ns, render_ipsets(pool, nat_outgoing))
    saved = kernel.run(ns, ["iptables-save", "-t", "nat"], check=False).stdout
    text = saved if isinstance(saved, str) else (saved or b"").decode()
    kernel.iptables_restore(ns, render_nat(nat_outgoing, have_jump=has_jump(text)))


__all__ = ["CHAIN_NAT_OUTGOING", "CHAIN_POSTROUTING", "SET_ALL_POOLS", "SET_MASQ_POOLS", "apply", "has_jump",
           "render_ipsets", "render_nat"]
