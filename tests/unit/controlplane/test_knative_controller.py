"""Knative Serving on the in-memory control plane: a Service becomes a revision Deployment, a selectorless
Service and its EndpointSlice; the KPA scales to zero after the stable window and grace period (the activator
in the path first) and from zero when the activator holds a request; the KPA's arithmetic against Knative's."""

from __future__ import annotations

from netsim.controlplane import objects as o
from netsim.controlplane.events import list_events
from netsim.controlplane.knative import INPUTS_KEY, KnativeInputs
from netsim.controlplane.kpa import RevisionState, Sample, decide, target_value
from netsim.model.knative import AutoscalerConfig, ScalingSettings

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: "6s"}
    spec:
      containers: [{image: hello}]
"""
ACTIVATOR_IP = "172.18.0.2"


def inputs(h, *, pods=None, activator=None) -> None:
    h.memory[INPUTS_KEY] = KnativeInputs(config=AutoscalerConfig(scale_to_zero_grace_period=2.0),
                                         activator_ip=ACTIVATOR_IP, pod_counters=pods or {},
                                         activator_counters=activator or {}, monotonic=h.clock.now())


def slice_addresses(h) -> list[str]:
    sl = h.store.get("EndpointSlice", "default", "hello-ksvc")
    return [e["addresses"][0] for e in sl["endpoints"]]


def replicas(h) -> int:
    return h.store.get("Deployment", "default", "hello-00001-deployment")["spec"]["replicas"]


def test_a_knative_service_scales_to_zero_when_idle_and_from_zero_on_a_held_request(h):

    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(2)
    inputs(h)
    h.apply(KSVC)
    assert h.converge().converged
    svc = h.store.get("Service", "default", "hello")
    assert "selector" not in svc["spec"] and o.owned_by(svc, h.store.get(
        "KnativeService", "default", "hello"))
    assert svc["metadata"]["annotations"]["netsim.io/activator-port"] == "8012"
    pods = h.pods(**{"serving.knative.dev/revision": "hello-00001"})
    assert len(pods) == 1 and replicas(h) == 1
    assert slice_addresses(h) == [pods[0]["status"]["podIP"]]  # serve mode: the pod
    ks = h.store.get("KnativeService", "default", "hello")["status"]
    assert ks["url"] == "http://hello.default.svc.cluster.local" and ks["latestReadyRevisionName"] == "hello-00001"
    assert o.condition({"status": ks}, "Ready")["status"] == "True"
    # idle: within the stable window nothing changes
    for _ in range(2):
        h.clock.advance(2.1)
        inputs(h)
        h.once()
    assert replicas(h) == 1 and slice_addresses(h) == [pods[0]["status"]["podIP"]]
    h.clock.advance(2.1)  # past the 6 s window: inactive, the activator goes into the path, the pod stays
    inputs(h)
    h.once()
    assert replicas(h) == 1 and slice_addresses(h) == [ACTIVATOR_IP]
    h.clock.advance(2.1)  # past the 2 s grace period: to zero
    inputs(h)
    h.once()
    assert replicas(h) == 0
    assert h.converge().converged
    assert h.pods(**{"serving.knative.dev/revision": "hello-00001"}) == []
    assert slice_addresses(h) == [ACTIVATOR_IP]
    assert o.condition(h.store.get("KnativeService", "default", "hello"), "Ready")["status"] == "True"
    # a request held by the activator: from zero to one at once (no 2 s tick to wait for)
    h.clock.advance(0.3)
    inputs(h, activator={"default/hello": (1.0, 0.2, 1)})
    h.once()
    assert replicas(h) == 1
    assert h.converge().converged
    pods = h.pods(**{"serving.knative.dev/revision": "hello-00001"})
    assert len(pods) == 1 and slice_addresses(h) == [pods[0]["status"]["podIP"]]
    reasons = [e.reason for e in list_events(h.store) if e.object == "KnativeService default/hello"]
    assert reasons.index("Inactive") < reasons.index("ScaledToZero") < reasons.index("ScaleFromZero")


def test_deleting_the_knative_service_removes_what_it_made(h):

    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(1)
    h.apply(KSVC)
    assert h.converge().converged
    h.store.delete("KnativeService", "default", "hello")
    assert h.converge().converged
    assert h.store.get("Deployment", "default", "hello-00001-deployment") is None
    assert h.store.get("Service", "default", "hello") is None


def test_kpa_target_and_desired_pods_follow_knative():
    cfg = AutoscalerConfig()
    assert target_value(ScalingSettings(), cfg) == 70.0  # 100 x 70 %
    assert target_value(ScalingSettings(target=10), cfg) == 7.0
    assert target_value(ScalingSettings(), cfg, container_concurrency=10) == 7.0
    assert target_value(ScalingSettings(metric="rps"), cfg) == 140.0
    st = RevisionState(active_since=0.0)
    s = ScalingSettings(target=10)  # 7 per pod
    d = decide(st, Sample(10.0, 10.0, 20.0, 100), 10.0, 1, s, cfg)
    # ceil(20 / 7) = 3, within max-scale-up-rate 1000 x 1; the panic window agrees: 3/1 >= 200 % -> panic
    assert d.desired == 3 and d.panic
    d = decide(st, Sample(12.0, 2.0, 0.0, 0), 12.0, 3, s, cfg)
    assert d.desired == 3  # panicking: never down
    st = RevisionState(active_since=0.0, desired=8)
    d = decide(st, Sample(10.0, 10.0, 0.7, 10), 10.0, 8, s, cfg)
    assert d.desired == 4  # max-scale-down-rate 2: floor(8 / 2)
    d = decide(RevisionState(), Sample(1.0, 1.0, 500.0, 0), 1.0, 1, ScalingSettings(target=10, max_scale=5), cfg)
    assert d.desired == 5  # max-scale
    d = decide(RevisionState(active_since=0.0), Sample(100.0, 1.0, 0.0, 0), 100.0, 1, ScalingSettings(min_scale=2),
               cfg)
    assert d.desired == 2 and d.active  # min-scale keeps it up and serving


def test_a_new_template_makes_a_new_revision_that_replaces_the_old_one(h):
    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(1)
    inputs(h)
    h.apply(KSVC)
    assert h.converge().converged
    ksvc = h.store.get("KnativeService", "default", "hello")
    ksvc["spec"]["template"]["spec"]["containers"][0]["image"] = "hello:2"
    h.store.update(ksvc)
    inputs(h)
    assert h.converge().converged
    assert h.store.get("Deployment", "default", "hello-00001-deployment") is None
    dep = h.store.get("Deployment", "default", "hello-00002-deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:2"
    st = h.store.get("KnativeService", "default", "hello")["status"]
    assert st["latestCreatedRevisionName"] == st["latestReadyRevisionName"] == "hello-00002"
    pods = h.pods(**{"serving.knative.dev/revision": "hello-00002"})
    assert slice_addresses(h) == [pods[0]["status"]["podIP"]]


def test_get_ksvc_prints_the_knative_columns(h):
    from netsim.printers import table
    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(1)
    h.apply(KSVC)
    assert h.converge().converged
    header, rows = table("KnativeService", h.store.list("KnativeService"))
    assert header == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY", "REASON"]
    assert rows == [["hello", "http://hello.default.svc.cluster.local", "hello-00001", "hello-00001", "True", ""]]


def test_the_knative_service_is_parsed_once_per_version(h, monkeypatch):
    """The controller takes the typed KnativeService from the store's parse cache: converging parses each
    stored version at most once, and passes over an unchanged one parse nothing."""
    from netsim.model import knative

    parsed: list[int] = []
    real = knative.parse_knative_service

    def counting(doc, source):
        parsed.append(int((doc.get("metadata") or {}).get("resourceVersion") or 0))
        return real(doc, source)

    monkeypatch.setattr(knative, "parse_knative_service", counting)
    h.config.node_monitor_grace_seconds = 1e9
    h.add_nodes(1)
    inputs(h)
    h.apply(KSVC)
    parsed.clear()  # apply's own validation of the manifest
    assert h.converge().converged
    stored = [v for v in parsed if v]
    assert stored and len(stored) == len(set(stored)) and parsed == stored  # each version once, all cached
    parsed.clear()
    for _ in range(3):
        h.once()
    assert parsed == []
