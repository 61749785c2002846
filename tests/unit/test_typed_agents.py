"""The agents, the node-side helpers, DNS, policy, trace, kube-proxy's tracker and the daemon read typed
objects (issue #16 item 1, the agents' side; tests/unit/controlplane/test_typed_controllers.py is the
controllers'): outside the functions listed here as their edges (a status write starting from the stored
dict, the change log's rows, a file, the runtime's container config, printing), a module never indexes a
raw object (`x["spec"]`, `x.get("status")`, `x["metadata"]`) nor asks objects.py's dict readers
(`o.labels(x)`, `o.node_name(x)`, `o.phase(x)`, ...). Read from the source, so a dict walk cannot come
back unnoticed; an edge that is not used any more fails too, so the list stays the truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.controlplane.test_typed_controllers import assert_edges

ROOT = Path(__file__).resolve().parents[2] / "netsim"

# The reason shared by the node helpers that build a container's runtime config from the stored pod: the
# CRI config is made from the v1.Container and the pod fields the typed Pod keeps only as given
# (`PodSpec.extra`, `Container.extra`: securityContext, volumes, volumeMounts, envFrom, lifecycle).
RUNTIME = "the container's runtime config from the stored pod's fields the typed Pod keeps as given"
DOWNWARD = "the downward API reads the pod's fields by their JSON paths (fieldRef, resourceFieldRef)"

# module (under netsim/) -> the functions that may touch raw dicts (the edges), each with why.
EDGES: dict[str, dict[str, str]] = {
    # -- the kubelet: pod source, pod work queue, ClusterKubelet --------------------------------------
    "agents/podread.py": {
        "unparsed": "a stored pod that does not parse, read leniently (its sandbox is refused, it goes on)",
        "container_manifests": RUNTIME,
    },
    "agents/kubelet.py": {
        "with_sandbox_ip": "the downward API's status.podIP before the status write (a copy of the stored pod)",
    },
    "agents/pod_sync.py": {
        "sandbox_changed_status": "the SandboxChanged status write starts from the stored status",
        "container_statuses_status": "the containerStatuses write starts from the stored status",
    },
    "agents/pod_source.py": {},
    "agents/metrics.py": {},
    "agents/felix.py": {
        "FelixCalc._overlay": "what-if policies overlaid on the stored rows (a what-if is parsed apart)",
    },
    "agents/changes.py": {"ChangeTracker.relist": "the change log's rows (identity of each listed row)"},
    "agents/dns.py": {
        "_spec_view": "the change log's rows: whether a change can alter DNS answers, before any decode",
    },
    "agents/flannel.py": {},
    "agents/speaker.py": {},
    # -- the node-side helpers ------------------------------------------------------------------------
    "node/hosts_file.py": {},
    "node/service_ports.py": {},
    "node/metrics_sampler.py": {},
    "node/security.py": {"effective": RUNTIME},
    "node/termination.py": {
        "grace_of": "metadata.deletionGracePeriodSeconds, which the typed ObjectMeta does not carry",
        "drain_seconds": "the pod handed to the terminator is the stored one (its preStop hooks)",
        "Terminator.step": RUNTIME + " (lifecycle.preStop)",
    },
    "node/init_containers.py": {
        "InitRunner._key": "the identity of the stored pod it is handed",
        "InitRunner.advance": RUNTIME + " (init containers, their restartPolicy)",
        "InitRunner.statuses": "the initContainerStatuses write starts from the stored status",
    },
    "node/pod_env.py": {
        "PodContext.namespace": DOWNWARD,
        "field_value": DOWNWARD,
        "resource_value": DOWNWARD,
    },
    "node/pod_setup.py": {
        "should_automount": RUNTIME + " (automountServiceAccountToken)",
        "service_account_name": RUNTIME + " (serviceAccountName)",
        "api_access_volume": RUNTIME + " (the projected token volume)",
        "PodSetup.context": "ConfigMap, Secret and Node rows the containers' env and volumes read",
        "PodSetup.token": "the ServiceAccount row's uid, bound into the token",
        "PodSetup.api_access": RUNTIME + " (volumes)",
        "PodSetup.container_config": RUNTIME + " (volumes)",
        "PodSetup.sync_volumes": RUNTIME + " (the API-data volumes rewritten)",
    },
    # -- DNS, kube-proxy's tracker, trace ------------------------------------------------------------
    "dns/source.py": {
        "_owner": "snapshot_from_dicts's manifest dicts (files, tests)",
        "snapshot_from_dicts": "manifest dicts in (files, tests); a store's objects go through snapshot_from_typed",
    },
    "proxy/tracker.py": {
        "_ns": "a row's identity, keyed before it is parsed (the change log, a relist)",
        "_rv": "a row's resourceVersion: an unchanged version is not parsed again",
        "ProxyTracker.relist": "the listed rows' identity, before they are parsed",
    },
    "trace/observe/facts.py": {},
    "trace/resolve.py": {},
    # -- the daemon -----------------------------------------------------------------------------------
    "daemon.py": {
        "Daemon.bootstrap": "a restarted kubelet's Node status write starts from the stored Node",
        "Daemon._invalid": "the Programmed=False status write starts from the stored status",
    },
    # -- the Python API (netsim.Cluster): it hands out and takes stored dicts (its contract) ------------
    "api.py": {
        "Cluster.apply": "apply's report: the stored rows' resourceVersions before and after the write",
        "Cluster.update": "a write (its resourceVersion is the compare-and-swap's)",
        "Cluster.scale": "a write: spec.replicas set on the stored object",
        "Cluster.set_image": "a write: the stored template's containers",
        "Cluster.set_node_failed": "a write: the Node's annotation",
        "Cluster.wait_converged": "the applied manifests' identity (what the wait watches)",
        "Cluster.verify": "what-if rows (a netsim kind kept as stored) and their owner",
        "Cluster.verify_diff": "a file's manifest (a what-if policy parsed apart)",
        "_declared_ports": "the stored pod a probe endpoint carries (ProbeEndpoint.pod, the API's dict)",
    },
    # -- policy ---------------------------------------------------------------------------------------
    "policy/verify.py": {},
}


@pytest.mark.parametrize("module", sorted(EDGES))
def test_agent_reads_typed_objects_outside_its_edges(module):
    assert_edges(ROOT / module, EDGES[module], module)


# The CLI is kubectl's client side: it prints stored objects and writes them, for any kind (custom kinds too),
# so its raw reads are edges by nature; every other CLI module reads none. Each listed with why.
PRINT = "printing stored objects (kubectl's client side, any kind)"
CLI_EDGES: dict[str, dict[str, str]] = {
    "get.py": {
        "select": PRINT + ": names, namespaces and label selection over the listed rows",
        "_endpoints_by_service": PRINT + ": the slices a Service's row prints",
        "_labels_text": PRINT + " (--show-labels)",
        "render": PRINT + " (-o name)",
        "select_one": PRINT + ": a named object's labels against -l",
    },
    "mutate.py": {
        "_write": "a write and its report, naming the stored object",
        "_meta_verb": "a write: labels or annotations set on the stored object (kubectl label/annotate)",
        "edit": "a write: the edited file against the stored object (kubectl edit)",
    },
    "resources.py": {"_delete": "the rows a delete names (their identity)"},
    "top.py": {
        "top_pods": PRINT + " (kubectl top pod)",
        "top_nodes": PRINT + ": a Node row's allocatable (kubectl top node)",
    },
    "wait.py": {
        "met": "kubectl wait --for=condition over a stored object's status, for any kind",
        "_wait": "the rows a wait names (their identity)",
    },
}


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "cli").glob("*.py")))
def test_cli_reads_raw_dicts_only_at_its_edges(module):
    assert_edges(ROOT / "cli" / module, CLI_EDGES.get(module, {}), f"cli/{module}")


def test_every_cli_edge_module_exists():
    assert set(CLI_EDGES) <= {p.name for p in (ROOT / "cli").glob("*.py")}
