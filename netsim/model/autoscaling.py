"""`spec.autoscaling` of the Cluster spec: kube-controller-manager's HorizontalPodAutoscaler flags and
metrics-server's resolution, with their upstream defaults (durations as Go durations: "15s", "5m").

    autoscaling:
      syncPeriod: 15s                # --horizontal-pod-autoscaler-sync-period
      downscaleStabilization: 5m     # --horizontal-pod-autoscaler-downscale-stabilization
      tolerance: 0.1                 # --horizontal-pod-autoscaler-tolerance
      cpuInitializationPeriod: 5m    # --horizontal-pod-autoscaler-cpu-initialization-period
      initialReadinessDelay: 30s     # --horizontal-pod-autoscaler-initial-readiness-delay
      metricResolution: 15s          # metrics-server --metric-resolution

Scenarios shorten them to tell an autoscaling story in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from netsim.model.kubeproxy import duration_fields
from netsim.model.meta import Fields

_KEYS = {"syncPeriod": "sync_period", "downscaleStabilization": "downscale_stabilization",
         "cpuInitializationPeriod": "cpu_initialization_period", "initialReadinessDelay": "initial_readiness_delay",
         "metricResolution": "metric_resolution"}


@dataclass(frozen=True)
class AutoscalingSpec:
    sync_period: float = 15.0
    downscale_stabilization: float = 300.0
    tolerance: float = 0.1
    cpu_initialization_period: float = 300.0
    initial_readiness_delay: float = 30.0
    metric_resolution: float = 15.0

    def to_dict(self) -> dict[str, Any]:
        """Only what differs from the defaults (so a default spec prints nothing)."""
        out: dict[str, Any] = {}
        default = AutoscalingSpec()
        for key, attr in _KEYS.items():
            if getattr(self, attr) != getattr(default, attr):
                out[key] = f"{getattr(self, attr):g}s"
        if self.tolerance != default.tolerance:
            out["tolerance"] = self.tolerance
        return out

    def as_kwargs(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_autoscaling(f: Fields) -> AutoscalingSpec:
    f.reject_unknown({*_KEYS, "tolerance"})
    kw = duration_fields(f, _KEYS, zero_ok=("downscaleStabilization", "initialReadinessDelay"))
    tol = f.get("tolerance")
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
            raise f.error("tolerance", f"must be a number in [0, 1), got {tol!r}")
        kw["tolerance"] = float(tol)
    return AutoscalingSpec(**kw)
