"""`spec.timing` of the Cluster spec: how fast changes travel through the emulated cluster.

`instant` (the default, what tests want): every node's kube-proxy sees a change at once and syncs at once
(minSyncPeriod as `spec.kubeProxy` says, 0 by default), a deleted pod keeps serving for one more pass so that
kube-proxy has removed it before its containers are stopped, nodes are declared NotReady 10 s after their
last heartbeat and their pods evicted 4 s later.

`realistic`: a real cluster's clock, so that the failure windows of real clusters show:
- kube-proxy syncs at most as its default allows (`minSyncPeriod` 1 s, bursts of 2; KubeProxyConfiguration
  defaults, pkg/proxy/apis/config/v1alpha1/defaults.go);
- each node's agents (kube-proxy, felix) and the cluster DNS see a change only after a watch delivery delay
  (informer/watch latency; 300 ms by default, +/- 200 ms per node, fixed per node name), so nodes program a
  change at different times (netsim.node.watch_delay);
- the kubelet reacts to a deletion at once, concurrently with the EndpointSlice controller and kube-proxy
  (no extra pass): a pod without a preStop hook gets SIGTERM while some nodes still send it traffic;
- node-monitor-grace-period 40 s (kube-controller-manager default) and the DefaultTolerationSeconds 300 s
  before the pods of an unreachable node are evicted.

A mapping starts from a profile and overrides any of these:

    timing:
      profile: realistic          # or instant
      watchDelay: 300ms
      watchJitter: 200ms
      kubeProxyMinSyncPeriod: 1s  # the larger of this and spec.kubeProxy's minSyncPeriod applies
      kubeletDrainPass: false
      nodeMonitorGracePeriod: 40s
      podEvictionTimeout: 5m
      endpointSliceUpdatesBatchPeriod: 0s   # kube-controller-manager's flag (default 0: off): pod changes
                                            # reach a Service's slices at most this long later, batched
      leaderLeaseDuration: 15s    # the control plane's leader election lease (--leader-elect-lease-duration)

Both profiles keep the EndpointSlice controller's batching off, as kube-controller-manager's default does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from netsim.model.kubeproxy import duration_fields, format_duration
from netsim.model.meta import Fields

PROFILES = ("instant", "realistic")
_DURATIONS = {"watchDelay": "watch_delay", "watchJitter": "watch_jitter",
              "kubeProxyMinSyncPeriod": "kube_proxy_min_sync_period",
              "nodeMonitorGracePeriod": "node_monitor_grace_period", "podEvictionTimeout": "pod_eviction_timeout",
              "endpointSliceUpdatesBatchPeriod": "endpointslice_batch_period",
              "leaderLeaseDuration": "leader_lease_duration"}


@dataclass(frozen=True)
class TimingSpec:
    profile: str = "instant"
    watch_delay: float = 0.0
    watch_jitter: float = 0.0
    kube_proxy_min_sync_period: float = 0.0
    kubelet_drain_pass: bool = True
    node_monitor_grace_period: float = 10.0
    pod_eviction_timeout: float = 4.0
    endpointslice_batch_period: float = 0.0  # --endpointslice-updates-batch-period: 0 (off) upstream too
    # The control plane's leader election lease (kube-controller-manager --leader-elect-lease-duration, 15 s;
    # the renew deadline and retry period follow in its 15:10:2 proportions, netsim.leader.LeaderConfig).
    leader_lease_duration: float = 15.0

    def delay_for(self, node: str) -> float:
        """This node's watch delivery delay: the base +/- the jitter, fixed per node name."""
        if self.watch_jitter <= 0:
            return self.watch_delay
        h = int.from_bytes(hashlib.sha256(node.encode()).digest()[:4], "big") / 0xFFFFFFFF
        return max(0.0, self.watch_delay + (2 * h - 1) * self.watch_jitter)

    def to_dict(self) -> dict[str, Any] | str:
        base = profile(self.profile)
        diff: dict[str, Any] = {}
        for key, attr in _DURATIONS.items():
            if getattr(self, attr) != getattr(base, attr):
                diff[key] = format_duration(getattr(self, attr))
        if self.kubelet_drain_pass != base.kubelet_drain_pass:
            diff["kubeletDrainPass"] = self.kubelet_drain_pass
        return {"profile": self.profile, **diff} if diff else self.profile


def profile(name: str) -> TimingSpec:
    if name == "realistic":
        return TimingSpec("realistic", watch_delay=0.3, watch_jitter=0.2, kube_proxy_min_sync_period=1.0,
                          kubelet_drain_pass=False, node_monitor_grace_period=40.0, pod_eviction_timeout=300.0)
    return TimingSpec()


def parse_timing(f: Fields, key: str = "timing") -> TimingSpec:
    raw = f.get(key)
    if raw is None:
        return TimingSpec()
    if isinstance(raw, str):
        if raw not in PROFILES:
            raise f.error(key, f"{raw!r} is not one of {', '.join(PROFILES)} (or a mapping)")
        return profile(raw)
    tf = f.map(key)
    assert tf is not None
    tf.reject_unknown({"profile", "kubeletDrainPass", *_DURATIONS})
    spec = profile(tf.str("profile", "instant", choices=PROFILES) or "instant")
    kw: dict[str, Any] = duration_fields(tf, _DURATIONS, zero_ok=tuple(k for k in _DURATIONS if k != "leaderLeaseDuration"),
                                               example="500ms")
    drain = tf.bool("kubeletDrainPass")
    if drain is not None:
        kw["kubelet_drain_pass"] = drain
    return replace(spec, **kw)
