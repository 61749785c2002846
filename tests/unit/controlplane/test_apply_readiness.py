"""Which pods an apply waits for (the applied objects and what they own), and why a pod is not ready."""

from __future__ import annotations

from netsim.controlplane import readiness
from netsim.objcache import decode_stored

_TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "app", "image": "i"}]}}
_SPECS = {"Pod": {"nodeName": "node-1", "containers": [{"name": "app", "image": "i"}]},
          "ReplicaSet": {"selector": {"matchLabels": {"app": "x"}}, "template": _TEMPLATE},
          "Job": {"template": {**_TEMPLATE, "spec": {**_TEMPLATE["spec"], "restartPolicy": "Never"}}}}


def _raw(kind, name, uid, owner=None, **status):
    md = {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "1"}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": owner[2],
                                  "controller": True}]
    api = {"Pod": "v1", "ReplicaSet": "apps/v1", "Job": "batch/v1"}[kind]
    return {"apiVersion": api, "kind": kind, "metadata": md, "spec": dict(_SPECS[kind]), "status": status}


def _obj(kind, name, uid, owner=None, **status):
    """The typed object of a stored manifest (as the store's parse cache hands it out)."""
    return decode_stored(_raw(kind, name, uid, owner, **status))


def test_owned_pods_follow_controller_chains_to_the_applied_objects():
    rs = _obj("ReplicaSet", "web-1", "rs1", ("Deployment", "web", "d1"))
    job = _obj("Job", "cron-1", "j1", ("CronJob", "cron", "cj1"))
    pods = [_obj("Pod", "web-1-a", "p1", ("ReplicaSet", "web-1", "rs1")),
            _obj("Pod", "cron-1-a", "p2", ("Job", "cron-1", "j1")),
            _obj("Pod", "bare", "p3"),
            _obj("Pod", "other", "p4", ("ReplicaSet", "x", "rsx"))]
    names = lambda roots: [p.meta.name for p in readiness.owned_pods(pods, [rs, job], roots)]  # noqa: E731
    assert names({"d1"}) == ["web-1-a"]
    assert names({"cj1"}) == ["cron-1-a"]
    assert names({"p3", "rs1"}) == ["web-1-a", "bare"]
    assert names({"svc-uid"}) == []


def test_why_not_ready_uses_the_kubelets_reasons():
    msg = "back-off 10s restarting failed container=app pod=web-x_default(u)"
    crash = _obj("Pod", "web-x", "p", phase="Running",
                 containerStatuses=[{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}}])
    assert readiness.why_not_ready(crash) == f"pod/web-x: container app: CrashLoopBackOff ({msg})"
    done = _obj("Pod", "once", "p", phase="Failed",
                containerStatuses=[{"name": "app", "state": {"terminated": {"reason": "Error", "exitCode": 3}}}])
    assert readiness.why_not_ready(done) == "pod/once: container app: Error (exit code 3)"
    assert readiness.hopeless(done) and not readiness.settled(done)
    unsched = _raw("Pod", "u", "p", phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}])
    unsched["spec"].pop("nodeName")
    unsched = decode_stored(unsched)
    assert readiness.why_not_ready(unsched) == "pod/u: Unschedulable: 0/3 nodes are available"
    probed = _raw("Pod", "p", "p", phase="Running", podIP="10.0.0.1",
                  containerStatuses=[{"name": "app", "state": {"running": {}}}])
    probed["spec"]["containers"] = [{"name": "app", "image": "i", "readinessProbe": {"tcpSocket": {"port": 1}}}]
    probed = decode_stored(probed)
    assert "readiness probe not passed: app" in readiness.why_not_ready(probed)


def test_settled_pods_and_job_retries_are_not_waited_for():
    ready = _obj("Pod", "r", "p", phase="Running", conditions=[{"type": "Ready", "status": "True"}])
    assert readiness.settled(ready)
    failed_job_pod = _obj("Pod", "j", "p", ("Job", "j", "j1"), phase="Failed")
    assert readiness.settled(failed_job_pod) and not readiness.hopeless(failed_job_pod)
    assert readiness.settled(_obj("Pod", "s", "p", phase="Succeeded"))
