"""The HPA controller against the upstream algorithm: replica calculator cases from kubernetes
pkg/controller/podautoscaler/replica_calculator_test.go, tolerance, stabilization, behavior policies,
min/max, conditions, events and the sync period."""

from __future__ import annotations

from netsim.controlplane import objects as o
from netsim.controlplane.events import list_events
from netsim.model.metrics import ContainerUsage, MetricsView, PodUsage
from netsim.store import parse_time

from .conftest import deployment


def web(replicas: int, cpu: str = "1") -> str:
    return deployment(replicas=replicas).replace(
        "        ports:", f"        resources: {{requests: {{cpu: '{cpu}'}}}}\n        ports:")


def hpa(target: int = 30, lo: int = 1, hi: int = 10, behavior: str = "", metrics: str | None = None) -> str:
    metrics = metrics or f"""
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: {target}}}}}"""
    return f"""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: {lo}
  maxReplicas: {hi}
  metrics:{metrics}
{behavior}"""


def start(h, replicas: int, **kw) -> list[str]:
    # Only controller passes run here (no kubelet heartbeats): keep the nodes from being declared dead.
    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(2)
    h.apply(web(replicas, kw.pop("cpu", "1")))
    assert h.converge().converged
    h.clock.advance(400)  # past the CPU initialization period: every pod's samples count
    return sorted(o.name(p) for p in h.pods())


def usage(h, per_pod: dict[str, float], rps: dict[str, float] | None = None) -> None:
    now = h.clock.now()
    h.metrics = MetricsView({f"default/{n}": PodUsage(now, 15.0, (ContainerUsage("c", cpu, 1e7),),
                                                      (rps or {}).get(n, 0.0)) for n, cpu in per_pod.items()})


def replicas(h) -> int:
    return h.get("Deployment", "web")["spec"]["replicas"]


def reasons(h) -> list[str]:
    return [e.message for e in list_events(h.store) if e.reason == "SuccessfulRescale"]


def test_scale_up_as_upstream_replica_calc_scale_up(h):
    """TestReplicaCalcScaleUp: 300m/500m/700m of 1-core requests at a 30 % target -> 5 replicas, 50 %."""
    pods = start(h, 3)
    usage(h, dict(zip(pods, (0.3, 0.5, 0.7), strict=True)))
    h.apply(hpa(30))
    h.once()
    assert replicas(h) == 5
    st = h.get("HorizontalPodAutoscaler", "web")["status"]
    assert st["desiredReplicas"] == 5 and st["currentReplicas"] == 3
    assert st["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 50, "averageValue": "500m"}}}]
    conds = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert conds == {"AbleToScale": ("True", "SucceededRescale"), "ScalingActive": ("True", "ValidMetricFound"),
                     "ScalingLimited": ("False", "DesiredWithinRange")}
    assert reasons(h) == ["New size: 5; reason: cpu resource utilization (percentage of request) above target"]


def test_unready_pods_count_as_idle_on_a_scale_up(h):
    """TestReplicaCalcScaleUpUnreadyLessScale: one of three pods unready -> 4 replicas, 60 %."""
    pods = start(h, 3)
    p0 = h.get("Pod", pods[0])  # never ready since it started: its sample is left out
    p0["status"]["conditions"] = [c for c in p0["status"]["conditions"] if c["type"] != "Ready"]
    o.set_condition(p0["status"], "Ready", "False", parse_time(p0["status"]["startTime"]))
    h.store.update_status("Pod", "default", pods[0], p0["status"])
    usage(h, dict(zip(pods, (0.3, 0.5, 0.7), strict=True)))
    h.apply(hpa(30))
    from netsim.controlplane.hpa import AutoscalingConfig, HpaMemory, reconcile_hpa
    from netsim.controlplane.state import Context, Snapshot
    snap = Snapshot.load(h.store)
    ctx = Context(now=h.clock.now())
    actions = reconcile_hpa(h.get("HorizontalPodAutoscaler", "web"), snap, ctx, h.metrics, HpaMemory(),
                            AutoscalingConfig())
    scaled = [a.obj for a in actions if a.verb == "update"]
    assert scaled and scaled[0]["spec"]["replicas"] == 4
    status = next(a.obj["status"] for a in actions if a.verb == "status")
    assert status["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 60


def test_scale_down_waits_out_the_stabilization_window(h):
    """TestReplicaCalcScaleDown's numbers (28 % of a 50 % target over 5 pods -> 3), held for 5 minutes."""
    pods = start(h, 5)
    usage(h, dict(zip(pods, (0.5, 0.5, 0.5, 0.5, 0.5), strict=True)))
    h.apply(hpa(50))
    h.once()
    assert replicas(h) == 5  # exactly on target
    usage(h, dict(zip(pods, (0.1, 0.3, 0.5, 0.25, 0.25), strict=True)))
    for _ in range(4):  # every sync for a minute recommends 3, but 5 was recommended 0-60 s ago
        h.clock.advance(15)
        h.once()
        assert replicas(h) == 5
    st = h.get("HorizontalPodAutoscaler", "web")["status"]
    assert {c["type"]: c["reason"] for c in st["conditions"]}["AbleToScale"] == "ScaleDownStabilized"
    h.clock.advance(300)
    h.once()
    assert replicas(h) == 3 and reasons(h)[-1] == "New size: 3; reason: All metrics below target"


def test_within_tolerance_nothing_changes(h):
    pods = start(h, 2)
    usage(h, {pods[0]: 0.53, pods[1]: 0.53})
    h.apply(hpa(50))
    h.once()
    assert replicas(h) == 2 and reasons(h) == []


def test_behavior_policies_limit_the_rate_and_the_sync_period_spaces_the_decisions(h):
    pods = start(h, 2)
    usage(h, {pods[0]: 1.0, pods[1]: 1.0})
    behavior = """  behavior:
    scaleUp:
      policies: [{type: Pods, value: 1, periodSeconds: 60}]"""
    h.apply(hpa(10, hi=20, behavior=behavior))
    h.once()
    assert replicas(h) == 3  # wanted 20, one pod per minute allowed
    st = h.get("HorizontalPodAutoscaler", "web")["status"]
    assert {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}["ScalingLimited"] == \
        ("True", "ScaleUpLimit")
    h.clock.advance(5)
    h.once()
    assert replicas(h) == 3  # within the 15 s sync period: not even looked at
    h.clock.advance(15)
    h.once()
    assert replicas(h) == 3  # synced, but the minute's one pod is spent
    h.clock.advance(45)
    h.once()
    assert replicas(h) == 4


def test_max_replicas_bound_and_below_min_is_raised(h):
    pods = start(h, 1)
    usage(h, {pods[0]: 1.0})
    h.apply(hpa(10, lo=2, hi=3))
    h.once()
    assert replicas(h) == 2 and reasons(h) == ["New size: 2; reason: Current number of replicas below Spec.MinReplicas"]


def test_a_missing_request_deactivates_scaling_with_the_upstream_message(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=1))
    assert h.converge().converged
    h.clock.advance(400)
    [pod] = h.pods()
    usage(h, {o.name(pod): 0.5})
    h.apply(hpa(50))
    h.once()
    st = h.get("HorizontalPodAutoscaler", "web")["status"]
    active = next(c for c in st["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False" and active["reason"] == "FailedGetResourceMetric"
    assert active["message"] == (f"the HPA was unable to compute the replica count: failed to get cpu utilization: "
                                 f"missing request for cpu in container c of Pod {o.name(pod)}")
    assert any(e.reason == "FailedGetResourceMetric" and e.type == "Warning" for e in list_events(h.store))


def test_requests_per_second_as_a_pods_metric(h):
    pods = start(h, 2)
    usage(h, {pods[0]: 0.1, pods[1]: 0.1}, rps={pods[0]: 30.0, pods[1]: 50.0})
    pods_metric = """
  - type: Pods
    pods: {metric: {name: requests_per_second}, target: {type: AverageValue, averageValue: "10"}}"""
    h.apply(hpa(metrics=pods_metric))
    h.once()
    # 40 per pod against 10 wants ceil(4 x 2) = 8; without a behavior at most max(2 x 2, 4) at once
    assert replicas(h) == 4
    st = h.get("HorizontalPodAutoscaler", "web")["status"]
    assert st["desiredReplicas"] == 4 and st["currentMetrics"] == [
        {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"}, "current": {"averageValue": "40"}}}]
    assert {c["type"]: c["reason"] for c in st["conditions"]}["ScalingLimited"] == "ScaleUpLimit"
    assert reasons(h) == ["New size: 4; reason: pods metric requests_per_second above target"]


def test_requests_per_second_of_a_service_as_an_object_metric(h):
    pods = start(h, 2)
    usage(h, {pods[0]: 0.1, pods[1]: 0.1}, rps={pods[0]: 30.0, pods[1]: 50.0})
    h.apply("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
""")
    def object_metric(value: int) -> str:
        return f"""
  - type: Object
    object:
      metric: {{name: requests_per_second}}
      describedObject: {{apiVersion: v1, kind: Service, name: web}}
      target: {{type: Value, value: "{value}"}}"""
    h.apply(hpa(metrics=object_metric(80)))
    h.once()
    assert replicas(h) == 2  # the Service answers 80/s: on target
    st = h.get("HorizontalPodAutoscaler", "web")["status"]
    assert st["currentMetrics"][0]["object"]["current"] == {"value": "80"}
    h.apply(hpa(metrics=object_metric(40)))
    h.clock.advance(15)
    h.once()
    assert replicas(h) == 4 and reasons(h) == ["New size: 4; reason: Service metric requests_per_second above target"]
