"""DaemonSet, StatefulSet, Job and CronJob controllers, driven through the loop with a fake kubelet."""

from __future__ import annotations

import datetime as dt

from netsim.controlplane import objects as o
from netsim.controlplane.loop import PodState
from netsim.controlplane.workloads import job_name_for

DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {role: worker}
      containers: [{name: c, image: agent:1}]
"""


def by_node(h, **labels):
    return sorted((o.node_name(p), o.name(p)) for p in h.pods(**labels))


def test_daemonset_one_pod_per_eligible_node_and_follows_nodes(h):
    h.add_nodes([{"name": "n1", "labels": {"role": "worker"}}, {"name": "n2", "labels": {"role": "worker"}},
                 {"name": "cp", "labels": {"role": "worker"},
                  "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
                 {"name": "other"}])
    h.apply(DS)
    assert h.converge().converged
    assert [n for n, _ in by_node(h)] == ["n1", "n2"]
    ds = h.get("DaemonSet", "agent")
    assert ds["status"]["desiredNumberScheduled"] == 2 and ds["status"]["numberReady"] == 2
    pod = h.pods()[0]
    keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    h.add_nodes([{"name": "n5", "labels": {"role": "worker"}}])  # a node added
    assert h.converge().converged
    assert [n for n, _ in by_node(h)] == ["n1", "n2", "n5"]
    # a node relabelled out of the selector, another removed
    n2 = h.get("Node", "n2", ns=None)
    n2["metadata"]["labels"]["role"] = "db"
    h.store.update(n2)
    h.store.delete("Node", None, "n5")
    assert h.converge().converged
    assert [n for n, _ in by_node(h)] == ["n1"]


def test_daemonset_pod_survives_not_ready_node(h):
    h.add_nodes([{"name": "n1", "labels": {"role": "worker"}}, {"name": "n2", "labels": {"role": "worker"}}])
    h.apply(DS)
    h.converge()
    before = by_node(h)
    h.kubelet.failed_nodes.add("n2")
    h.clock.advance(60)
    h.converge(timeout=30)
    assert by_node(h) == before  # tolerates unreachable:NoExecute for ever
    n2 = h.get("Node", "n2", ns=None)
    assert {t["key"] for t in n2["spec"]["taints"]} == {"node.kubernetes.io/unreachable"}


def test_daemonset_rolling_update_replaces_pods(h):
    h.add_nodes([{"name": f"n{i}", "labels": {"role": "worker"}} for i in range(3)])
    h.apply(DS)
    h.converge()
    h.apply(DS.replace("agent:1", "agent:2"))
    most_unavailable = []

    def check(store):
        pods = [p for p in h.pods() if o.is_active(p)]
        most_unavailable.append(3 - sum(1 for p in pods if o.is_ready(p)))

    assert h.converge(on_pass=check).converged
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"agent:2"}
    assert len(h.pods()) == 3 and max(most_unavailable) == 1


STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  POLICY
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: db:1}]}
"""


def test_statefulset_ordered_ready_creation_and_deletion(h):
    h.add_nodes(2)
    h.kubelet.not_ready = {"default/db-0"}
    h.apply(STS.replace("POLICY", ""))
    h.converge(timeout=3)
    assert h.names() == ["db-0"]  # db-1 waits for db-0 to be Ready
    h.kubelet.not_ready = set()
    order = []

    def watch(store):
        for n in h.names():
            if n not in order:
                order.append(n)

    assert h.converge(on_pass=watch).converged
    assert h.names() == ["db-0", "db-1", "db-2"] and order == ["db-0", "db-1", "db-2"]
    p = h.get("Pod", "db-1")
    assert p["spec"]["hostname"] == "db-1" and p["spec"]["subdomain"] == "db"
    assert o.labels(p)["statefulset.kubernetes.io/pod-name"] == "db-1"
    # scale down: highest ordinal first, one at a time
    sts = h.get("StatefulSet", "db")
    sts["spec"]["replicas"] = 1
    h.store.update(sts)
    gone = []

    def watch_down(store):
        for n in ("db-2", "db-1"):
            if n not in h.names() and n not in gone:
                gone.append(n)
        assert len(h.names()) >= 1

    assert h.converge(on_pass=watch_down).converged
    assert h.names() == ["db-0"] and gone == ["db-2", "db-1"]


def test_statefulset_parallel_creates_all_at_once(h):
    h.add_nodes(1)
    h.kubelet.not_ready = {"default/db-0", "default/db-1", "default/db-2"}
    h.apply(STS.replace("POLICY", "podManagementPolicy: Parallel"))
    h.converge(timeout=2)
    assert h.names() == ["db-0", "db-1", "db-2"]


def test_statefulset_rolling_update_from_highest_ordinal(h):
    h.add_nodes(1)
    h.apply(STS.replace("POLICY", ""))
    h.converge()
    order = []

    def watch(store):
        for p in h.pods():
            if p["spec"]["containers"][0]["image"] == "db:2" and o.name(p) not in order:
                order.append(o.name(p))

    h.apply(STS.replace("POLICY", "").replace("db:1", "db:2"))
    assert h.converge(on_pass=watch).converged
    assert order == ["db-2", "db-1", "db-0"]


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  completions: 4
  parallelism: 2
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"""


def test_job_runs_to_completions_with_parallelism(h):
    h.add_nodes(2)
    peak = []
    h.kubelet.rule = lambda pod: PodState(ready=False, phase="Succeeded")
    h.apply(JOB)

    def watch(store):
        peak.append(sum(1 for p in h.pods() if o.is_active(p)))

    assert h.converge(on_pass=watch).converged
    job = h.get("Job", "work")
    assert job["status"]["succeeded"] == 4 and job["status"]["active"] == 0
    assert o.condition(job, "Complete")["status"] == "True"
    assert max(peak) <= 2
    assert len(h.pods()) == 4
    assert all(o.labels(p)["batch.kubernetes.io/job-name"] == "work" for p in h.pods())


def test_job_backoff_limit(h):
    h.add_nodes(1)
    h.kubelet.rule = lambda pod: PodState(ready=False, phase="Failed")
    h.apply(JOB.replace("parallelism: 2", "parallelism: 1"))
    assert h.converge().converged
    job = h.get("Job", "work")
    failed = o.condition(job, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 3  # backoffLimit 2: the third failure ends it
    assert o.condition(job, "Complete") is None


CRON = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/5 * * * *"
  concurrencyPolicy: POLICY
  successfulJobsHistoryLimit: 2
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
"""


def _cron_harness(h, policy, finish=True):
    h.clock.t = dt.datetime(2025, 1, 1, 0, 1, tzinfo=dt.UTC).timestamp()
    h.add_nodes(1)
    h.kubelet.rule = (lambda pod: PodState(ready=False, phase="Succeeded")) if finish else \
        (lambda pod: PodState(ready=True))
    h.apply(CRON.replace("POLICY", policy))


def test_cronjob_creates_jobs_on_schedule_and_keeps_history(h):
    _cron_harness(h, "Allow")
    h.converge()
    assert h.store.list("Job") == []
    for _ in range(4):
        h.clock.advance(300)
        h.converge()
    jobs = sorted(o.name(j) for j in h.store.list("Job"))
    t1 = dt.datetime(2025, 1, 1, 0, 15, tzinfo=dt.UTC)
    t2 = dt.datetime(2025, 1, 1, 0, 20, tzinfo=dt.UTC)
    assert jobs == [job_name_for("tick", t1), job_name_for("tick", t2)]  # history limit 2
    assert jobs[0] == f"tick-{int(t1.timestamp()) // 60}"
    cj = h.get("CronJob", "tick")
    assert cj["status"]["lastScheduleTime"] == "2025-01-01T00:20:00Z"


def test_cronjob_forbid_skips_while_running_and_replace_replaces(h):
    _cron_harness(h, "Forbid", finish=False)
    h.clock.advance(300)
    h.converge()
    h.clock.advance(300)
    h.converge()
    assert len(h.store.list("Job")) == 1

    from .conftest import Harness
    h2 = Harness()
    _cron_harness(h2, "Replace", finish=False)
    h2.clock.advance(300)
    h2.converge()
    first = [o.name(j) for j in h2.store.list("Job")]
    h2.clock.advance(300)
    h2.converge()
    second = [o.name(j) for j in h2.store.list("Job")]
    assert len(first) == len(second) == 1 and first != second
    assert all(o.owned_by(p, h2.store.list("Job")[0]) for p in h2.pods())


def test_cronjob_allow_runs_concurrently(h):
    _cron_harness(h, "Allow", finish=False)
    for _ in range(3):
        h.clock.advance(300)
        h.converge()
    assert len(h.store.list("Job")) == 3
    assert len(h.get("CronJob", "tick")["status"]["active"]) == 3
