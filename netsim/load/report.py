"""What a load run saw, as numbers: outcome counts, latency percentiles, requests per endpoint, a series.

Pure: the generator feeds one `Outcome` per request into a `Recorder`; `Recorder.report()` gives the
`netsim load -o json` document (a contract in docs/architecture.md):

    {"sent", "ok", "refused", "timeout", "reset", "error",
     "latencyMs": {"p50", "p90", "p99", "max"},     # of the requests that succeeded
     "byEndpoint": {"ns/pod": count},               # who answered, most first
     "series": [{"second", "sent", "ok", "refused", "timeout", "reset", "error", "p50", "p99"}],
     "durationS", "rate" (achieved, requests per second), "mode": "open"|"closed", ...}

A request is counted in the second it was *sent* (not when it ended), so a second with a rollout in it
shows its losses where they were caused. Percentiles are nearest-rank (the smallest value with at least p%
of the samples at or below it), the definition load tools such as wrk and vegeta report.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("ok", "refused", "timeout", "reset", "error")


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent (seconds since the run began), how it ended, how long it took."""

    sent_at: float
    outcome: str
    ms: float = 0.0
    endpoint: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


@dataclass
class _Second:
    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


@dataclass
class Recorder:
    """Collects outcomes; cheap per request (a counter bump and an append)."""

    duration: float
    mode: str = "open"
    seconds: dict[int, _Second] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    endpoints: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, o: Outcome) -> None:
        sec = self.seconds.setdefault(int(o.sent_at), _Second())
        sec.counts[o.outcome] += 1
        self.counts[o.outcome] += 1
        if o.outcome == "ok":
            self.latencies.append(o.ms)
            sec.latencies.append(o.ms)
            if o.endpoint:
                self.endpoints[o.endpoint] += 1
        elif o.error:
            self.errors[o.error] += 1

    def merge(self, other: Recorder) -> None:
        """Add another recorder's outcomes (the parts of a run that several client threads made)."""
        for s, sec in other.seconds.items():
            mine = self.seconds.setdefault(s, _Second())
            mine.counts.update(sec.counts)
            mine.latencies.extend(sec.latencies)
        self.counts.update(other.counts)
        self.latencies.extend(other.latencies)
        self.endpoints.update(other.endpoints)
        self.errors.update(other.errors)

    @property
    def sent(self) -> int:
        return sum(self.counts.values())

    def report(self, **extra: Any) -> dict[str, Any]:
        lat = sorted(self.latencies)
        series = []
        last = max(self.seconds, default=-1)
        for s in range(0, max(last + 1, math.ceil(self.duration))):
            sec = self.seconds.get(s, _Second())
            sl = sorted(sec.latencies)
            row: dict[str, Any] = {"second": s, "sent": sum(sec.counts.values())}
            row.update({k: sec.counts.get(k, 0) for k in OUTCOMES})
            row.update({"p50": _ms(percentile(sl, 50)), "p99": _ms(percentile(sl, 99))})
            series.append(row)
        out: dict[str, Any] = {"mode": self.mode, "durationS": round(self.duration, 3), "sent": self.sent}
        out.update({k: self.counts.get(k, 0) for k in OUTCOMES})
        out["rate"] = round(self.sent / self.duration, 1) if self.duration > 0 else 0.0
        out["latencyMs"] = {"p50": _ms(percentile(lat, 50)), "p90": _ms(percentile(lat, 90)),
                            "p99": _ms(percentile(lat, 99)), "max": _ms(lat[-1] if lat else None)}
        out["byEndpoint"] = dict(self.endpoints.most_common())
        out["errors"] = dict(self.errors.most_common(10))
        out["series"] = series
        out.update(extra)
        return out


def render_text(rep: dict[str, Any]) -> str:
    """The human summary `netsim load` prints."""
    lat = rep["latencyMs"]

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"
    lines = [f"{rep['sent']} requests in {rep['durationS']:.1f}s ({rep['rate']:.0f}/s, {rep['mode']} loop) "
             f"to {rep.get('target', '?')}",
             f"  ok {rep['ok']}  refused {rep['refused']}  timeout {rep['timeout']}  reset {rep['reset']}"
             f"  error {rep['error']}",
             f"  latency ms: p50 {f(lat['p50'])}  p90 {f(lat['p90'])}  p99 {f(lat['p99'])}  max {f(lat['max'])}"]
    if rep["byEndpoint"]:
        lines.append("  by endpoint:")
        width = max(len(k) for k in rep["byEndpoint"])
        for ep, n in rep["byEndpoint"].items():
            lines.append(f"    {ep:<{width}}  {n}")
    for err, n in (rep.get("errors") or {}).items():
        lines.append(f"  {n} x {err}")
    bad = [r for r in rep["series"] if r["sent"] != r["ok"]]
    if bad:
        lines.append("  seconds with failures: " + ", ".join(
            f"{r['second']}s ({r['sent'] - r['ok']}/{r['sent']})" for r in bad[:20]))
    return "\n".join(lines)
