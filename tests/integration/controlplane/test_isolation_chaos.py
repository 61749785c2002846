"""One bad object never stalls the others, on a live cluster.

Objects that slip past validation (written straight into the store, as an older netsim or another writer
could) and inputs that validation must refuse (through the real `netsim` command) are thrown at one calico
cluster; after each, an unrelated pod still becomes Ready and Service-reachable within a pass, and every
refusal exits 2 naming the file, the object and the field, with nothing applied.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from netsim import daemonctl, lifecycle, naming
from netsim.api import Cluster
from netsim.cli.main import cli
from netsim.controlplane import objects as o
from netsim.kernel import netns
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.store import Compacted

pytestmark = pytest.mark.root

EXAMPLES = 30
COMPACTION = 3.0  # the daemon's change-log compaction interval here (300 s by default)
SETTLE = 20.0  # seconds a canary may take to be Ready (a pass is well under one; the machine may be busy)


@pytest.fixture(scope="module")
def cluster(kernel) -> Iterator[Cluster]:
    name = f"iso{secrets.token_hex(3)}"
    spec = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
                          "spec": {"nodes": 2, "network": {"plugin": "calico"}}}, Source("<test>"))
    c = None
    saved = os.environ.get("NETSIM_COMPACTION_INTERVAL")
    os.environ["NETSIM_COMPACTION_INTERVAL"] = str(COMPACTION)  # the daemon inherits it
    try:
        try:
            c = Cluster.up(spec, timeout=60)
        finally:
            os.environ.pop("NETSIM_COMPACTION_INTERVAL") if saved is None else \
                os.environ.__setitem__("NETSIM_COMPACTION_INTERVAL", saved)
        yield c
    finally:
        if c is not None:
            c.close()
            print(f"--- daemon.log of {name} (last lines) ---\n{daemonctl.log_tail(name, 60)}")
        lifecycle.down(kernel, name)


def _canary(c: Cluster, tag: str) -> None:
    """An unrelated pod behind a Service: Ready, with a ready endpoint, and the cluster converged, within
    SETTLE seconds; the daemon's passes did not fail."""
    name = f"canary-{tag}"
    c.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"canary": tag}},
              "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}},
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
              "spec": {"selector": {"canary": tag}, "ports": [{"port": 80, "targetPort": 8080}]}}], wait=False)
    rv = c.store.current_rv()
    daemonctl.wait_converged(c.name, rv, SETTLE)
    pod = c.store.get("Pod", "default", name)
    assert pod is not None and o.is_ready(pod), pod
    ready = [e for sl in c.get("EndpointSlice", "default")
             if o.labels(sl).get("kubernetes.io/service-name") == name
             for e in sl.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]
    assert ready, f"no ready endpoint for Service {name}"
    marker = daemonctl.read_marker(c.name) or {}
    assert not any("last pass failed" in p for p in marker.get("pending", [])), marker


def _cli(c: Cluster, *args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--cluster", c.name])


def test_objects_that_fail_in_the_data_plane_are_reported_and_the_rest_goes_on(cluster, tmp_path):
    c = cluster
    # A pod the kubelet cannot start (an env name with '=' cannot reach execve), written around validation.
    c.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-env", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "command": ["sleep", "600"],
                                             "env": [{"name": "A=B", "value": "x"}]}]}})
    # A Service carrying a field no Service has (what `scale service/...` used to write).
    svc = c.store.get("Service", "default", "kubernetes")
    svc["spec"]["replicas"] = 2
    c.store.update(svc)
    # A NetworkPolicy felix cannot take.
    c.store.create({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "bad-np", "namespace": "default"},
                    "spec": {"podSelector": {}, "policyTypes": ["Sideways"]}})
    _canary(c, "a")
    reasons = {(e["object"], e["reason"]) for e in c.store.events_since(0)}
    assert ("Pod default/bad-env", "FailedCreatePodSandBox") in reasons
    assert ("Service default/kubernetes", "InvalidObject") in reasons
    # and its controller, which skips it too, says so on it (netsim.controlplane.parsefailures)
    assert ("Service default/kubernetes", "FailedParse") in reasons
    assert ("NetworkPolicy default/bad-np", "InvalidObject") in reasons
    for kind, name in (("Service", "kubernetes"), ("NetworkPolicy", "bad-np")):
        cond = o.condition(c.store.get(kind, "default", name), "Programmed")
        assert cond and cond["status"] == "False" and cond["reason"] == "Invalid", (kind, cond)
    bad_pod = c.store.get("Pod", "default", "bad-env")
    assert o.condition(bad_pod, "PodReadyToStartContainers")["reason"] == "FailedCreatePodSandBox"
    assert not os.path.exists(netns.netns_path(naming.pod_ns(c.name, "default", "bad-env")))  # attempt undone

    # `apply` of the failing pod says why (exit 1), an unrelated `apply` succeeds (exit 0).
    f = tmp_path / "ok.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec: {containers: [{name: c}]}\n")
    res = _cli(c, "apply", "-f", str(f), "--timeout", str(SETTLE))
    assert res.exit_code == 0, res.output
    c.store.delete("Service", "default", "kubernetes")  # leave the module's cluster clean for the chaos test
    c.store.delete("NetworkPolicy", "default", "bad-np")
    c.store.delete("Pod", "default", "bad-env")


def test_refusals_exit_2_name_file_object_field_and_apply_nothing(cluster, tmp_path):
    c = cluster
    coredns = c.store.get("Deployment", "kube-system", "coredns")["spec"]
    kube_dns = c.store.get("Service", "kube-system", "kube-dns")["spec"]
    cases = {
        "node-ip.yaml": ("Service", {"ports": [{"port": 80}], "externalIPs": ["172.18.0.3"]},
                         "Service default/x: field spec.externalIPs[0]: 172.18.0.3 is the IP of node node-2"),
        "gateway.yaml": ("Service", {"ports": [{"port": 80}], "externalIPs": ["203.0.113.9", "172.18.0.1"]},
                         "field spec.externalIPs[1]: 172.18.0.1 is the fabric gateway"),
        "unspecified.yaml": ("Service", {"ports": [{"port": 80}], "externalIPs": ["0.0.0.0"]},
                             "field spec.externalIPs[0]: '0.0.0.0' may not be unspecified"),
        "replicas.yaml": ("Deployment", {"replicas": 500000, "selector": {"matchLabels": {"a": "x"}},
                                         "template": {"metadata": {"labels": {"a": "x"}},
                                                      "spec": {"containers": [{"name": "c"}]}}},
                          "Deployment default/x: field spec.replicas: must be at most 50000"),
    }
    for fname, (kind, spec, expect) in cases.items():
        f = tmp_path / fname
        api = "apps/v1" if kind == "Deployment" else "v1"
        f.write_text(json.dumps({"apiVersion": api, "kind": kind, "metadata": {"name": "x"}, "spec": spec}))
        res = _cli(c, "apply", "-f", str(f), "--no-wait")
        assert res.exit_code == 2, (fname, res.output)
        assert str(f) in res.output and expect in res.output, (fname, res.output)
    for args, expect in ((["scale", "service/kube-dns", "-n", "kube-system", "--replicas", "2"],
                          "could not find the requested resource"),
                         (["scale", "deploy/coredns", "-n", "kube-system", "--replicas", "-5"],
                          "COUNT must be greater than or equal to 0")):
        res = _cli(c, *args)
        assert res.exit_code == 2 and expect in res.output, res.output
    for kind in ("Service", "Deployment"):
        assert c.store.get(kind, "default", "x") is None
    assert c.store.get("Deployment", "kube-system", "coredns")["spec"] == coredns
    assert c.store.get("Service", "kube-system", "kube-dns")["spec"] == kube_dns


def test_the_daemon_compacts_the_change_log(cluster):
    """As kube-apiserver's compactor: every interval, to the revision seen one interval before. The log
    stays bounded on an idle cluster (node heartbeats write every second) and a watch from before the
    compacted revision is told to relist."""
    c = cluster
    deadline = time.monotonic() + 4 * COMPACTION + SETTLE
    while c.store.compacted_rv() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    first = c.store.compacted_rv()
    assert first > 0, "the daemon never compacted"
    with pytest.raises(Compacted, match="too old resource version"):
        c.store.changes_since(0)
    while c.store.compacted_rv() == first and time.monotonic() < deadline:
        time.sleep(0.2)
    assert c.store.compacted_rv() > first  # it goes on, interval after interval
    assert len(c.store.changes_since(c.store.compacted_rv())) < 5000
    _canary(c, "compacted")  # and the daemon's own watch kept working


# -- chaos: generated manifests and CLI calls --------------------------------------------------------------

NAMES = st.one_of(st.sampled_from(["web", "a" * 63, "b" * 64, "x.y", "Upper", "-lead", "c" * 240, "d" * 254]),
                  st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z"))
ENV_NAMES = st.one_of(st.sampled_from(["PATH", "A=B", "=", "", "with space", "caf\u00e9", "X" * 300]),
                      st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=8))
IPS = st.sampled_from(["0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.5", "239.1.1.1", "255.255.255.255",
                       "172.18.0.1", "172.18.0.2", "172.18.0.3", "172.18.255.255", "10.244.0.9", "10.96.0.10",
                       "203.0.113.10", "203.0.113.77", "172.18.100.20", "not-an-ip"])
REPLICAS = st.sampled_from([-5, -1, 0, 1, 2, 50001, 500000])
ANNOTATION = st.sampled_from([0, 10, 300_000])


@st.composite
def actions(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Pod", "Service", "Deployment", "scale", "delete"]))
    name = draw(NAMES)
    if kind == "scale":
        return {"cli": ["scale", f"{draw(st.sampled_from(['svc', 'deploy', 'pod', 'sts', 'ns']))}/{name}",
                        "--replicas", str(draw(REPLICAS))]}
    if kind == "delete":
        return {"cli": ["delete", draw(st.sampled_from(["pod", "svc", "deploy"])), name, "--no-wait"]}
    md: dict[str, Any] = {"name": f"chaos-{name}" if draw(st.booleans()) else name}
    size = draw(ANNOTATION)
    if size:
        md["annotations"] = {"note": "n" * size}
    container = {"name": "c", "image": "x", "ports": [{"containerPort": draw(st.sampled_from([80, 0, 70000]))}]}
    if draw(st.booleans()):
        container["command"] = ["sleep", "600"]
        container["env"] = [{"name": draw(ENV_NAMES), "value": "v"}]
    pod_spec = {"containers": [container]}
    if kind == "Pod":
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": pod_spec}
    elif kind == "Service":
        spec: dict[str, Any] = {"selector": {"app": "chaos"}, "ports": [{"port": 80}]}
        ips = draw(st.lists(IPS, max_size=2, unique=True))
        if ips:
            spec["externalIPs"] = ips
        doc = {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}
    else:
        replicas = draw(REPLICAS)
        doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md,
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "chaos"}},
                        "template": {"metadata": {"labels": {"app": "chaos"}}, "spec": pod_spec}}}
    return {"doc": doc}


def _spec_of(c: Cluster, doc: dict[str, Any]) -> Any:
    """What an apply of `doc` would change of its stored object (None: there is none)."""
    obj = c.store.get(doc["kind"], "default", doc["metadata"]["name"])
    return None if obj is None else (obj.get("spec"), obj["metadata"].get("labels"),
                                     obj["metadata"].get("annotations"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(action=actions())
def test_chaos_an_unrelated_pod_always_becomes_ready(cluster, tmp_path_factory, action):
    c = cluster
    note(repr(action)[:2000])
    if "cli" in action:
        res = _cli(c, *action["cli"])
        assert res.exit_code in (0, 2), res.output  # done, or refused as bad input (or not found)
    else:
        f = Path(tmp_path_factory.mktemp("chaos")) / "m.yaml"
        f.write_text(json.dumps(action["doc"]))
        doc = action["doc"]
        before = _spec_of(c, doc)
        res = _cli(c, "apply", "-f", str(f), "--no-wait")
        assert res.exit_code in (0, 2), res.output
        if res.exit_code == 2:
            assert str(f) in res.output, res.output  # names the file ...
            assert _spec_of(c, doc) == before  # ... and applied nothing
    _canary(c, f"{int(time.monotonic() * 1000) % 10**8}")
