"""Simulated vs observed: which simulated branch the observed packet took, and where the two disagree.

The observed packet takes one branch of the simulation (one Service endpoint); it is matched by endpoint.
Disagreements, each a sentence: different verdict; an observed endpoint the simulation never predicted;
a different dropping policy; different VXLAN outer header (src, dst, VNI, port); masquerade in one and
not the other; the answer reaching the source in one and not the other (a simulation that says
"delivered, answered" where the kernel's answer never comes back is a disagreement). Pure.
"""

from __future__ import annotations

from netsim.trace import hops as H


def pick_branch(branches: list[H.Path], observed: H.Path | None) -> H.Path | None:
    """The simulated branch the observation corresponds to (same endpoint), else the likeliest one."""
    if not branches:
        return None
    if observed is not None and observed.endpoint:
        same = [b for b in branches if b.endpoint == observed.endpoint]
        if same:
            return max(same, key=lambda b: (b.verdict == observed.verdict, b.probability))
    if observed is not None and observed.endpoint_ip:
        same = [b for b in branches if b.endpoint_ip == observed.endpoint_ip]
        if same:
            return max(same, key=lambda b: (b.verdict == observed.verdict, b.probability))
    if observed is not None:
        same_verdict = [b for b in branches if b.verdict == observed.verdict]
        if same_verdict:
            return max(same_verdict, key=lambda b: b.probability)
    return max(branches, key=lambda b: b.probability)


def disagreements(branches: list[H.Path], observed: H.Path, unwalked: frozenset[str] = frozenset()) -> list[str]:
    """`unwalked`: endpoint IPs the simulation named but did not walk (a Service with more endpoints than
    it walks); an observation that took one of those agrees with the simulation as far as it went."""
    if observed.endpoint_ip and observed.endpoint_ip in unwalked:
        return []
    out: list[str] = []
    branch = pick_branch(branches, observed)
    if branch is None:
        return ["the simulation produced no path"]
    verdicts = sorted({b.verdict for b in branches})
    if observed.verdict not in verdicts:
        out.append(
            f"verdict: simulated {' / '.join(verdicts)}, observed {observed.verdict}"
            + (f" ({observed.reason})" if observed.reason else "")
        )
    if observed.verdict == H.VERDICT_DELIVERED and observed.endpoint:
        endpoints = sorted({b.endpoint for b in branches if b.endpoint})
        if observed.endpoint not in endpoints:
            out.append(
                f"endpoint: observed {observed.endpoint}, not among the simulated {endpoints or 'none'}"
            )
    if observed.verdict == branch.verdict and observed.policy and branch.policy:
        o, s = H.policy_key(observed.policy), H.policy_key(branch.policy)
        if o != s and o not in branch.policies:
            out.append(f"policy: simulated {s}, observed {o}")
        if observed.policy.get("direction") != branch.policy.get("direction"):
            out.append(
                f"policy direction: simulated {branch.policy.get('direction')}, observed "
                f"{observed.policy.get('direction')}"
            )
    if branch.endpoint_ip == observed.endpoint_ip and observed.verdict == branch.verdict:
        if observed.tunnel and branch.tunnel and _tun(observed.tunnel) != _tun(branch.tunnel):
            out.append(f"tunnel: simulated {_tun(branch.tunnel)}, observed {_tun(observed.tunnel)}")
        elif bool(observed.tunnel) != bool(branch.tunnel) and observed.verdict == H.VERDICT_DELIVERED:
            out.append(
                f"tunnel: simulated {_tun(branch.tunnel) if branch.tunnel else 'none'}, observed "
                f"{_tun(observed.tunnel) if observed.tunnel else 'none'}"
            )
        if observed.masquerade != branch.masquerade and observed.verdict == H.VERDICT_DELIVERED:
            out.append(
                f"masquerade: simulated {'yes' if branch.masquerade else 'no'}, observed "
                f"{'yes' if observed.masquerade else 'no'}"
            )
        if (
            observed.verdict == H.VERDICT_DELIVERED
            and branch.returned is not None
            and observed.returned is not None
            and branch.returned != observed.returned
        ):
            out.append(
                "reply: simulated "
                + ("it reaches the source" if branch.returned else f"it is lost ({_lost(branch)})")
                + ", observed "
                + ("it reached the source" if observed.returned else "no answer reached the source")
            )
        sa, oa = branch.answered, observed.answered
        if sa and oa and not oa.startswith("reply (") and sa != oa:
            out.append(f"answer: simulated {sa}, observed {oa}")
    return out


def _lost(p: H.Path) -> str:
    last = next((h for h in reversed(p.hops) if h.direction == "reply" and h.action == H.DROPPED), None)
    return last.detail.removeprefix("the answer is lost: ") if last else "no way back"


def _tun(t: dict | None) -> str:
    if not t:
        return "none"
    return f"{t.get('src')} -> {t.get('dst')} udp/{t.get('port')} vni {t.get('vni')}"
