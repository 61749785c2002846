"""The calico-like renderer (netsim.policy.felix): structure, names, idempotence, golden output, and a small
iptables interpreter that runs packets through the rendered chains and checks them against the model."""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from netsim.model.errors import Source
from netsim.model.networkpolicy import parse_networkpolicy
from netsim.policy.felix import (
    MAX_CHAIN_NAME,
    FelixPayload,
    WorkloadEndpoint,
    length_limited_id,
    nflog_prefix,
    parse_filter_save,
    policy_chain_name,
    render_node,
    workload_iface,
)
from netsim.policy.model import ExternalEndpoint, NamespaceInfo, NodeEndpoint, PodInfo, PolicyModel

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NETSIM_UPDATE_GOLDEN") == "1"


def pol(text: str):
    return parse_networkpolicy(yaml.safe_load(text), Source("t.yaml"))


NAMESPACES = [NamespaceInfo("default"), NamespaceInfo("prod", {"project": "myproject"}), NamespaceInfo("dev")]
DB = PodInfo("default", "db", {"role": "db"}, "10.244.0.10", "node-0", [("redis", 6379, "TCP")])
FRONTEND = PodInfo("default", "frontend", {"role": "frontend"}, "10.244.0.11", "node-0")
OTHER = PodInfo("default", "other", {"role": "other"}, "10.244.1.12", "node-1")
PROD_API = PodInfo("prod", "api", {"role": "api"}, "10.244.0.20", "node-0", [("http", 8080, "TCP")])
PROD_CLIENT = PodInfo("prod", "client", {"role": "client"}, "10.244.1.21", "node-1")
DEV_CLIENT = PodInfo("dev", "client", {"role": "client"}, "10.244.1.30", "node-1")
PODS = [DB, FRONTEND, OTHER, PROD_API, PROD_CLIENT, DEV_CLIENT]
NODE_IPS = {"node-0": "172.18.0.2", "node-1": "172.18.0.3"}

DOCS_EXAMPLE = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
"""
POLICIES = [
    DOCS_EXAMPLE,
    """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-named-and-ranges, namespace: prod}
spec:
  podSelector: {matchLabels: {role: api}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}, {port: 9000, endPort: 9010}, {port: 9011}, {protocol: UDP, port: 53}]
  - from: [{ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.30/32, 10.244.1.12/32]}}]
""",
    """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: frontend}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {role: db}}}]
    ports: [{port: redis}]
  - to: [{namespaceSelector: {matchLabels: {project: myproject}}}]
  - ports: [{protocol: UDP, port: 53}]
""",
]


def endpoints_for(node: str) -> list[WorkloadEndpoint]:
    return [WorkloadEndpoint(p.namespace, p.name, p.ip) for p in PODS if p.node == node]


def render(node: str = "node-0", policies=None, **kw) -> FelixPayload:
    pols = [pol(t) for t in (POLICIES if policies is None else policies)]
    return render_node(endpoints_for(node), NAMESPACES, PODS, pols, **kw)


# ------------------------------------------------------------------------------------------------ names
def test_length_limited_id_matches_calico_scheme():
    assert length_limited_id("cali-pi-", "knp/a/b", 28) == "cali-pi-knp/a/b"
    long = length_limited_id("cali-pi-", "knp/default/test-network-policy", 28)
    assert len(long) == 28 and long.startswith("cali-pi-_")
    # exactly at the limit but starting with the hash marker is hashed too (collision guard)
    assert length_limited_id("p", "_" * 27, 28) != "p" + "_" * 27


def test_workload_iface_is_calico_veth_name():
    name = workload_iface("default", "db")
    assert len(name) == 15 and name.startswith("cali")
    import hashlib
    assert name[4:] == hashlib.sha1(b"default.db").hexdigest()[:11]


def test_nflog_prefix_hashing():
    short = "API0|knp/ns/name"
    assert nflog_prefix(short) == short
    long = "API12|knp/" + "a" * 40 + "/" + "b" * 40
    h = nflog_prefix(long)
    assert len(h) == 63 and h.startswith(long[:10]) and h.endswith("_" + long[-10:])


def test_all_chain_names_fit_and_prefixes_fit():
    p = render(policies=POLICIES + ["""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-policy-with-a-really-long-name-that-needs-hashing-for-sure, namespace: default}
spec: {podSelector: {}, ingress: [{}]}
"""])
    for name in p.chains:
        assert len(name) <= MAX_CHAIN_NAME, name
    for prefix in re.findall(r'--nflog-prefix ("[^"]*"|\S+)', p.filter):
        assert len(prefix.strip("\"")) <= 63
    for name in p.sets:
        assert len(name) <= 31


# ------------------------------------------------------------------------------------------------ structure
def test_skeleton_without_policies():
    p = render(policies=[])
    assert not any(n.startswith(("cali-pi-", "cali-po-")) for n in p.chains)
    assert p.ipsets == ""
    for ep in endpoints_for("node-0"):
        tw = p.chains[f"cali-tw-{ep.iface}"]
        assert not any("Start of tier" in line for line in tw)
        assert any(f"-j cali-pri-kns.{ep.namespace}" in line for line in tw)
        assert tw[-1].endswith("-j DROP")
        assert any(f"-i {ep.iface} " in line and f"-g cali-fw-{ep.iface}" in line
                   for line in p.chains["cali-from-wl-dispatch"])
    assert "Unknown interface" in p.chains["cali-to-wl-dispatch"][-1]
    assert p.chains["cali-pri-kns.default"][0].endswith("-j MARK --set-xmark 0x10000/0x10000")
    assert p.hooks[0].startswith("-I FORWARD 1 ") and p.hooks[0].endswith("-j cali-FORWARD")
    assert any(h.startswith("-A FORWARD") and "--mark 0x10000/0x10000 -j ACCEPT" in h for h in p.hooks)


def test_forward_chain_order():
    fwd = render().chains["cali-FORWARD"]
    assert "--set-xmark 0x0/0x1e0000" in fwd[0]
    assert "-i cali+" in fwd[2] and "-j cali-from-wl-dispatch" in fwd[2]
    assert "-o cali+" in fwd[3] and "-j cali-to-wl-dispatch" in fwd[3]


def test_endpoint_chain_order_with_policy():
    p = render()
    db = WorkloadEndpoint("default", "db", DB.ip)
    tw = p.chains[f"cali-tw-{db.iface}"]
    kinds = [
        "RELATED,ESTABLISHED -j ACCEPT", "INVALID -j DROP", "--set-xmark 0x0/0x30000", "Start of tier default",
        f"-j {policy_chain_name(pol(DOCS_EXAMPLE), 'ingress')}", "Return if policy accepted",
        '--nflog-prefix "DPI|default" --nflog-group 1', "--mark 0x0/0x20000 -j DROP", "-j cali-pri-kns.default",
        "Return if profile accepted", '--nflog-prefix DRI ', "-j DROP",
    ]
    assert len(tw) == len(kinds)
    for line, want in zip(tw, kinds):
        assert want in line, (want, line)
    fw = p.chains[f"cali-fw-{db.iface}"]
    assert any("--dports 4789 -j DROP" in line for line in fw)
    assert any('"DPE|default" --nflog-group 2' in line for line in fw)
    assert any("--nflog-prefix DRE --nflog-group 2" in line for line in fw)


def test_policy_chain_comments_and_nflog_map():
    p = render()
    chain = p.chains[policy_chain_name(pol(DOCS_EXAMPLE), "ingress")]
    for line in chain:
        assert "default/test-network-policy ingress[0]" in line
    entry = p.nflog["API2|knp/default/test-network-policy"]
    assert (entry.policy, entry.rule, entry.peer, entry.direction) == ("default/test-network-policy", 0, 2, "ingress")
    assert p.nflog["DPI|default"].action == "deny"


def test_ports_rendering():
    p = render()
    chain = "\n".join(p.chains[policy_chain_name(pol(POLICIES[1]), "ingress")])
    assert "-p tcp" in chain and "-m tcp --dport 9000:9011" in chain  # 9000-9010 + 9011 merged
    assert "-p udp" in chain and "-m udp --dport 53" in chain
    assert re.search(r"-m set --match-set cali40n:\S+ dst,dst", chain)
    assert "-s 10.244.1.30/32 " in chain and "--set-xmark 0x0/0x80000" in chain


def test_ipsets_members_and_atomic_swap():
    p = render()
    by_meaning = {s.meaning: s for s in p.sets.values()}
    frontend = [s for m, s in by_meaning.items() if "role == 'frontend'" in m][0]
    assert frontend.type == "hash:net" and frontend.members == (FRONTEND.ip,)
    myproject = [s for m, s in by_meaning.items() if "pcns.project == 'myproject'" in m][0]
    assert set(myproject.members) == {PROD_API.ip, PROD_CLIENT.ip}
    named = [s for s in p.sets.values() if s.type == "hash:ip,port" and "http" in s.meaning][0]
    assert named.members == (f"{PROD_API.ip},tcp:8080",)
    for name in p.sets:
        tmp = "cali4t" + name[6:]
        assert f"create {name} " in p.ipsets and f"swap {tmp} {name}\n" in p.ipsets
        assert p.ipsets.index(f"flush {tmp}") < p.ipsets.index(f"swap {tmp} {name}")


def test_only_policies_selecting_local_endpoints_are_rendered():
    p = render(node="node-1")  # no db, no frontend, no api here
    assert not any(n.startswith(("cali-pi-", "cali-po-")) for n in p.chains)


# ------------------------------------------------------------------------------------------------ idempotence
def as_save(payload: FelixPayload, extra_builtin: list[str] = ()) -> str:
    """What iptables-save would show after applying `payload` on top of other components' rules."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in payload.chains]
    inserted = [h.replace("-I FORWARD 1", "-A FORWARD").replace("-I INPUT 1", "-A INPUT")
                .replace("-I OUTPUT 1", "-A OUTPUT") for h in payload.hooks if h.startswith("-I")]
    appended = [h for h in payload.hooks if h.startswith("-A")]
    lines += inserted + list(extra_builtin) + appended
    for chain_lines in payload.chains.values():
        lines += chain_lines
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def test_reapply_deletes_own_hooks_and_leaves_others():
    first = render()
    kube = "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
    second = render(current_filter=as_save(first, [kube]))
    deletes = [line for line in second.filter.splitlines() if line.startswith("-D ")]
    assert len(deletes) == len(first.hooks)
    assert not any("KUBE-FORWARD" in d for d in deletes)
    body = second.filter.splitlines()
    # deletes come before the re-inserts, all in one transaction
    assert max(body.index(d) for d in deletes) < body.index(second.hooks[0])
    assert second.chains == first.chains and second.stale_chains == ()


def test_stale_chains_flushed_then_deleted():
    first = render()
    second = render(policies=[], current_filter=as_save(first))
    stale = set(second.stale_chains)
    assert policy_chain_name(pol(DOCS_EXAMPLE), "ingress") in stale
    lines = second.filter.splitlines()
    for c in stale:
        assert f":{c} - [0:0]" in lines and f"-X {c}" in lines
        assert lines.index(f"-X {c}") > max(i for i, line in enumerate(lines) if line.startswith("-A "))
    cleanup = second.ipset_cleanup(list(first.sets) + ["KUBE-SOMETHING", "cali40all-vxlan-net"])
    assert cleanup.count("destroy ") == len(first.sets)
    assert "KUBE" not in cleanup and "vxlan" not in cleanup


def test_parse_filter_save_ignores_other_tables():
    save = "*nat\n-A PREROUTING -m comment --comment \"cali:x\" -j cali-PREROUTING\nCOMMIT\n*filter\n" \
           ":cali-FORWARD - [0:0]\n-A FORWARD -j cali-FORWARD\nCOMMIT\n"
    chains, deletes = parse_filter_save(save)
    assert chains == {"cali-FORWARD"} and deletes == ["-D FORWARD -j cali-FORWARD"]


# ------------------------------------------------------------------------------------------------ golden
@pytest.mark.parametrize("case,policies", [("skeleton", []), ("docs_example", POLICIES)])
def test_golden(case, policies):
    p = render(policies=policies)
    for suffix, text in (("filter", p.filter), ("ipsets", p.ipsets)):
        path = GOLDEN / f"felix_{case}.{suffix}"
        if UPDATE or not path.exists():
            path.write_text(text)
        assert text == path.read_text(), f"{path} differs; NETSIM_UPDATE_GOLDEN=1 to accept"


# ------------------------------------------------------------------------------------------------ interpreter
class Netfilter:
    """Just enough of iptables to run our payload: the matches and targets felix.py emits."""

    def __init__(self, payload: FelixPayload):
        self.chains = {}
        for name, lines in payload.chains.items():
            self.chains[name] = [shlex.split(line)[2:] for line in lines]
        hooks = [shlex.split(h) for h in payload.hooks]
        for b in ("INPUT", "FORWARD", "OUTPUT"):
            self.chains[b] = [h[3:] for h in hooks if h[:3] == ["-I", b, "1"]] + \
                             [h[2:] for h in hooks if h[:2] == ["-A", b]]
        self.sets = {n: s for n, s in payload.sets.items()}
        self.log: list[str] = []

    def _in_set(self, name: str, ip: str, proto: str, dport: int, spec: str) -> bool:
        s = self.sets[name]
        if spec == "dst,dst":
            return f"{ip},{proto}:{dport}" in s.members
        return ip in s.members

    def _matches(self, toks: list[str], pkt: dict) -> tuple[bool, list[str]]:
        """(rule matches, its action tokens). Every flag we emit takes exactly one value except
        --match-set (name and direction) and -m/--comment (skipped)."""
        i = 0
        while i < len(toks):
            t = toks[i]
            if t in ("-j", "-g"):
                return True, toks[i:]
            if t == "--match-set":
                name, spec = toks[i + 1], toks[i + 2]
                ip = pkt["src"] if spec == "src" else pkt["dst"]
                if not self._in_set(name, ip, pkt["proto"], pkt["dport"], spec):
                    return False, []
                i += 3
                continue
            ok = _flag_ok(t, toks[i + 1], pkt)
            if not ok:
                return False, []
            i += 2
        return True, []

    def run(self, chain: str, pkt: dict, depth: int = 0) -> str | None:
        assert depth < 20, "chain loop"
        for toks in self.chains[chain]:
            ok, action = self._matches(toks, pkt)
            if not ok or not action:
                continue
            kind, target = action[0], action[1]
            if target in ("ACCEPT", "DROP"):
                return target
            if target == "RETURN":
                return None
            if target == "MARK":
                v, m = (int(x, 16) for x in action[3].split("/"))
                pkt["mark"] = (pkt["mark"] & ~m) ^ v
                continue
            if target == "NFLOG":
                self.log.append(action[action.index("--nflog-prefix") + 1])  # shlex removed any quotes
                continue
            result = self.run(target, pkt, depth + 1)
            if kind == "-g" or result is not None:
                return result
        return None

    def verdict(self, hook: str, src: str, dst: str, iif: str, oif: str, proto: str, dport: int) -> str:
        pkt = {"src": src, "dst": dst, "iif": iif, "oif": oif, "proto": proto.lower(), "dport": dport, "mark": 0}
        return self.run(hook, pkt) or "ACCEPT"  # built-in chain policy ACCEPT


def _in_cidr(ip: str, cidr: str) -> bool:
    import ipaddress
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def _flag_ok(flag: str, v: str, pkt: dict) -> bool:
    if flag in ("-m", "--comment"):
        return True
    if flag in ("-s", "-d"):
        return _in_cidr(pkt["src" if flag == "-s" else "dst"], v)
    if flag in ("-i", "-o"):
        return _iface(pkt["iif" if flag == "-i" else "oif"], v)
    if flag == "-p":
        return v == pkt["proto"]
    if flag == "--ctstate":
        return "NEW" in v.split(",")
    if flag == "--mark":
        value, mask = (int(x, 16) for x in v.split("/"))
        return pkt["mark"] & mask == value
    if flag in ("--dport", "--dports"):
        return _port_in(pkt["dport"], v)
    raise AssertionError(f"interpreter does not know {flag}")


def _port_in(port: int, spec: str) -> bool:
    for part in spec.split(","):
        a, _, b = part.partition(":")
        if int(a) <= port <= int(b or a):
            return True
    return False


def _iface(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern


def test_interpreter_sanity_drop_unknown_interface():
    nf = Netfilter(render())
    assert nf.verdict("FORWARD", "10.0.0.1", "10.244.0.99", "eth0", "caliunknown0000", "TCP", 80) == "DROP"
    assert nf.verdict("FORWARD", "10.0.0.1", "10.0.0.2", "eth0", "eth1", "TCP", 80) == "ACCEPT"


def kernel_verdict(nfs: dict[str, Netfilter], src, dst, port: int, proto: str) -> bool:
    """Walk a packet through the node(s) it crosses, as the kernel would."""
    iface = {p.key: workload_iface(p.namespace, p.name) for p in PODS}
    if isinstance(src, NodeEndpoint):
        if isinstance(dst, PodInfo) and dst.node == src.name:  # host -> local pod: OUTPUT path
            return nfs[src.name].verdict("OUTPUT", src.ip, dst.ip, "lo", iface[dst.key], proto, port) == "ACCEPT"
        src_node, src_if = None, None
    elif isinstance(src, PodInfo):
        src_node, src_if = src.node, iface[src.key]
    else:
        src_node, src_if = None, None
    dst_node = dst.node if isinstance(dst, PodInfo) else None
    dst_if = iface[dst.key] if isinstance(dst, PodInfo) else "eth0"
    if src_node is not None and src_node == dst_node:
        return nfs[src_node].verdict("FORWARD", src.ip, dst.ip, src_if, dst_if, proto, port) == "ACCEPT"
    ok = True
    if src_node is not None:
        ok &= nfs[src_node].verdict("FORWARD", src.ip, dst.ip, src_if, "vxlan.calico", proto, port) == "ACCEPT"
    if dst_node is not None:
        ok &= nfs[dst_node].verdict("FORWARD", src.ip, dst.ip, "vxlan.calico", dst_if, proto, port) == "ACCEPT"
    return ok


@pytest.mark.parametrize("policy_set", [[], POLICIES, POLICIES[:1], [POLICIES[2]]], ids=["none", "all", "docs", "egress"])
def test_rendered_chains_agree_with_model(policy_set):
    pols = [pol(t) for t in policy_set]
    nfs = {n: Netfilter(render_node(endpoints_for(n), NAMESPACES, PODS, pols)) for n in NODE_IPS}
    model = PolicyModel(NAMESPACES, PODS, pols)
    sources = PODS + [ExternalEndpoint("172.17.5.5"), ExternalEndpoint("172.17.1.5"),
                      NodeEndpoint("node-0", NODE_IPS["node-0"]), NodeEndpoint("node-1", NODE_IPS["node-1"])]
    dests = PODS + [ExternalEndpoint("10.0.0.7"), ExternalEndpoint("8.8.8.8")]
    checked = 0
    for src, dst, (port, proto) in itertools.product(sources, dests, [(6379, "TCP"), (8080, "TCP"), (9005, "TCP"),
                                                                      (53, "UDP"), (5978, "TCP"), (80, "SCTP")]):
        if src is dst or (not isinstance(src, PodInfo) and not isinstance(dst, PodInfo)):
            continue
        expected = model.verdict(src, dst, port, proto).allowed
        got = kernel_verdict(nfs, src, dst, port, proto)
        assert got == expected, f"{src.key} -> {dst.key}:{port}/{proto}: chains {got}, model {expected}"
        checked += 1
    assert checked > 300
