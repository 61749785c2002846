"""DaemonSet, StatefulSet, Job and CronJob controllers (our own code after kubernetes
pkg/controller/{daemon,statefulset,job,cronjob}).

DaemonSet: one pod per eligible node, eligibility as nodeShouldRunDaemonPod: the template's nodeSelector /
required node affinity match the node, and its taints are tolerated with the tolerations the DaemonSet
controller adds to every daemon pod (util.AddOrUpdateDaemonPodTolerations: not-ready and unreachable
NoExecute, disk/memory/pid-pressure and unschedulable NoSchedule, network-unavailable for hostNetwork).
A node that should run a pod but has none gets one only if NoSchedule taints are tolerated too; an existing
pod is kept while NoExecute taints are tolerated. Pods are pinned with a matchFields metadata.name affinity
(as the controller does since 1.12) and bound by the scheduler. Pods on nodes that no longer qualify are
deleted; a template change replaces pods (RollingUpdate, maxUnavailable at a time; OnDelete waits).

StatefulSet: pods `<sts>-<ordinal>` with hostname/subdomain for the governing service, labels
statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index. OrderedReady creates ordinal i only
when 0..i-1 are Running and Ready, and deletes from the highest ordinal one at a time; Parallel does all at
once. Failed pods are deleted and recreated. RollingUpdate replaces pods whose revision differs, highest
ordinal first, down to the partition, one at a time after the previous is Ready.

Job: pods `<job>-<5 chars>` with the batch.kubernetes.io job-name/controller-uid labels; keeps
min(parallelism, completions - succeeded) pods active; counts Succeeded and Failed pods; Complete when
succeeded reaches completions (or, without completions, any pod succeeded and none is active); Failed with
reason BackoffLimitExceeded when failed pods exceed backoffLimit, DeadlineExceeded after
activeDeadlineSeconds. (No exponential back-off delay between retries.)

CronJob: at each scheduled time (the model's CronSchedule, evaluated in spec.timeZone or UTC) a Job
`<cronjob>-<scheduled time in minutes since the epoch>` (getTimeHashInMinutes); only the most recent missed
time runs, skipped if older than startingDeadlineSeconds; concurrencyPolicy Allow / Forbid (skip while a Job
is active, lastScheduleTime unchanged so it runs later) / Replace (delete the active Jobs); finished Jobs
beyond successful/failedJobsHistoryLimit are deleted oldest first.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from netsim.controlplane import objects as o
from netsim.controlplane.deployment import compute_hash
from netsim.controlplane.events import Event
from netsim.controlplane.nodes import NOT_READY, UNREACHABLE
from netsim.controlplane.replicaset import pods_of
from netsim.controlplane.scheduler import matches_node_selector_and_affinity, tolerated, tolerations_of
from netsim.controlplane.state import Action, Context, Snapshot, status_action
from netsim.model.cron import CronError, parse_cron
from netsim.store import parse_time, rfc3339

REVISION_LABEL = "controller-revision-hash"
DS_TEMPLATE_GENERATION = "pod-template-generation"


def _template_hash(obj: dict[str, Any]) -> str:
    return compute_hash((obj.get("spec") or {}).get("template") or {})


# ------------------------------------------------------------------------------------------ DaemonSet

def daemon_tolerations(template_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's tolerations plus those the DaemonSet controller adds."""
    out = list(template_spec.get("tolerations") or [])
    added = [(NOT_READY, "NoExecute"), (UNREACHABLE, "NoExecute"), ("node.kubernetes.io/disk-pressure", "NoSchedule"),
             ("node.kubernetes.io/memory-pressure", "NoSchedule"), ("node.kubernetes.io/pid-pressure", "NoSchedule"),
             ("node.kubernetes.io/unschedulable", "NoSchedule")]
    if template_spec.get("hostNetwork"):
        added.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for k, effect in added:
        t = {"key": k, "operator": "Exists", "effect": effect}
        if t not in out:
            out.append(t)
    return out


def _daemon_pod_spec(ds: dict[str, Any], node: str) -> dict[str, Any]:
    spec = copy.deepcopy(ds["spec"]["template"].get("spec") or {})
    spec["tolerations"] = daemon_tolerations(spec)
    # util.ReplaceDaemonSetPodNodeNameNodeAffinity: pin to the node with matchFields.
    spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return spec


def node_should_run(ds: dict[str, Any], node: dict[str, Any]) -> tuple[bool, bool]:
    """(should run a new pod here, may keep an existing one) - nodeShouldRunDaemonPod."""
    tspec = (ds["spec"].get("template") or {}).get("spec") or {}
    probe = {"spec": {**tspec, "affinity": tspec.get("affinity") or {}}}
    if not matches_node_selector_and_affinity(probe, o.name(node), o.labels(node)):
        return False, False
    tols = tolerations_of({"spec": {"tolerations": daemon_tolerations(tspec)}})
    taints = (node.get("spec") or {}).get("taints") or []
    keep = all(tolerated(t, tols) for t in taints if t.get("effect") == "NoExecute")
    run = keep and all(tolerated(t, tols) for t in taints if t.get("effect") == "NoSchedule")
    return run, keep


def _pinned_node(pod: dict[str, Any]) -> str | None:
    if o.node_name(pod):
        return o.node_name(pod)
    na = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    for term in (na.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return None


def reconcile_daemonset(ds: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    actor = "controller/daemonset"
    if o.is_terminating(ds):
        return []
    pods, actions = pods_of(snap, ds)
    active = [p for p in pods if o.is_active(p)]
    by_node: dict[str, list[dict]] = {}
    for p in active:
        by_node.setdefault(_pinned_node(p) or "", []).append(p)
    rev = _template_hash(ds)
    taken = snap.names("Pod", o.namespace(ds))
    desired = scheduled = ready = updated = misscheduled = available = 0
    strategy = ds["spec"].get("updateStrategy") or {}
    max_unavailable = 1
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        nodes_total = len(snap.of("Node"))
        max_unavailable = max(o.int_or_percent((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                                               nodes_total, round_up=True), 1)
    stale: list[dict] = []
    for node in snap.of("Node"):
        n = o.name(node)
        run, keep = node_should_run(ds, node)
        here = by_node.pop(n, [])
        if run or (keep and here):
            desired += 1
        if here and not keep:
            misscheduled += len(here)
            actions += [Action("terminate", p, Event(ctx.now, actor, o.ref(ds), "SuccessfulDelete",
                                                     f"Deleted pod: {o.name(p)}")) for p in here]
            continue
        if not here and run:
            pod_name = o.generate_name(o.name(ds) + "-", ctx.rng, taken)
            taken.add(pod_name)
            template = {**ds["spec"]["template"], "spec": _daemon_pod_spec(ds, n)}
            pod = o.pod_from_template(template, pod_name=pod_name, namespace_=o.namespace(ds), owner=ds,
                                      extra_labels={REVISION_LABEL: rev})
            actions.append(Action("create", pod, Event(ctx.now, actor, o.ref(ds), "SuccessfulCreate",
                                                       f"Created pod: {pod_name}")))
            continue
        if here:
            scheduled += 1
            extra = sorted(here, key=o.creation_order)[1:]
            actions += [Action("terminate", p) for p in extra]
            p = here[0]
            ready += o.is_ready(p)
            available += o.is_ready(p)
            if o.labels(p).get(REVISION_LABEL) == rev:
                updated += 1
            else:
                stale.append(p)
    for leftover in by_node.values():  # pods for nodes that are gone
        actions += [Action("terminate", p) for p in leftover]
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and stale:
        unavailable = desired - available
        budget = max_unavailable - max(unavailable, 0)
        for p in sorted(stale, key=lambda p: (o.is_ready(p), o.name(p)))[:max(budget, 0)]:
            actions.append(Action("terminate", p, Event(ctx.now, actor, o.ref(ds), "SuccessfulDelete",
                                                        f"Deleted pod: {o.name(p)}")))
    status = {"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
              "numberMisscheduled": misscheduled, "numberReady": ready, "numberAvailable": available,
              "numberUnavailable": max(desired - available, 0), "updatedNumberScheduled": updated,
              "observedGeneration": o.meta(ds).get("generation", 1)}
    a = status_action(ds, status)
    return actions + ([a] if a else [])


def reconcile_daemonsets(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for ds in snap.of("DaemonSet") for a in reconcile_daemonset(ds, snap, ctx)]


# ---------------------------------------------------------------------------------------- StatefulSet

def _ordinal(sts: dict[str, Any], pod: dict[str, Any]) -> int | None:
    prefix = o.name(sts) + "-"
    tail = o.name(pod)[len(prefix):] if o.name(pod).startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def _sts_pod(sts: dict[str, Any], ordinal: int, rev: str) -> dict[str, Any]:
    pod_name = f"{o.name(sts)}-{ordinal}"
    pod = o.pod_from_template(sts["spec"]["template"], pod_name=pod_name, namespace_=o.namespace(sts), owner=sts,
                              extra_labels={REVISION_LABEL: rev, "statefulset.kubernetes.io/pod-name": pod_name,
                                            "apps.kubernetes.io/pod-index": str(ordinal)})
    pod["spec"]["hostname"] = pod_name
    if sts["spec"].get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    return pod


def reconcile_statefulset(sts: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    actor = "controller/statefulset"
    if o.is_terminating(sts):
        return []
    spec = sts["spec"]
    replicas = int(spec.get("replicas", 1))
    start = int((spec.get("ordinals") or {}).get("start", 0))
    parallel = spec.get("podManagementPolicy") == "Parallel"
    rev = _template_hash(sts)
    pods, actions = pods_of(snap, sts)
    by_ord: dict[int, dict] = {}
    for p in pods:
        i = _ordinal(sts, p)
        if i is not None:
            by_ord[i] = p
    wanted = range(start, start + replicas)

    def healthy(p: dict) -> bool:
        return o.phase(p) == "Running" and o.is_ready(p) and not o.is_terminating(p)

    blocked = False
    for i in wanted:
        p = by_ord.get(i)
        if p is None:
            if not blocked or parallel:
                pod = _sts_pod(sts, i, rev)
                actions.append(Action("create", pod, Event(ctx.now, actor, o.ref(sts), "SuccessfulCreate",
                                                           f"create Pod {o.name(pod)} in StatefulSet "
                                                           f"{o.name(sts)} successful")))
            blocked = True
            continue
        if o.phase(p) == "Failed" and not o.is_terminating(p):
            actions.append(Action("terminate", p, Event(ctx.now, actor, o.ref(sts), "RecreatingFailedPod",
                                                        f"StatefulSet {o.key(sts)} is recreating failed Pod "
                                                        f"{o.name(p)}")))
            blocked = True
            continue
        if not healthy(p):
            blocked = True
    condemned = sorted((i for i in by_ord if i not in wanted), reverse=True)
    if condemned:
        all_healthy = all(healthy(by_ord[i]) for i in wanted if i in by_ord) and not blocked
        for i in condemned:
            p = by_ord[i]
            if o.is_terminating(p):
                if not parallel:
                    break
                continue
            if not parallel and not all_healthy:
                break
            actions.append(Action("terminate", p, Event(ctx.now, actor, o.ref(sts), "SuccessfulDelete",
                                                        f"delete Pod {o.name(p)} in StatefulSet {o.name(sts)} "
                                                        "successful")))
            if not parallel:
                break
    us = spec.get("updateStrategy") or {}
    if us.get("type", "RollingUpdate") == "RollingUpdate" and not condemned and not blocked:
        partition = int((us.get("rollingUpdate") or {}).get("partition") or 0)
        for i in sorted(wanted, reverse=True):
            p = by_ord.get(i)
            if p is None or i < start + partition:
                break
            if o.labels(p).get(REVISION_LABEL) != rev:
                actions.append(Action("terminate", p, Event(ctx.now, actor, o.ref(sts), "SuccessfulDelete",
                                                            f"delete Pod {o.name(p)} for update")))
                break
    active = [p for p in pods if o.is_active(p)]
    status = {"observedGeneration": o.meta(sts).get("generation", 1), "replicas": len(active),
              "readyReplicas": sum(1 for p in active if o.is_ready(p)),
              "availableReplicas": sum(1 for p in active if o.is_ready(p)),
              "currentReplicas": sum(1 for p in active if o.labels(p).get(REVISION_LABEL) == rev),
              "updatedReplicas": sum(1 for p in active if o.labels(p).get(REVISION_LABEL) == rev),
              "currentRevision": f"{o.name(sts)}-{rev}", "updateRevision": f"{o.name(sts)}-{rev}"}
    a = status_action(sts, status)
    return actions + ([a] if a else [])


def reconcile_statefulsets(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for s in snap.of("StatefulSet") for a in reconcile_statefulset(s, snap, ctx)]


# ------------------------------------------------------------------------------------------------ Job

def job_finished(job: dict[str, Any]) -> str | None:
    """"Complete" or "Failed" when the Job has that condition True, else None."""
    for typ in ("Complete", "Failed"):
        c = o.condition(job, typ)
        if c is not None and c.get("status") == "True":
            return typ
    return None


def reconcile_job(job: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    actor = "controller/job"
    spec = job["spec"]
    pods = snap.owned(job, "Pod")
    active = [p for p in pods if o.is_active(p)]
    succeeded = sum(1 for p in pods if o.phase(p) == "Succeeded")
    failed = sum(1 for p in pods if o.phase(p) == "Failed")
    status = copy.deepcopy(job.get("status") or {})
    status.setdefault("startTime", rfc3339(ctx.now))
    actions: list[Action] = []
    finished = job_finished(job)
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1))
    if not finished and not spec.get("suspend"):
        backoff = int(spec.get("backoffLimit", 6))
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status["startTime"]) or ctx.now
        fail_reason = None
        if failed > backoff:
            fail_reason = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and ctx.now - started >= deadline:
            fail_reason = ("DeadlineExceeded", "Job was active longer than specified deadline")
        done = (succeeded >= completions) if completions is not None else (succeeded > 0 and not active)
        if fail_reason:
            actions += [Action("terminate", p) for p in active]
            o.set_condition(status, "Failed", "True", ctx.now, *fail_reason)
            actions_event = Event(ctx.now, actor, o.ref(job), fail_reason[0], fail_reason[1], type="Warning")
            status["active"] = 0
            finished = "Failed"
        elif done:
            actions += [Action("terminate", p) for p in active]  # leftovers of a work queue
            o.set_condition(status, "Complete", "True", ctx.now)
            status["completionTime"] = rfc3339(ctx.now)
            actions_event = Event(ctx.now, actor, o.ref(job), "Completed", "Job completed")
            finished = "Complete"
        else:
            actions_event = None
            want = parallelism if completions is None else min(parallelism, completions - succeeded)
            if completions is None and succeeded:
                want = 0
            missing = want - len(active)
            taken = snap.names("Pod", o.namespace(job))
            job_labels = {"batch.kubernetes.io/controller-uid": o.uid(job), "batch.kubernetes.io/job-name": o.name(job),
                          "controller-uid": o.uid(job), "job-name": o.name(job)}
            for _ in range(max(missing, 0)):
                pod_name = o.generate_name(o.name(job) + "-", ctx.rng, taken)
                taken.add(pod_name)
                pod = o.pod_from_template(spec["template"], pod_name=pod_name, namespace_=o.namespace(job),
                                          owner=job, extra_labels=job_labels)
                actions.append(Action("create", pod, Event(ctx.now, actor, o.ref(job), "SuccessfulCreate",
                                                           f"Created pod: {pod_name}")))
            for p in sorted(active, key=o.creation_order, reverse=True)[:max(-missing, 0)]:
                actions.append(Action("terminate", p))
        status["active"] = 0 if finished else len(active)
        status["ready"] = sum(1 for p in active if o.is_ready(p)) if not finished else 0
        status["succeeded"], status["failed"] = succeeded, failed
        a = status_action(job, status)
        if a is not None:
            a.event = actions_event
            actions.append(a)
    return actions


def reconcile_jobs(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for j in snap.of("Job") for a in reconcile_job(j, snap, ctx)]


# -------------------------------------------------------------------------------------------- CronJob

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def job_name_for(cj_name: str, scheduled: dt.datetime) -> str:
    """getJobName: `<cronjob>-<minutes since the epoch>`."""
    return f"{cj_name}-{int(scheduled.timestamp()) // 60}"


def most_recent_schedule(schedule_text: str, since: float, now: float, tz: str | None) -> dt.datetime | None:
    """The latest scheduled time in (since, now], or None."""
    try:
        sched = parse_cron(schedule_text)
    except CronError:
        return None
    zone = ZoneInfo(tz) if tz else dt.UTC
    t = dt.datetime.fromtimestamp(since, zone)
    end = dt.datetime.fromtimestamp(now, zone)
    last = None
    for _ in range(100_000):
        nxt = sched.next_after(t)
        if nxt is None or nxt > end:
            break
        last, t = nxt, nxt
    return last


def reconcile_cronjob(cj: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    actor = "controller/cronjob"
    spec = cj["spec"]
    jobs = sorted(snap.owned(cj, "Job"), key=o.creation_order)
    running = [j for j in jobs if not job_finished(j) and not o.is_terminating(j)]
    actions: list[Action] = []
    status = copy.deepcopy(cj.get("status") or {})
    for typ, limit_key, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                    ("Failed", "failedJobsHistoryLimit", 1)):
        done = [j for j in jobs if job_finished(j) == typ]
        limit = int(spec.get(limit_key, default))
        for j in done[:max(len(done) - limit, 0)]:
            actions.append(Action("delete", j, Event(ctx.now, actor, o.ref(cj), "SuccessfulDelete",
                                                     f"Deleted job {o.name(j)}")))
    if not spec.get("suspend"):
        since = parse_time(status.get("lastScheduleTime")) or o.created(cj)
        scheduled = most_recent_schedule(spec["schedule"], since, ctx.now, spec.get("timeZone"))
        deadline = spec.get("startingDeadlineSeconds")
        if scheduled is not None and (deadline is None or ctx.now - scheduled.timestamp() <= deadline):
            policy = spec.get("concurrencyPolicy", "Allow")
            name = job_name_for(o.name(cj), scheduled)
            if policy == "Forbid" and running:
                pass  # lastScheduleTime stays: the run happens once the active Job finishes (if in time)
            elif snap.get("Job", o.namespace(cj), name) is None:
                if policy == "Replace":
                    for j in running:
                        actions.append(Action("delete", j, Event(ctx.now, actor, o.ref(cj), "SuccessfulDelete",
                                                                 f"Deleted job {o.name(j)}")))
                    running = []
                jt = spec.get("jobTemplate") or {}
                jmd = jt.get("metadata") or {}
                job = {"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "namespace": o.namespace(cj),
                                    "labels": dict(jmd.get("labels") or {}),
                                    "annotations": {**(jmd.get("annotations") or {}),
                                                    SCHEDULED_TIMESTAMP: scheduled.astimezone(
                                                        dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
                                    "ownerReferences": [o.owner_reference(cj)]},
                       "spec": copy.deepcopy(jt.get("spec") or {})}
                actions.append(Action("create", job, Event(ctx.now, actor, o.ref(cj), "SuccessfulCreate",
                                                           f"Created job {name}")))
                running.append(job)
                status["lastScheduleTime"] = rfc3339(scheduled.timestamp())
            else:
                status["lastScheduleTime"] = rfc3339(scheduled.timestamp())
    status["active"] = [{"kind": "Job", "namespace": o.namespace(j), "name": o.name(j),
                         **({"uid": o.uid(j)} if o.uid(j) else {})} for j in running]
    if not status["active"]:
        del status["active"]
    succeeded = [j for j in jobs if job_finished(j) == "Complete"]
    if succeeded:
        status["lastSuccessfulTime"] = max(((j.get("status") or {}).get("completionTime") or "") for j in succeeded)
    a = status_action(cj, status)
    return actions + ([a] if a else [])


def reconcile_cronjobs(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for cj in snap.of("CronJob") for a in reconcile_cronjob(cj, snap, ctx)]

