"""A container process sees what a container sees: the kubelet's /etc/hosts, env (Service variables also
after a restart, valueFrom, envFrom, $(VAR) expansion in env, command and args), ConfigMap/Secret/
downwardAPI volumes at their mountPath (updated when the ConfigMap changes), an emptyDir shared by two
containers, workingDir; a missing ConfigMap leaves that one container Waiting CreateContainerConfigError
until it is created. Nothing is created on the host's filesystem."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from netsim import naming
from netsim.controlplane.events import list_events
from tests.conftest import live_cluster, run_netsim

pytestmark = pytest.mark.root

APP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-cfg}
data: {greeting: hello, app.conf: v1}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: envpod, labels: {app: env, tier: t1}}
spec:
  hostname: box
  subdomain: grp
  hostAliases: [{ip: 10.1.2.3, hostnames: [legacy.example]}]
  volumes:
  - {name: cfg, configMap: {name: app-cfg}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0400}}
  - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
  - {name: shared, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  containers:
  - name: main
    image: busybox
    workingDir: /netsim-wd-test/sub
    securityContext: {runAsUser: 0}
    envFrom: [{configMapRef: {name: app-cfg}, prefix: CM_}]
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: app-cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MY_TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: MSG, value: "$(GREETING) from $(MY_TIER) $$(KEPT)"}
    command: [sh, -c]
    args:
    - |
      echo 'ARG=$(MSG)'; echo "ENV=$MSG|$PASSWORD|$MY_IP|$MY_NODE|$CM_greeting|$DB_SERVICE_HOST"
      echo "PWD=$(pwd)"; cat /etc/hosts; cat /netsim-etc-test/app.conf; echo; cat /podinfo/labels; echo
      cat /secret/password; echo; touch /netsim-etc-test/x 2>/dev/null || echo "RO-OK"
      while true; do cat /netsim-etc-test/app.conf > /shared/seen; cat /podinfo/labels > /shared/labels; sleep 0.2; done
    volumeMounts:
    - {name: cfg, mountPath: /netsim-etc-test}
    - {name: sec, mountPath: /secret}
    - {name: info, mountPath: /podinfo}
    - {name: shared, mountPath: /shared}
  - name: reader
    image: busybox
    command: [sh, -c, "sleep 0.5; while true; do cat /data/seen > /data/copied 2>/dev/null; sleep 0.2; done"]
    volumeMounts: [{name: shared, mountPath: /data}, {name: mem, mountPath: /mem}]
---
apiVersion: v1
kind: Pod
metadata: {name: crashy}
spec:
  containers:
  - {name: c, image: x, command: [sh, -c, "echo DB=$DB_SERVICE_HOST; exit 1"]}
---
apiVersion: v1
kind: Pod
metadata: {name: latecomer}
spec:
  containers:
  - name: c
    image: x
    command: [sh, -c, "echo LATE=$LATE; sleep 3600"]
    env: [{name: LATE, valueFrom: {configMapKeyRef: {name: late, key: k}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: played-late}
spec:
  containers:
  - {name: c, image: x, ports: [{containerPort: 8080}], envFrom: [{secretRef: {name: late-secret}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  volumes: [{name: w, emptyDir: {}}]
  initContainers:
  - {name: first, image: x, command: [sh, -c, "echo first >> /w/order; sleep 0.3"], volumeMounts: [{name: w, mountPath: /w}]}
  - {name: played, image: x}
  - name: side
    image: x
    restartPolicy: Always
    command: [sh, -c, "echo side >> /w/order; while true; do sleep 0.2; done"]
    volumeMounts: [{name: w, mountPath: /w}]
  - {name: second, image: x, command: [sh, -c, "echo second >> /w/order"], volumeMounts: [{name: w, mountPath: /w}]}
  containers:
  - {name: app, image: x, command: [sh, -c, "echo app >> /w/order; sleep 3600"], volumeMounts: [{name: w, mountPath: /w}]}
---
apiVersion: v1
kind: Pod
metadata: {name: sidecar-probe}
spec:
  volumes: [{name: w, emptyDir: {}}]
  initContainers:
  - name: side
    image: x
    restartPolicy: Always
    command:
    - sh
    - -c
    - sleep 1; echo side-up >> /w/order; exec python3 -c "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 9000)); s.listen(); time.sleep(3600)"
    startupProbe: {tcpSocket: {port: 9000}, periodSeconds: 1, failureThreshold: 30}
    volumeMounts: [{name: w, mountPath: /w}]
  - {name: after, image: x, command: [sh, -c, "echo after >> /w/order"], volumeMounts: [{name: w, mountPath: /w}]}
  containers:
  - {name: app, image: x, command: [sh, -c, "echo app >> /w/order; sleep 3600"], volumeMounts: [{name: w, mountPath: /w}]}
---
apiVersion: v1
kind: Pod
metadata: {name: keeper}
spec:
  volumes: [{name: d, emptyDir: {}}]
  containers:
  - {name: c, image: x, command: [sh, -c, "echo run >> /d/runs; sleep 3600"], volumeMounts: [{name: d, mountPath: /d}]}
---
apiVersion: v1
kind: Pod
metadata: {name: initfail}
spec:
  restartPolicy: Never
  initContainers: [{name: bad, image: x, command: [sh, -c, "exit 3"]}]
  containers: [{name: app, image: x, command: [sh, -c, "echo never"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: initloop}
spec:
  initContainers: [{name: bad, image: x, command: [sh, -c, "exit 1"]}]
  containers: [{name: app, image: x, command: [sh, -c, "echo never"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hp}
spec:
  volumes:
  - {name: host, hostPath: {path: /var/log/netsim-test-hp, type: DirectoryOrCreate}}
  - name: proj
    projected:
      sources:
      - {configMap: {name: app-cfg, items: [{key: greeting, path: g}]}}
      - {downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}
      - {serviceAccountToken: {path: token}}
  containers:
  - name: c
    image: x
    securityContext: {runAsUser: 0}
    command: [sh, -c, "echo hp > /hostlog/f; cat /proj/g /proj/name; echo; test -s /proj/token && echo TOKEN; sleep 3600"]
    volumeMounts: [{name: host, mountPath: /hostlog}, {name: proj, mountPath: /proj}]
---
apiVersion: v1
kind: Pod
metadata: {name: badvol}
spec:
  volumes: [{name: sock, hostPath: {path: /run/netsim-test.sock, type: Socket}}]
  containers:
  - {name: c, image: x, command: [sh, -c, "sleep 3600"], volumeMounts: [{name: sock, mountPath: /sock}]}
"""


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (v := predicate()):
            return v
        time.sleep(0.1)
    raise AssertionError("timed out")


def _log(c, pod: str, container: str, suffix: str = "") -> str:
    try:
        with open(naming.container_log(c.name, "default", pod, container) + suffix) as f:
            return f.read()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cluster(kernel):
    with live_cluster(kernel, "ce", {"nodes": 1}) as c:
        c.apply(APP, wait=False)
        yield c


def test_env_hosts_volumes_and_working_dir(cluster):
    c = cluster
    out = _wait(lambda: (t := _log(c, "envpod", "main")).count("RO-OK") and t)
    pod = c.store.get("Pod", "default", "envpod")
    ip, node = pod["status"]["podIP"], pod["spec"]["nodeName"]
    db_ip = c.store.get("Service", "default", "db")["spec"]["clusterIP"]
    assert "ARG=hello from t1 $(KEPT)" in out
    assert f"ENV=hello from t1 $(KEPT)|s3cret|{ip}|{node}|hello|{db_ip}" in out
    assert "PWD=/netsim-wd-test/sub" in out
    assert "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n" in out
    assert f"{ip}\tbox.grp.default.svc.cluster.local\tbox\n" in out
    assert "# Entries added by HostAliases.\n10.1.2.3\tlegacy.example\n" in out
    assert "v1\n" in out and 'app="env"\ntier="t1"' in out and "s3cret" in out
    # nothing was made on the host's filesystem for the paths the container saw
    for p in ("/netsim-wd-test", "/netsim-etc-test", "/secret", "/podinfo", "/shared"):
        assert not os.path.exists(p), p
    # `netsim exec` sees the same /etc/hosts
    assert f"{ip}\tbox.grp.default.svc.cluster.local\tbox" in c.exec("default/envpod", ["cat", "/etc/hosts"]).stdout
    # the emptyDir is shared: the reader copies what main writes; a changed ConfigMap reaches the files
    shared = os.path.join(naming.state_dir(c.name), "pods", naming.pod_part("default", "envpod"), "volumes",
                          "shared")
    copied = Path(shared, "copied")
    _wait(lambda: copied.exists() and copied.read_text() == "v1")
    c.apply(APP.replace("app.conf: v1", "app.conf: v2"), wait=False)
    _wait(lambda: copied.read_text() == "v2", timeout=15)
    # a label change reaches the downwardAPI volume
    run_netsim("label", "pod", "envpod", "tier=t2", "--overwrite", "--cluster", c.name)
    _wait(lambda: 'tier="t2"' in Path(shared, "labels").read_text(), timeout=15)
    # medium: Memory is a tmpfs (named under the cluster's state dir, unmounted by `down`)
    assert os.path.ismount(os.path.join(os.path.dirname(shared), "mem"))


def test_restarted_container_keeps_service_variables(cluster):
    c = cluster
    db_ip = c.store.get("Service", "default", "db")["spec"]["clusterIP"]
    _wait(lambda: _log(c, "crashy", "c", ".previous"))
    assert f"DB={db_ip}" in _log(c, "crashy", "c", ".previous")
    assert _wait(lambda: f"DB={db_ip}" in _log(c, "crashy", "c"))


def test_missing_config_map_waits_then_recovers(cluster):
    c = cluster

    def waiting():
        cs = ((c.store.get("Pod", "default", "latecomer") or {}).get("status") or {}).get("containerStatuses")
        return cs and (cs[0].get("state") or {}).get("waiting")
    w = _wait(waiting)
    assert w == {"reason": "CreateContainerConfigError", "message": 'configmap "late" not found'}
    assert (c.store.get("Pod", "default", "latecomer")["status"]).get("phase") == "Pending"
    events = [(e.reason, e.message) for e in list_events(c.store) if e.object == "Pod default/latecomer"]
    assert ("Failed", 'Error: configmap "late" not found') in events
    # a container the workload server plays (no command) is held the same way
    played = _wait(lambda: ((c.store.get("Pod", "default", "played-late")["status"].get("containerStatuses")
                             or [{}])[0].get("state") or {}).get("waiting"))
    assert played == {"reason": "CreateContainerConfigError", "message": 'secret "late-secret" not found'}
    c.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: late}
data: {k: arrived}
---
apiVersion: v1
kind: Secret
metadata: {name: late-secret}
stringData: {TOKEN: t}
""", wait=False)
    _wait(lambda: "LATE=arrived" in _log(c, "latecomer", "c"))
    _wait(lambda: c.store.get("Pod", "default", "latecomer")["status"].get("phase") == "Running")
    _wait(lambda: any(x["type"] == "Ready" and x["status"] == "True"
                      for x in c.store.get("Pod", "default", "played-late")["status"].get("conditions") or []))


def test_init_containers_in_order_and_a_sidecar_that_stays_up(cluster):
    c = cluster
    order = Path(naming.state_dir(c.name), "pods", naming.pod_part("default", "inits"), "volumes", "w", "order")
    _wait(lambda: order.exists() and order.read_text().endswith("app\n"))
    lines = order.read_text().split()
    # the sidecar is started before `second`, which does not wait for it to print (no startupProbe)
    assert lines[0] == "first" and sorted(lines[1:3]) == ["second", "side"] and lines[3:] == ["app"]
    st = _wait(lambda: (s := c.store.get("Pod", "default", "inits")["status"]).get("phase") == "Running" and s)
    assert next(x for x in st["conditions"] if x["type"] == "Initialized")["status"] == "True"
    by_name = {x["name"]: x for x in st["initContainerStatuses"]}
    assert by_name["first"]["state"]["terminated"]["reason"] == "Completed"
    assert by_name["played"]["state"]["terminated"]["exitCode"] == 0  # no command: completes at once
    assert by_name["second"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in by_name["side"]["state"] and by_name["side"]["started"] is True
    assert order.read_text().count("side") == 1  # the sidecar was never restarted
    # with a startupProbe, the next init container waits until the sidecar's probe succeeded
    order = Path(naming.state_dir(c.name), "pods", naming.pod_part("default", "sidecar-probe"), "volumes", "w",
                 "order")
    _wait(lambda: order.exists() and order.read_text().endswith("app\n"))
    assert order.read_text() == "side-up\nafter\napp\n"
    side = c.store.get("Pod", "default", "sidecar-probe")["status"]["initContainerStatuses"][0]
    assert side["started"] is True and "running" in side["state"]


def test_failing_init_containers(cluster):
    from netsim.printers import pod_row
    c = cluster
    st = _wait(lambda: (s := c.store.get("Pod", "default", "initfail")["status"]).get("phase") == "Failed" and s)
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert next(x for x in st["conditions"] if x["type"] == "Initialized")["status"] == "False"
    assert _log(c, "initfail", "app") == ""
    pod = _wait(lambda: (p := c.store.get("Pod", "default", "initloop")) and (
        ((p["status"].get("initContainerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}).get(
        "reason") == "CrashLoopBackOff" and p)
    # restartCount is 1 at the first back-off; a poll delayed past it (a loaded machine) may see the next one
    assert pod["status"]["phase"] == "Pending" and pod["status"]["initContainerStatuses"][0]["restartCount"] >= 1
    assert pod_row(pod, False)[2] == "Init:CrashLoopBackOff"
    assert _log(c, "initloop", "app") == ""


def test_host_path_is_mapped_into_the_state_dir_and_projected_volumes(cluster):
    c = cluster
    out = _wait(lambda: (t := _log(c, "hp", "c")).count("TOKEN") and t)
    assert "hellohp\n" in out  # the projected configMap item and downwardAPI item
    node = c.store.get("Pod", "default", "hp")["spec"]["nodeName"]
    mapped = Path(naming.state_dir(c.name), "nodes", naming.label_part(node), "hostpath", "var/log/netsim-test-hp")
    assert (mapped / "f").read_text() == "hp\n"
    assert not os.path.exists("/var/log/netsim-test-hp")
    # a hostPath that cannot be played: that container waits, with the kubelet's FailedMount event
    cs = _wait(lambda: ((c.store.get("Pod", "default", "badvol")["status"].get("containerStatuses") or [{}])[0]
                        .get("state") or {}).get("waiting"))
    assert cs == {"reason": "ContainerCreating"}
    events = [e.message for e in list_events(c.store) if e.object == "Pod default/badvol" and e.reason == "FailedMount"]
    assert events == ['MountVolume.SetUp failed for volume "sock" : hostPath type Socket is not emulated: netsim '
                      "never touches the host's filesystem"]


def test_an_empty_dir_outlives_its_sandbox(cluster):
    """emptyDir belongs to the pod: a sandbox made again (`netsim kill pod`) finds its data."""
    c = cluster
    runs = Path(naming.state_dir(c.name), "pods", naming.pod_part("default", "keeper"), "volumes", "d", "runs")
    _wait(lambda: runs.exists() and runs.read_text() == "run\n")
    c.kill_pod("keeper", wait=False)
    _wait(lambda: runs.exists() and runs.read_text() == "run\nrun\n")


def test_down_unmounts_memory_volumes_left_by_a_dead_daemon():
    """`down` (state.remove) unmounts the tmpfs of `emptyDir: {medium: Memory}` volumes before removing the
    state dir, also when no daemon is left to do it."""
    import subprocess

    from netsim import state
    from tests.conftest import unique_name
    name = unique_name("cm")
    vol = Path(naming.state_dir(name), "pods", "default_p", "volumes", "mem")
    vol.mkdir(parents=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(vol)], check=True)
        (vol / "f").write_text("x")
        state.remove(name)
        assert not os.path.exists(naming.state_dir(name))
        assert not any(str(vol) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
    finally:
        subprocess.run(["umount", "-l", str(vol)], check=False, capture_output=True)
        state.remove(name)
