"""Good manifests of every kind: parsed into typed objects, defaulted as Kubernetes does, round-tripped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from netsim.model.batch import CronJob, Job
from netsim.model.endpointslice import EndpointSlice
from netsim.model.errors import Source
from netsim.model.loader import load_documents, parse_documents, parse_object
from netsim.model.namespace import Namespace
from netsim.model.pod import Pod
from netsim.model.service import Service
from netsim.model.specfields import resolve_int_or_percent
from netsim.model.workloads import DaemonSet, Deployment, ReplicaSet, StatefulSet

GOOD = Path(__file__).parent / "good" / "all-kinds.yaml"


def one(text: str):
    objs = parse_documents(text, "t.yaml")
    assert len(objs) == 1
    return objs[0]


def by_name(objs, kind, name):
    return next(o for o in objs if o.kind == kind and o.meta.name == name)


@pytest.fixture(scope="module")
def objs():
    return load_documents([str(GOOD)])


def test_every_kind_loads(objs):
    kinds = {type(o) for o in objs}
    assert kinds == {Namespace, Pod, Deployment, ReplicaSet, DaemonSet, StatefulSet, Job, CronJob, Service,
                     EndpointSlice}


def test_round_trip_is_stable(objs):
    for o in objs:
        d = o.to_dict()
        again = parse_object(d, Source("roundtrip"))
        assert again == o, o.kind
        assert again.to_dict() == d
        assert d["apiVersion"] == o.api_version and d["kind"] == o.kind


# ------------------------------------------------------------------------------------------- defaults

def test_namespace_gets_name_label_and_is_cluster_scoped(objs):
    ns = by_name(objs, "Namespace", "shop")
    assert ns.meta.namespace is None
    assert ns.meta.labels == {"team": "web", "kubernetes.io/metadata.name": "shop"}


def test_pod_defaults():
    pod = one("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: c
    ports: [{containerPort: 80}]
    readinessProbe: {httpGet: {port: 80}}
""")
    assert pod.meta.namespace == "default"
    s = pod.spec
    assert (s.restart_policy, s.dns_policy, s.termination_grace_period_seconds, s.scheduler_name) == (
        "Always", "ClusterFirst", 30, "default-scheduler")
    assert s.containers[0].ports[0].protocol == "TCP"
    assert s.containers[0].ports[0].host_port is None
    probe = s.containers[0].readiness_probe
    assert (probe.action, probe.port, probe.path, probe.scheme) == ("httpGet", 80, "/", "HTTP")
    assert (probe.period_seconds, probe.timeout_seconds, probe.success_threshold, probe.failure_threshold,
            probe.initial_delay_seconds) == (10, 1, 1, 3, 0)
    assert s.required_node_terms is None


def test_host_network_pod_defaults_host_port_but_template_does_not(objs):
    pod = one("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  hostNetwork: true
  containers: [{name: c, ports: [{containerPort: 9100}]}]
""")
    assert pod.spec.containers[0].ports[0].host_port == 9100
    ds = by_name(objs, "DaemonSet", "agent")
    assert ds.template.spec.host_network


def test_pod_fields_parsed(objs):
    pod = by_name(objs, "Pod", "client")
    c = pod.spec.containers[0]
    assert c.port_by_name("dns").protocol == "UDP"
    assert c.readiness_probe.port == "http" and c.readiness_probe.period_seconds == 2
    assert c.liveness_probe.command == ("cat", "/tmp/ok")
    assert c.env[1].value_from == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert c.extra["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert pod.spec.extra["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert pod.spec.resolve_port("http") == 8080
    assert pod.spec.resolve_port("dns") is None  # named port resolution is per protocol
    assert pod.spec.resolve_port("dns", "UDP") == 53
    assert pod.spec.hostname == "client" and pod.spec.subdomain == "clients"


def test_scheduling_helpers(objs):
    spec = by_name(objs, "Pod", "client").spec
    # nodeName pins the pod; drop it to test the label constraints alone
    assert not spec.node_allowed("node-2", {"disk": "ssd", "zone": "a"})
    from dataclasses import replace
    free = replace(spec, node_name=None)
    assert free.node_allowed("node-2", {"disk": "ssd", "zone": "a"})
    assert not free.node_allowed("node-2", {"disk": "ssd", "zone": "c"})  # no term matches
    assert free.node_allowed("node-9", {"disk": "ssd"})  # second term, by matchFields
    assert not free.node_allowed("node-9", {"disk": "hdd"})  # nodeSelector still applies
    unreach, dedicated = spec.tolerations
    assert unreach.tolerates("node.kubernetes.io/unreachable", None, "NoExecute")
    assert not unreach.tolerates("node.kubernetes.io/unreachable", None, "NoSchedule")
    assert dedicated.operator == "Equal"
    assert dedicated.tolerates("dedicated", "web", "NoSchedule")
    assert not dedicated.tolerates("dedicated", "db", "NoSchedule")


def test_deployment_defaults():
    d = one("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, extra: x}}
    spec: {containers: [{name: web}]}
""")
    assert (d.replicas, d.revision_history_limit, d.min_ready_seconds, d.progress_deadline_seconds, d.paused) == (
        1, 10, 0, 600, False)
    assert (d.strategy.type, d.strategy.max_surge, d.strategy.max_unavailable) == ("RollingUpdate", "25%", "25%")
    assert d.selector.matches(d.template.labels)


def test_deployment_explicit_and_recreate(objs):
    d = by_name(objs, "Deployment", "web")
    assert (d.replicas, d.paused, d.min_ready_seconds) == (4, True, 3)
    assert (d.strategy.max_surge, d.strategy.max_unavailable) == (1, "50%")
    r = one("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web}]}}
""")
    assert r.strategy.type == "Recreate" and r.strategy.max_surge is None
    assert r.to_dict()["spec"]["strategy"] == {"type": "Recreate"}


def test_percent_resolution_rounds_like_the_deployment_controller():
    assert resolve_int_or_percent("25%", 10, round_up=True) == 3
    assert resolve_int_or_percent("25%", 10, round_up=False) == 2
    assert resolve_int_or_percent("25%", 4, round_up=True) == 1
    assert resolve_int_or_percent(2, 10, round_up=True) == 2


def test_replicaset_daemonset_statefulset_defaults(objs):
    rs = by_name(objs, "ReplicaSet", "web-abc")
    assert rs.replicas == 2 and rs.min_ready_seconds == 0
    ds = by_name(objs, "DaemonSet", "agent")
    assert ds.update_strategy.type == "OnDelete" and ds.revision_history_limit == 10
    ds2 = one("""
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: a}
spec:
  selector: {matchLabels: {app: a}}
  template: {metadata: {labels: {app: a}}, spec: {containers: [{name: a}]}}
""")
    assert (ds2.update_strategy.type, ds2.update_strategy.max_unavailable, ds2.update_strategy.max_surge) == (
        "RollingUpdate", 1, 0)
    sts = by_name(objs, "StatefulSet", "db")
    assert (sts.service_name, sts.replicas, sts.pod_management_policy, sts.partition) == ("db", 3, "Parallel", 1)
    assert sts.pod_name(2) == "db-2"
    assert "volumeClaimTemplates" in sts.extra
    sts2 = one("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s}
spec:
  selector: {matchLabels: {app: s}}
  template: {metadata: {labels: {app: s}}, spec: {containers: [{name: s}]}}
""")
    assert (sts2.replicas, sts2.pod_management_policy, sts2.update_strategy, sts2.partition,
            sts2.revision_history_limit) == (1, "OrderedReady", "RollingUpdate", 0, 10)


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec:
%s
  template:
    metadata: {labels: {app: j}}
    spec: {restartPolicy: Never, containers: [{name: c}]}
"""


def test_job_defaults():
    j = one(JOB % "")
    assert (j.spec.completions, j.spec.parallelism, j.spec.backoff_limit, j.spec.completion_mode,
            j.spec.suspend) == (1, 1, 6, "NonIndexed", False)
    assert j.meta.labels == {"app": "j"}  # a Job without labels takes its template's
    work_queue = one(JOB % "  parallelism: 3")
    assert (work_queue.spec.completions, work_queue.spec.parallelism) == (None, 3)
    fixed = one(JOB % "  completions: 4")
    assert (fixed.spec.completions, fixed.spec.parallelism) == (4, 1)


def test_cronjob(objs):
    cj = by_name(objs, "CronJob", "report")
    assert (cj.concurrency_policy, cj.time_zone, cj.successful_jobs_history_limit,
            cj.failed_jobs_history_limit) == ("Forbid", "Europe/Paris", 1, 2)
    assert cj.job_template.labels == {"app": "report"}
    assert cj.job_template.spec.template.spec.restart_policy == "OnFailure"
    # Monday 2024-01-01 is a weekday: next run 02:30 the same day; from Friday evening, Monday.
    assert cj.schedule.next_after(dt.datetime(2024, 1, 1, 0, 0)) == dt.datetime(2024, 1, 1, 2, 30)
    assert cj.schedule.next_after(dt.datetime(2024, 1, 5, 3, 0)) == dt.datetime(2024, 1, 8, 2, 30)


def test_cronjob_defaults():
    cj = one("""
apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template: {spec: {restartPolicy: Never, containers: [{name: c}]}}
""")
    assert (cj.concurrency_policy, cj.suspend, cj.successful_jobs_history_limit, cj.failed_jobs_history_limit) == (
        "Allow", False, 3, 1)
    assert cj.job_template.spec.backoff_limit == 6


def test_service_defaults_clusterip():
    s = one("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
""")
    assert s.type == "ClusterIP" and s.cluster_ip is None and not s.headless
    p = s.ports[0]
    assert (p.protocol, p.target_port, p.name, p.node_port) == ("TCP", 80, None, None)
    assert (s.session_affinity, s.session_affinity_timeout) == ("None", None)
    assert s.external_traffic_policy is None  # only externally accessible services get one
    assert s.internal_traffic_policy == "Cluster"
    assert s.allocate_load_balancer_node_ports is None
    assert s.label_selector.matches({"app": "web", "x": "y"})


def test_service_clusterip_with_external_ips_is_externally_accessible():
    s = one("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80, targetPort: "8080"}]
  externalIPs: [203.0.113.9]
""")
    assert s.external_traffic_policy == "Cluster"
    assert s.ports[0].target_port == 8080  # a quoted number is a number
    assert s.label_selector is None


def test_service_loadbalancer(objs):
    s = by_name(objs, "Service", "web")
    assert s.type == "LoadBalancer"
    assert s.session_affinity == "ClientIP" and s.session_affinity_timeout == 10800
    assert s.external_traffic_policy == "Local" and s.health_check_node_port == 32000
    assert s.allocate_load_balancer_node_ports is True
    assert s.port_by_name("http").target_port == "http"
    assert s.port_by_name("dns").target_port == 53
    assert s.publish_not_ready_addresses
    assert s.extra == {}
    assert (s.ip_family_policy, s.ip_families) == ("SingleStack", ("IPv4",))


def test_headless_and_external_name(objs):
    db = by_name(objs, "Service", "db")
    assert db.headless and db.ports == ()
    up = by_name(objs, "Service", "upstream")
    assert up.external_name == "api.example.com" and up.internal_traffic_policy is None


def test_endpointslice(objs):
    eps = by_name(objs, "EndpointSlice", "web-x1")
    assert eps.service_name == "web" and eps.address_type == "IPv4"
    a, b = eps.endpoints
    assert (a.is_ready, a.is_serving, a.is_terminating) == (True, True, False)
    assert (b.is_ready, b.is_serving, b.is_terminating) == (False, True, True)
    assert a.target_ref == {"kind": "Pod", "namespace": "shop", "name": "web-1"}
    assert [(p.name, p.port, p.protocol) for p in eps.ports] == [("http", 8080, "TCP"), ("", 53, "UDP")]


def test_endpoint_without_conditions_counts_as_ready():
    eps = one("""
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: e}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
""")
    e = eps.endpoints[0]
    assert (e.is_ready, e.is_serving, e.is_terminating) == (True, True, False)
    assert eps.ports == ()


def test_objects_are_frozen(objs):
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        objs[0].meta = None
