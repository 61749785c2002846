"""The picture of a load run: requests per second by outcome, latency, and the cluster's events marked.

matplotlib (Agg, no display) is imported only here and only when a picture is asked for; without it
`--png` is a MissingDependency error that says how to install it, and everything else works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netsim.model.errors import MissingDependency

COLOURS = {"ok": "#2e8b57", "refused": "#d62728", "timeout": "#ff7f0e", "reset": "#9467bd", "error": "#7f7f7f"}
# Event reasons worth a vertical line: the moments a rollout, a scaling or a failure changed the endpoints.
MARKED_REASONS = frozenset({"ScalingReplicaSet", "SuccessfulRescale", "Killing", "NodeNotReady", "NodeFailed",
                            "NodeRestored", "NodeStatusUnknown", "ScaledToZero", "ColdStart",
                            "ScaleFromZero"})


def marks(events: Sequence[Any], t0: float, duration: float) -> list[tuple[float, str]]:
    """(seconds since the run began, label) for the marked events inside the run."""
    out = []
    for ev in events:
        at = ev.time - t0
        if ev.reason in MARKED_REASONS and 0 <= at <= duration + 0.5:
            out.append((at, f"{ev.reason} {ev.object.split(' ', 1)[-1]}"))
    return out


def write_png(report: dict[str, Any], path: str, events: Sequence[tuple[float, str]] = ()) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("--png needs matplotlib: pip install matplotlib "
                                "(scripts/setup.sh installs it with the test extras)") from None
    series = report["series"]
    xs = [r["second"] for r in series]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    base = [0] * len(xs)
    for outcome, colour in COLOURS.items():
        ys = [r[outcome] for r in series]
        if any(ys):
            top.bar(xs, ys, bottom=base, color=colour, label=outcome, width=0.9, align="edge")
            base = [b + y for b, y in zip(base, ys, strict=True)]
    top.set_ylabel("requests / s")
    top.legend(loc="upper right", fontsize=8)
    top.set_title(f"netsim load to {report.get('target', '?')}: {report['sent']} sent, {report['ok']} ok, "
                  f"{report['sent'] - report['ok']} failed")
    for q, style in (("p50", "-"), ("p99", "--")):
        pts = [(r["second"] + 0.5, r[q]) for r in series if r[q] is not None]
        if pts:
            bottom.plot([p[0] for p in pts], [p[1] for p in pts], style, color="#1f77b4", label=q)
    bottom.set_ylabel("latency ms")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right", fontsize=8)
    for at, label in events:
        for ax in (top, bottom):
            ax.axvline(at, color="#444444", linewidth=0.8, linestyle=":")
        top.annotate(label, (at, top.get_ylim()[1]), rotation=90, fontsize=6, va="top", ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
