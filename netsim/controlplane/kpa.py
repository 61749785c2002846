"""Knative's Pod Autoscaler (KPA) decision, pure: observed concurrency (or requests per second) averaged over
the stable and panic windows against the target, with the scale-up/down rate limits, panic mode, min/max
scale, and the scale-to-zero rules.

Followed (our own code, knative/serving):
- pkg/autoscaler/scaling/autoscaler.go `Scale`: the observed stable value is the average over the stable
  window (60 s, `autoscaling.knative.dev/window`), the panic value over panic-window-percentage (10 %) of it;
  desired pods = ceil(observed / target) for each; `maxScaleUp = ceil(max-scale-up-rate x ready)`,
  `maxScaleDown = floor(ready / max-scale-down-rate)` (ready counted as at least 1); panic mode starts when the
  panic desire reaches panic-threshold-percentage (200 %) of the ready pods and lasts until a stable window
  passes without that, and while panicking the autoscaler never scales down.
- pkg/reconciler/autoscaling/resources/target.go `ResolveMetricTarget`: the target is the annotation (or
  container-concurrency-target-default 100, requests-per-second-target-default 200; containerConcurrency
  when set and lower) times the target utilization (70 %), at least 0.01.
- pkg/reconciler/autoscaling/kpa/scaler.go `handleScaleToZero`: a desire of 0 with min-scale 0 and scale to
  zero enabled first makes the revision inactive (the activator goes into its path) once it has been active
  for a stable window; the last pod is removed once it has been inactive for max(scale-to-zero-grace-period,
  scale-to-zero-pod-retention-period). Until then it keeps 1 pod.
- activator: requests it holds count as concurrency of the revision, so a request to a revision at zero
  makes the desire 1 at the autoscaler's next decision (the activator's stat "poke").

Samples are per interval between two decisions: the concurrency over it (request-seconds served and held,
divided by its length: a time-weighted average of in-flight requests, as queue-proxy reports it) and the
requests served in it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from netsim.model.knative import TARGET_MIN, AutoscalerConfig, ScalingSettings


@dataclass
class Sample:
    at: float  # the interval's end
    length: float
    concurrency: float  # time-weighted average in-flight requests over the interval
    requests: float  # requests finished in the interval


@dataclass
class RevisionState:
    """What the autoscaler remembers about one revision between decisions (kept by the controller)."""

    samples: deque[Sample] = field(default_factory=deque)
    active: bool = True  # serving (the activator is not in its path)
    active_since: float = 0.0
    inactive_since: float | None = None
    panic_since: float | None = None  # when panic mode began (None: not panicking)
    last_panic_trigger: float | None = None
    desired: int = 1


def target_value(settings: ScalingSettings, cfg: AutoscalerConfig, container_concurrency: int = 0) -> float:
    """ResolveMetricTarget: the per-pod value the autoscaler aims for."""
    if settings.metric == "rps":
        target = settings.target or cfg.rps_target_default
    else:
        target = settings.target or cfg.container_concurrency_target_default
        if container_concurrency > 0:
            target = min(target, float(container_concurrency))
    util = settings.target_utilization or cfg.container_concurrency_target_fraction
    return max(TARGET_MIN, target * util)


def _average(samples: deque[Sample], now: float, window: float, metric: str) -> tuple[float, float]:
    """(time-weighted average of the metric over the last `window` seconds, seconds covered)."""
    total = covered = 0.0
    for s in samples:
        start = max(s.at - s.length, now - window)
        span = s.at - start
        if span <= 0:
            continue
        value = s.requests / s.length if metric == "rps" else s.concurrency
        total += value * span
        covered += span
    return (total / covered if covered > 0 else 0.0), covered


@dataclass(frozen=True)
class Decision:
    desired: int
    active: bool  # False: the activator is (to be) in the revision's path
    stable: float  # the observed stable value
    panic: bool
    reason: str = ""


def decide(st: RevisionState, sample: Sample | None, now: float, ready: int, settings: ScalingSettings,
           cfg: AutoscalerConfig, container_concurrency: int = 0) -> Decision:
    """One decision for a revision with `ready` ready pods; updates `st` (its samples and modes)."""
    window = settings.window or cfg.stable_window
    if sample is not None and sample.length > 0:
        st.samples.append(sample)
    while st.samples and st.samples[0].at < now - window:
        st.samples.popleft()
    target = target_value(settings, cfg, container_concurrency)
    stable, _ = _average(st.samples, now, window, settings.metric)
    panic_window = max(1.0, window * cfg.panic_window_percentage / 100.0)
    panic_value, _ = _average(st.samples, now, panic_window, settings.metric)
    ready_count = max(1, ready)
    max_up = math.ceil(cfg.max_scale_up_rate * ready_count)
    max_down = math.floor(ready_count / cfg.max_scale_down_rate) if ready > 0 else 0
    want_stable = min(max(math.ceil(stable / target), max_down), max_up)
    want_panic = min(max(math.ceil(panic_value / target), max_down), max_up)
    if ready > 0 and want_panic / ready_count >= cfg.panic_threshold_percentage / 100.0:
        if st.panic_since is None:
            st.panic_since = now
        st.last_panic_trigger = now
    elif st.panic_since is not None and (st.last_panic_trigger or 0) <= now - window:
        st.panic_since = None
    if st.panic_since is not None:
        desired = max(want_panic, st.desired)  # no scaling down while panicking
    else:
        desired = want_stable
    lo, hi = settings.min_scale, settings.max_scale
    if hi > 0:
        desired = min(desired, hi)
    desired = max(desired, lo)
    reason = ""
    if desired == 0:
        if not cfg.enable_scale_to_zero:
            desired = 1
        elif st.active:
            if now - st.active_since >= window:
                st.active, st.inactive_since = False, now
                reason = "NoTraffic"
            desired = 1  # the last pod stays until the activator has been in the path long enough
        else:
            keep = max(cfg.scale_to_zero_grace_period, settings.retention, cfg.scale_to_zero_pod_retention_period)
            if st.inactive_since is not None and now - st.inactive_since < keep:
                desired = 1
    elif not st.active:
        st.active, st.active_since, st.inactive_since = True, now, None
        reason = "Activated"
    st.desired = desired
    return Decision(desired, st.active, stable, st.panic_since is not None, reason)
