"""batch/v1: Job and CronJob.

Defaults as kubernetes pkg/apis/batch/v1/defaults.go: when completions and parallelism are both unset both
become 1, otherwise parallelism defaults to 1 and completions stays unset (a work queue); backoffLimit 6;
completionMode NonIndexed; suspend false; a Job without labels takes its template's labels. CronJob:
concurrencyPolicy Allow, suspend false, successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1. Validation
(pkg/apis/batch/validation): template restartPolicy must be OnFailure or Never; schedule via robfig cron.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from netsim.model import specfields as sf
from netsim.model.cron import CronError, CronSchedule, parse_cron
from netsim.model.errors import Source
from netsim.model.limits import MAX_REPLICAS
from netsim.model.meta import Fields, ObjectMeta, checked_annotations
from netsim.model.pod import PodTemplate, object_fields
from netsim.model.selectors import LabelSelector, validate_labels
from netsim.model.status import CronJobStatus, JobStatus, cronjob_status, job_status
from netsim.model.workloads import parse_selector_and_template

_JOB_MODELLED = {"parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "selector",
                 "manualSelector", "template", "ttlSecondsAfterFinished", "completionMode", "suspend"}
_JOB_PASSTHROUGH = {"podFailurePolicy", "successPolicy", "backoffLimitPerIndex", "maxFailedIndexes",
                    "podReplacementPolicy", "managedBy"}


@dataclass(frozen=True)
class JobSpec:
    template: PodTemplate
    parallelism: int = 1
    completions: int | None = 1  # None: work queue, done when any pod succeeds
    backoff_limit: int = 6
    active_deadline_seconds: int | None = None
    completion_mode: str = "NonIndexed"  # NonIndexed | Indexed
    suspend: bool = False
    ttl_seconds_after_finished: int | None = None
    selector: LabelSelector | None = None  # None: the controller labels pods itself
    manual_selector: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = sf.drop_none({
            "parallelism": self.parallelism, "completions": self.completions, "backoffLimit": self.backoff_limit,
            "activeDeadlineSeconds": self.active_deadline_seconds, "completionMode": self.completion_mode,
            "suspend": self.suspend, "ttlSecondsAfterFinished": self.ttl_seconds_after_finished,
            "selector": self.selector.to_dict() if self.selector is not None else None,
            "manualSelector": self.manual_selector, "template": self.template.to_dict()})
        out.update(self.extra)
        return out


def parse_job_spec(spec: Fields) -> JobSpec:
    extra = sf.check_fields(spec, _JOB_MODELLED, _JOB_PASSTHROUGH)
    selector, template = parse_selector_and_template(spec, kind="Job", restart_policies=("OnFailure", "Never"),
                                                     selector_required=False)
    completions = spec.int("completions", minimum=0)
    parallelism = spec.int("parallelism", minimum=0, maximum=MAX_REPLICAS)
    if completions is None and parallelism is None:
        completions = 1
    mode = spec.str("completionMode", "NonIndexed", choices=("NonIndexed", "Indexed"))
    if mode == "Indexed" and completions is None:
        raise spec.error("completions", "is required when completionMode is Indexed")
    return JobSpec(template=template, parallelism=1 if parallelism is None else parallelism,
                   completions=completions, backoff_limit=spec.int("backoffLimit", 6, minimum=0),
                   active_deadline_seconds=spec.int("activeDeadlineSeconds", minimum=1), completion_mode=mode,
                   suspend=bool(spec.bool("suspend", False)),
                   ttl_seconds_after_finished=spec.int("ttlSecondsAfterFinished", minimum=0),
                   selector=selector, manual_selector=spec.bool("manualSelector"), extra=extra)


@dataclass(frozen=True)
class Job:
    kind: ClassVar[str] = "Job"
    api_version: ClassVar[str] = "batch/v1"
    meta: ObjectMeta
    spec: JobSpec
    status: JobStatus = JobStatus()  # the controller's report, when decoded from the store

    def to_dict(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(),
                "spec": self.spec.to_dict()}


def parse_job(doc: Any, source: Source) -> Job:
    meta, root = object_fields(doc, source, "Job")
    if len(meta.name) > 63:
        # The API server labels the Job's pods with batch.kubernetes.io/job-name=<name> (registry
        # generateSelector) and a label value has at most 63 characters, so a longer name is refused.
        raise root.error("metadata.name", "must be no more than 63 characters (it becomes the job-name label of "
                                          "the Job's pods)")
    spec = parse_job_spec(root.map("spec", required=True))
    if not meta.labels and spec.template.labels:
        meta = replace(meta, labels=dict(spec.template.labels))
    return Job(meta=meta, spec=spec, status=job_status(doc.get("status")))


@dataclass(frozen=True)
class JobTemplate:
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: JobSpec

    def to_dict(self) -> dict[str, Any]:
        md = sf.drop_none({"labels": dict(self.labels), "annotations": dict(self.annotations)})
        return {"metadata": md, "spec": self.spec.to_dict()}


@dataclass(frozen=True)
class CronJob:
    kind: ClassVar[str] = "CronJob"
    api_version: ClassVar[str] = "batch/v1"
    meta: ObjectMeta
    schedule: CronSchedule
    job_template: JobTemplate
    concurrency_policy: str = "Allow"  # Allow | Forbid | Replace
    suspend: bool = False
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 1
    starting_deadline_seconds: int | None = None
    time_zone: str | None = None
    status: CronJobStatus = CronJobStatus()  # the controller's report, when decoded from the store

    def to_dict(self) -> dict[str, Any]:
        spec = sf.drop_none({
            "schedule": self.schedule.text, "timeZone": self.time_zone,
            "startingDeadlineSeconds": self.starting_deadline_seconds,
            "concurrencyPolicy": self.concurrency_policy, "suspend": self.suspend,
            "jobTemplate": self.job_template.to_dict(),
            "successfulJobsHistoryLimit": self.successful_jobs_history_limit,
            "failedJobsHistoryLimit": self.failed_jobs_history_limit})
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": self.meta.to_dict(), "spec": spec}


def parse_cronjob(doc: Any, source: Source) -> CronJob:
    meta, root = object_fields(doc, source, "CronJob")
    if len(meta.name) > 52:
        # The controller appends an 11-character suffix to name its Jobs (batch validation).
        raise root.error("metadata.name", "must be no more than 52 characters")
    spec = root.map("spec", required=True)
    sf.check_fields(spec, {"schedule", "timeZone", "startingDeadlineSeconds", "concurrencyPolicy", "suspend",
                           "jobTemplate", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"})
    try:
        schedule = parse_cron(spec.str("schedule", required=True))
    except CronError as e:
        raise spec.error("schedule", f"invalid schedule: {e}") from None
    time_zone = spec.str("timeZone")
    if time_zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise spec.error("timeZone", f"unknown time zone {time_zone!r}") from None
    jt = spec.map("jobTemplate", required=True)
    sf.check_fields(jt, {"metadata", "spec"})
    md = jt.map("metadata") or jt.sub({}, ".metadata")
    labels = validate_labels(md.get("labels"), source=md.source, obj=md.obj, path=md._p("labels"))
    job_template = JobTemplate(labels=labels, annotations=checked_annotations(md, "annotations"),
                               spec=parse_job_spec(jt.map("spec", required=True)))
    return CronJob(meta=meta, schedule=schedule, job_template=job_template,
                   concurrency_policy=spec.str("concurrencyPolicy", "Allow", choices=("Allow", "Forbid", "Replace")),
                   suspend=bool(spec.bool("suspend", False)),
                   successful_jobs_history_limit=spec.int("successfulJobsHistoryLimit", 3, minimum=0),
                   failed_jobs_history_limit=spec.int("failedJobsHistoryLimit", 1, minimum=0),
                   starting_deadline_seconds=spec.int("startingDeadlineSeconds", minimum=0),
                   time_zone=time_zone, status=cronjob_status(doc.get("status")))
