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

Each controller reads typed objects from the store's parse cache (netsim.objcache; `Snapshot.typed`,
`typed_owned`): its own object (netsim.model.workloads DaemonSet/StatefulSet, netsim.model.batch Job/CronJob
with their status), the Nodes and the Pods or Jobs it owns, each parsed once per resourceVersion, so a pass
over unchanged workloads parses nothing. Writes stay dicts, at the store edge: pods and Jobs are built from
the stored template dicts, and statuses start from the stored status (a controller's own fields kept).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from netsim.controlplane import objects as o
from netsim.controlplane import podstate as ps
from netsim.controlplane.deployment import compute_hash
from netsim.controlplane.events import Event
from netsim.controlplane.nodes import NOT_READY, UNREACHABLE
from netsim.controlplane.replicaset import typed_pods_of
from netsim.controlplane.scheduler import tolerated
from netsim.controlplane.state import Action, Context, Snapshot, status_action
from netsim.model.batch import CronJob, Job
from netsim.model.cron import CronError, CronSchedule, parse_cron
from netsim.model.node import Node
from netsim.model.pod import Pod, Toleration
from netsim.model.workloads import DaemonSet, StatefulSet
from netsim.store import parse_time, rfc3339

REVISION_LABEL = "controller-revision-hash"
DS_TEMPLATE_GENERATION = "pod-template-generation"


def _template_of(raw: dict[str, Any]) -> dict[str, Any]:
    """A workload's stored pod template (the write edge: pods are built from it as the client wrote it)."""
    return raw["spec"]["template"]


def _template_hash(obj: dict[str, Any]) -> str:
    return compute_hash((obj.get("spec") or {}).get("template") or {})


def _stored(snap: Snapshot, pod: Pod) -> dict[str, Any]:
    """The stored dict of a typed pod, for a write (a terminate reads only its identity)."""
    return snap.get("Pod", pod.meta.namespace, pod.meta.name) or {
        "kind": "Pod", "metadata": {"name": pod.meta.name, "namespace": pod.meta.namespace}}


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


def node_should_run(ds: DaemonSet, node: Node) -> tuple[bool, bool]:
    """(should run a new pod here, may keep an existing one) - nodeShouldRunDaemonPod, on the typed
    DaemonSet and Node: the template's nodeSelector and required node affinity, then its tolerations plus
    those the controller adds against the node's NoExecute and NoSchedule taints."""
    tspec = ds.template.spec
    labels = node.labels
    if any(labels.get(k) != v for k, v in tspec.node_selector.items()):
        return False, False
    if tspec.required_node_terms is not None and not any(t.matches(node.name, labels)
                                                         for t in tspec.required_node_terms):
        return False, False
    tols = [*tspec.tolerations, *_added_tolerations(tspec.host_network)]
    taints = node.spec.taints
    keep = all(tolerated(t, tols) for t in taints if t.effect == "NoExecute")
    run = keep and all(tolerated(t, tols) for t in taints if t.effect == "NoSchedule")
    return run, keep


def _added_tolerations(host_network: bool) -> list[Toleration]:
    return [Toleration(key=t["key"], operator=t["operator"], effect=t["effect"])
            for t in daemon_tolerations({"hostNetwork": host_network})]


def _pinned_node(pod: Pod) -> str | None:
    if pod.spec.node_name:
        return pod.spec.node_name
    for term in pod.spec.required_node_terms or ():
        for f in term.match_fields:
            if f.key == "metadata.name" and f.values:
                return f.values[0]
    return None


def _generation(obj: Any) -> int:
    """metadata.generation as observedGeneration reports it (1 when the store set none)."""
    return obj.meta.generation if obj.meta.generation is not None else 1


def reconcile_daemonset(ds: DaemonSet, raw: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    """One DaemonSet, read typed (`ds`, pods and nodes from the store's parse cache); `raw` is its stored
    dict, for the writes (pods from its template, its status)."""
    actor = "controller/daemonset"
    if ps.terminating(ds):
        return []
    pods, actions = typed_pods_of(snap, ds)
    active = [p for p in pods if ps.active(p)]
    by_node: dict[str, list[Pod]] = {}
    for p in active:
        by_node.setdefault(_pinned_node(p) or "", []).append(p)
    rev = _template_hash(raw)
    taken = snap.names("Pod", ds.meta.namespace)
    desired = scheduled = ready = updated = misscheduled = available = 0
    rolling = ds.update_strategy.type == "RollingUpdate"
    max_unavailable = 1
    if rolling:
        nodes_total = len(snap.of("Node"))
        max_unavailable = max(o.int_or_percent(ds.update_strategy.max_unavailable, nodes_total, round_up=True), 1)
    stale: list[Pod] = []
    for node in snap.typed("Node"):
        n = node.name
        run, keep = node_should_run(ds, node)
        here = by_node.pop(n, [])
        if run or (keep and here):
            desired += 1
        if here and not keep:
            misscheduled += len(here)
            actions += [Action("terminate", _stored(snap, p), Event(ctx.now, actor, o.ref(raw), "SuccessfulDelete",
                                                                    f"Deleted pod: {p.meta.name}")) for p in here]
            continue
        if not here and run:
            pod_name = o.generate_name(ds.meta.name + "-", ctx.rng, taken)
            taken.add(pod_name)
            template = {**_template_of(raw), "spec": _daemon_pod_spec(raw, n)}
            pod = o.pod_from_template(template, pod_name=pod_name, namespace_=ds.meta.namespace, owner=raw,
                                      extra_labels={REVISION_LABEL: rev})
            actions.append(Action("create", pod, Event(ctx.now, actor, o.ref(raw), "SuccessfulCreate",
                                                       f"Created pod: {pod_name}")))
            continue
        if here:
            scheduled += 1
            extra = sorted(here, key=ps.creation_order)[1:]
            actions += [Action("terminate", _stored(snap, p)) for p in extra]
            p = here[0]
            ready += ps.ready(p)
            available += ps.ready(p)
            if p.meta.labels.get(REVISION_LABEL) == rev:
                updated += 1
            else:
                stale.append(p)
    for leftover in by_node.values():  # pods for nodes that are gone
        actions += [Action("terminate", _stored(snap, p)) for p in leftover]
    if rolling and stale:
        unavailable = desired - available
        budget = max_unavailable - max(unavailable, 0)
        for p in sorted(stale, key=lambda p: (ps.ready(p), p.meta.name))[:max(budget, 0)]:
            actions.append(Action("terminate", _stored(snap, p), Event(ctx.now, actor, o.ref(raw), "SuccessfulDelete",
                                                                       f"Deleted pod: {p.meta.name}")))
    status = {"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
              "numberMisscheduled": misscheduled, "numberReady": ready, "numberAvailable": available,
              "numberUnavailable": max(desired - available, 0), "updatedNumberScheduled": updated,
              "observedGeneration": _generation(ds)}
    a = status_action(raw, status)
    return actions + ([a] if a else [])


def _typed_with_raw(snap: Snapshot, kind: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each object of `kind` typed (the store's parse cache: once per resourceVersion) with its stored dict
    (for writes). One that does not parse is left out (logged once per version by the cache)."""
    for typed in snap.typed(kind):
        raw = snap.get(kind, typed.meta.namespace, typed.meta.name)
        if raw is not None:
            yield typed, raw


def reconcile_daemonsets(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for ds, raw in _typed_with_raw(snap, "DaemonSet") for a in reconcile_daemonset(ds, raw, snap, ctx)]


# ---------------------------------------------------------------------------------------- StatefulSet

def _ordinal(sts_name: str, pod: Pod) -> int | None:
    prefix = sts_name + "-"
    name = pod.meta.name
    tail = name[len(prefix):] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def _sts_pod(sts: StatefulSet, raw: dict[str, Any], ordinal: int, rev: str) -> dict[str, Any]:
    pod_name = sts.pod_name(ordinal)
    pod = o.pod_from_template(raw["spec"]["template"], pod_name=pod_name, namespace_=sts.meta.namespace, owner=raw,
                              extra_labels={REVISION_LABEL: rev, "statefulset.kubernetes.io/pod-name": pod_name,
                                            "apps.kubernetes.io/pod-index": str(ordinal)})
    pod["spec"]["hostname"] = pod_name
    if sts.service_name:
        pod["spec"]["subdomain"] = sts.service_name
    return pod


def reconcile_statefulset(sts: StatefulSet, raw: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    """One StatefulSet, read typed (`sts` and its pods from the store's parse cache); `raw` is its stored
    dict, for the writes (pods from its template, its status)."""
    actor = "controller/statefulset"
    if ps.terminating(sts):
        return []
    name, ref = sts.meta.name, o.ref(raw)
    replicas = sts.replicas
    start = sts.ordinals_start
    parallel = sts.pod_management_policy == "Parallel"
    rev = _template_hash(raw)
    pods, actions = typed_pods_of(snap, sts)
    by_ord: dict[int, Pod] = {}
    for p in pods:
        i = _ordinal(name, p)
        if i is not None:
            by_ord[i] = p
    wanted = range(start, start + replicas)

    def healthy(p: Pod) -> bool:
        return ps.phase(p) == "Running" and ps.ready(p) and not ps.terminating(p)

    blocked = False
    for i in wanted:
        p = by_ord.get(i)
        if p is None:
            if not blocked or parallel:
                pod = _sts_pod(sts, raw, i, rev)
                actions.append(Action("create", pod, Event(ctx.now, actor, ref, "SuccessfulCreate",
                                                           f"create Pod {o.name(pod)} in StatefulSet "
                                                           f"{name} successful")))
            blocked = True
            continue
        if ps.phase(p) == "Failed" and not ps.terminating(p):
            actions.append(Action("terminate", _stored(snap, p), Event(
                ctx.now, actor, ref, "RecreatingFailedPod",
                f"StatefulSet {o.key(raw)} is recreating failed Pod {p.meta.name}")))
            blocked = True
            continue
        if not healthy(p):
            blocked = True
    condemned = sorted((i for i in by_ord if i not in wanted), reverse=True)
    if condemned:
        all_healthy = all(healthy(by_ord[i]) for i in wanted if i in by_ord) and not blocked
        for i in condemned:
            p = by_ord[i]
            if ps.terminating(p):
                if not parallel:
                    break
                continue
            if not parallel and not all_healthy:
                break
            actions.append(Action("terminate", _stored(snap, p), Event(
                ctx.now, actor, ref, "SuccessfulDelete", f"delete Pod {p.meta.name} in StatefulSet {name} successful")))
            if not parallel:
                break
    if sts.update_strategy == "RollingUpdate" and not condemned and not blocked:
        partition = sts.partition or 0
        for i in sorted(wanted, reverse=True):
            p = by_ord.get(i)
            if p is None or i < start + partition:
                break
            if p.meta.labels.get(REVISION_LABEL) != rev:
                actions.append(Action("terminate", _stored(snap, p), Event(ctx.now, actor, ref, "SuccessfulDelete",
                                                                           f"delete Pod {p.meta.name} for update")))
                break
    active = [p for p in pods if ps.active(p)]
    current = sum(1 for p in active if p.meta.labels.get(REVISION_LABEL) == rev)
    ready = sum(1 for p in active if ps.ready(p))
    status = {"observedGeneration": _generation(sts), "replicas": len(active),
              "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": current,
              "updatedReplicas": current, "currentRevision": f"{name}-{rev}", "updateRevision": f"{name}-{rev}"}
    a = status_action(raw, status)
    return actions + ([a] if a else [])


def reconcile_statefulsets(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for s, raw in _typed_with_raw(snap, "StatefulSet") for a in reconcile_statefulset(s, raw, snap, ctx)]


# ------------------------------------------------------------------------------------------------ Job

def job_finished(job: Job) -> str | None:
    """"Complete" or "Failed" when the Job has that condition True, else None."""
    return job.status.finished


def reconcile_job(job: Job, raw: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    """One Job, read typed (`job` and its pods from the store's parse cache); `raw` is its stored dict, for
    the writes (pods from its template, its status)."""
    actor = "controller/job"
    spec = job.spec
    pods = snap.typed_owned(job.meta.uid, "Pod")
    active = [p for p in pods if ps.active(p)]
    succeeded = sum(1 for p in pods if ps.phase(p) == "Succeeded")
    failed = sum(1 for p in pods if ps.phase(p) == "Failed")
    status = copy.deepcopy(dict(job.status.raw))
    status.setdefault("startTime", rfc3339(ctx.now))
    actions: list[Action] = []
    finished = job_finished(job)
    completions = spec.completions
    parallelism = spec.parallelism
    ref = o.ref(raw)
    if not finished and not spec.suspend:
        backoff = spec.backoff_limit
        deadline = spec.active_deadline_seconds
        started = parse_time(status["startTime"]) or ctx.now
        fail_reason = None
        if failed > backoff:
            fail_reason = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and ctx.now - started >= deadline:
            fail_reason = ("DeadlineExceeded", "Job was active longer than specified deadline")
        done = (succeeded >= completions) if completions is not None else (succeeded > 0 and not active)
        if fail_reason:
            actions += [Action("terminate", _stored(snap, p)) for p in active]
            o.set_condition(status, "Failed", "True", ctx.now, *fail_reason)
            actions_event = Event(ctx.now, actor, ref, fail_reason[0], fail_reason[1], type="Warning")
            status["active"] = 0
            finished = "Failed"
        elif done:
            actions += [Action("terminate", _stored(snap, p)) for p in active]  # leftovers of a work queue
            o.set_condition(status, "Complete", "True", ctx.now)
            status["completionTime"] = rfc3339(ctx.now)
            actions_event = Event(ctx.now, actor, ref, "Completed", "Job completed")
            finished = "Complete"
        else:
            actions_event = None
            want = parallelism if completions is None else min(parallelism, completions - succeeded)
            if completions is None and succeeded:
                want = 0
            missing = want - len(active)
            taken = snap.names("Pod", job.meta.namespace)
            uid, name = job.meta.uid, job.meta.name
            job_labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                          "controller-uid": uid, "job-name": name}
            for _ in range(max(missing, 0)):
                pod_name = o.generate_name(name + "-", ctx.rng, taken)
                taken.add(pod_name)
                pod = o.pod_from_template(_template_of(raw), pod_name=pod_name, namespace_=job.meta.namespace,
                                          owner=raw, extra_labels=job_labels)
                actions.append(Action("create", pod, Event(ctx.now, actor, ref, "SuccessfulCreate",
                                                           f"Created pod: {pod_name}")))
            for p in sorted(active, key=ps.creation_order, reverse=True)[:max(-missing, 0)]:
                actions.append(Action("terminate", _stored(snap, p)))
        status["active"] = 0 if finished else len(active)
        status["ready"] = sum(1 for p in active if ps.ready(p)) if not finished else 0
        status["succeeded"], status["failed"] = succeeded, failed
        a = status_action(raw, status)
        if a is not None:
            a.event = actions_event
            actions.append(a)
    return actions


def reconcile_jobs(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for j, raw in _typed_with_raw(snap, "Job") for a in reconcile_job(j, raw, snap, ctx)]


# -------------------------------------------------------------------------------------------- CronJob

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def job_name_for(cj_name: str, scheduled: dt.datetime) -> str:
    """getJobName: `<cronjob>-<minutes since the epoch>`."""
    return f"{cj_name}-{int(scheduled.timestamp()) // 60}"


def most_recent_schedule(schedule: CronSchedule | str, since: float, now: float,
                         tz: str | None) -> dt.datetime | None:
    """The latest scheduled time in (since, now], or None (also for a schedule text that does not parse)."""
    if isinstance(schedule, str):
        try:
            schedule = parse_cron(schedule)
        except CronError:
            return None
    zone = ZoneInfo(tz) if tz else dt.UTC
    t = dt.datetime.fromtimestamp(since, zone)
    end = dt.datetime.fromtimestamp(now, zone)
    last = None
    for _ in range(100_000):
        nxt = schedule.next_after(t)
        if nxt is None or nxt > end:
            break
        last, t = nxt, nxt
    return last


def reconcile_cronjob(cj: CronJob, raw: dict[str, Any], snap: Snapshot, ctx: Context) -> list[Action]:
    """One CronJob, read typed (`cj` and its Jobs from the store's parse cache; its schedule parsed once
    per version with it); `raw` is its stored dict, for the writes (Jobs from its jobTemplate, its status)."""
    actor = "controller/cronjob"
    ref, ns = o.ref(raw), cj.meta.namespace
    jobs = sorted(snap.typed_owned(cj.meta.uid, "Job"), key=ps.creation_order)
    running: list[tuple[str | None, str, str | None]] = [
        (j.meta.namespace, j.meta.name, j.meta.uid) for j in jobs if not job_finished(j) and not ps.terminating(j)]
    actions: list[Action] = []
    status = copy.deepcopy(dict(cj.status.raw))

    def delete(j: Job) -> None:
        stored = snap.get("Job", j.meta.namespace, j.meta.name)
        if stored is not None:
            actions.append(Action("delete", stored, Event(ctx.now, actor, ref, "SuccessfulDelete",
                                                          f"Deleted job {j.meta.name}")))

    for typ, limit in (("Complete", cj.successful_jobs_history_limit), ("Failed", cj.failed_jobs_history_limit)):
        done = [j for j in jobs if job_finished(j) == typ]
        for j in done[:max(len(done) - limit, 0)]:
            delete(j)
    if not cj.suspend:
        since = parse_time(cj.status.last_schedule_time) or ps.created(cj)
        scheduled = most_recent_schedule(cj.schedule, since, ctx.now, cj.time_zone)
        deadline = cj.starting_deadline_seconds
        if scheduled is not None and (deadline is None or ctx.now - scheduled.timestamp() <= deadline):
            policy = cj.concurrency_policy
            name = job_name_for(cj.meta.name, scheduled)
            if policy == "Forbid" and running:
                pass  # lastScheduleTime stays: the run happens once the active Job finishes (if in time)
            elif snap.get("Job", ns, name) is None:
                if policy == "Replace":
                    for j in jobs:
                        if (j.meta.namespace, j.meta.name, j.meta.uid) in running:
                            delete(j)
                    running = []
                job = _cron_job(raw, name, ns, scheduled)
                actions.append(Action("create", job, Event(ctx.now, actor, ref, "SuccessfulCreate",
                                                           f"Created job {name}")))
                running.append((ns, name, None))
                status["lastScheduleTime"] = rfc3339(scheduled.timestamp())
            else:
                status["lastScheduleTime"] = rfc3339(scheduled.timestamp())
    status["active"] = [{"kind": "Job", "namespace": jns, "name": jname, **({"uid": juid} if juid else {})}
                        for jns, jname, juid in running]
    if not status["active"]:
        del status["active"]
    succeeded = [j for j in jobs if job_finished(j) == "Complete"]
    if succeeded:
        status["lastSuccessfulTime"] = max((j.status.completion_time or "") for j in succeeded)
    a = status_action(raw, status)
    return actions + ([a] if a else [])


def _cron_job(raw: dict[str, Any], name: str, ns: str | None, scheduled: dt.datetime) -> dict[str, Any]:
    """The Job of one scheduled time, from the CronJob's stored jobTemplate (the write edge)."""
    jt = raw["spec"].get("jobTemplate") or {}
    jmd = jt.get("metadata") or {}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "labels": dict(jmd.get("labels") or {}),
                         "annotations": {**(jmd.get("annotations") or {}),
                                         SCHEDULED_TIMESTAMP: scheduled.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
                         "ownerReferences": [o.owner_reference(raw)]},
            "spec": copy.deepcopy(jt.get("spec") or {})}


def reconcile_cronjobs(snap: Snapshot, ctx: Context) -> list[Action]:
    return [a for cj, raw in _typed_with_raw(snap, "CronJob") for a in reconcile_cronjob(cj, raw, snap, ctx)]
