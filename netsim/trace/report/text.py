"""Text rendering of a trace report: the simulated path(s), the observed path, the verdict, and every
disagreement. One line per hop (`-> [node] Component Action detail`, `<-` for the reply direction), as
`hubble observe` prints flows. Pure: returns text.
"""

from __future__ import annotations

from typing import Any

from netsim.trace import hops as H


def _verdict_line(path: H.Path) -> str:
    text = path.verdict
    if path.endpoint:
        text += f" {'to' if path.verdict == H.VERDICT_DELIVERED else 'aimed at'} {path.endpoint}"
    if path.policy:
        text += f" by policy {H.policy_key(path.policy)} ({path.policy.get('direction')})"
    elif path.reason and path.verdict != H.VERDICT_DELIVERED:
        text += f": {path.reason}"
    if path.answered:
        text += f"; answered: {path.answered}"
    if path.returned is False:
        lost = next((h for h in reversed(path.hops) if h.direction == "reply" and h.action == H.DROPPED), None)
        text += "; no answer reaches the source" + (f" ({lost.detail.removeprefix('the answer is lost: ')})"
                                                     if lost else "")
    return text


def render_text(report: Any) -> str:
    """`report` is a netsim.trace.api.TraceReport."""
    d = report.destination
    port = f":{d.port}" if d.port is not None else ""
    lines = [
        f"trace {report.source.label} ({report.source.ip}:{report.sport}) -> {d.label}{port} "
        f"({d.ip}{port}/{d.protocol})",
        "",
    ]
    sim = report.simulated
    others = [b for b in report.branches if b is not sim]
    lines.append(
        "simulated"
        + (
            f" (1 of {len(report.branches)} branches, p={sim.probability:.2f})"
            if sim is not None and others
            else ""
        )
        + ":"
    )
    for h in sim.hops if sim else []:
        lines.append("  " + h.text())
    if sim is not None:
        lines.append(f"  = {_verdict_line(sim)}")
    for b in others:
        lines.append(f"  other branch p={b.probability:.2f}: {_verdict_line(b)}")
    if report.observed is not None:
        lines += ["", "observed:"]
        lines += ["  " + h.text() for h in report.observed.hops]
        lines.append(f"  = {_verdict_line(report.observed)}")
    lines.append("")
    lines.append(f"verdict: {report.verdict}" + (f" (policy {report.policy})" if report.policy else ""))
    if report.observed is not None:
        if report.agree:
            lines.append("simulation and observation agree")
        else:
            lines.append("DISAGREEMENT between simulation and observation:")
            lines += [f"  - {x}" for x in report.disagreements]
    for n in report.notes:
        lines.append(f"note: {n}")
    lines.append(f"({report.elapsed * 1000:.0f} ms)")
    return "\n".join(lines)
