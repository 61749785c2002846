"""The controllers (and apply's readiness wait, deletion, the tests' fake kubelet) read typed objects
(issue #16 item 1): outside the functions listed here as their edges
(building a write from the stored dict, reading the change log's rows, a stored dict's template hash), a
controller module never indexes a raw object (`x["spec"]`, `x.get("status")`) nor asks objects.py's dict
readers (`o.labels(x)`, `o.node_name(x)`, ...). Read from the source, so a dict walk cannot come back
unnoticed; an edge that is not used any more fails too, so the list stays the truth."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3] / "netsim" / "controlplane"

RAW_FIELDS = {"spec", "status", "metadata"}
# objects.py's readers of a manifest dict (identity readers - name, namespace, uid, ref, key - are not here:
# a write and an event name the object they write).
DICT_READERS = {"meta", "labels", "annotations", "selector_of", "controller_ref", "owned_by", "created",
                "creation_order", "phase", "is_terminating", "is_terminal", "is_active", "condition", "is_ready",
                "is_available", "node_name"}

# module -> the functions that may touch raw dicts (the edges), each with why.
EDGES: dict[str, dict[str, str]] = {
    "replicaset.py": {
        "_adoption": "an adopted pod's update starts from its stored dict",
        "_creates": "new pods are built from the stored template dict",
        "_affected": "the change log's rows (a deleted pod's last state)",
    },
    "deployment.py": {
        "revision": "kubectl's client side (rollout history, undo) reads stored dicts",
        "_scaled": "a ReplicaSet's scale starts from its stored dict",
        "_new_rs": "the new ReplicaSet is built from the stored template (its hash is over it)",
        "_renumber": "a renumbered ReplicaSet starts from its stored dict",
        "_template_match": "EqualIgnoreHash over the stored templates, as the hash",
        "without_hash": "a stored template without its hash label (EqualIgnoreHash, undo)",
        "_name_collides": "the hash of the stored template",
        "_collision": "the collisionCount status write",
        "_deployment_update": "the Deployment's update starts from its stored dict",
        "_owner": "the change log's rows",
    },
    "scheduler.py": {
        "_bind": "the binding starts from the stored pod",
        "_unparsed": "a pod that does not parse is still bound (its kubelet reports why)",
    },
    "nodes.py": {
        "_node_write": "Ready=Unknown and the lifecycle taints start from the stored Node",
        "_dependent_of": "the garbage collector still collects an orphan that does not parse",
        # the kubelet's side (node registration and heartbeats write the Node; agents read its row)
        "refreshed_status": "a restarted kubelet's status write",
        "refresh_default_labels": "the kubelet's label write",
        "heartbeat_status": "the kubelet's heartbeat write",
        "node_ip": "the kubelet step's hostIP from the Node row it heartbeats (controlplane.loop)",
        "node_ready": "the host agent reading a Node row",
    },
    "endpointslice.py": {
        "_managed": "the controller's own slices, compared with what it would write",
        "_slice_writes": "slices are created, updated and deleted as stored dicts",
        "_affected": "the change log's rows (a deleted pod's or Node's last state)",
    },
    "hpa.py": {
        "_stored_status": "the status write starts from the stored status",
        "_status_action": "the status write",
    },
    "knative.py": {
        "_deployment": "the revision's Deployment is built from the stored template",
        "_service": "the revision's Service (a write)",
        "_latest_ready": "status.latestReadyRevisionName, which the typed KnativeService does not carry",
        "_status": "the status write starts from the stored status",
        "_knative_services": "one that does not parse is reported on its stored row",
        "_scaled": "the revision Deployment's scale starts from its stored dict",
    },
    "workloads.py": {
        "_template_of": "pods are built from the stored template",
        "_template_hash": "the revision hash is over the stored template",
        "_daemon_pod_spec": "a daemon pod's spec from the stored template",
        "_sts_pod": "a StatefulSet pod built from the stored template",
        "_cron_job": "a CronJob's Job from the stored jobTemplate",
    },
    # the PDB (netsim.model.disruption), its pods and their controllers (ReplicationController too) are typed;
    # its status write starts from the stored row (`{**raw, "status": ...}`) without reading it.
    "disruption.py": {},
    "parsefailures.py": {
        "_stored_at": "a version that does not parse has only its stored row",
    },
    # apply's wait (which pods, why not ready): typed Pods, ReplicaSets and Jobs from the parse cache
    "readiness.py": {},
    "deletion.py": {
        "_mark_terminating": "a graceful delete's deletionTimestamp is written on the stored pod",
    },
    # the tests' kubelet: the typed Pod's node (the loop's Kubelet protocol hands out the stored dict)
    "fake_kubelet.py": {},
    "knative_runtime.py": {
        "KnativeRuntime._read_config": "the autoscaler ConfigMap's row (its data is parsed apart)",
    },
}


def raw_uses(tree: ast.AST) -> dict[str, list[str]]:
    """function name (outermost, or Class.method) -> the raw-dict uses found in it ("<module>" for module
    level)."""
    out: dict[str, list[str]] = {}

    def visit(node: ast.AST, fn: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = fn
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn == "<module>":
                name = child.name
            elif isinstance(child, ast.ClassDef) and fn == "<module>":
                name = child.name  # the class body; its methods count as Class.method
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and isinstance(node, ast.ClassDef) \
                    and fn == node.name:
                name = f"{node.name}.{child.name}"
            found = None
            if isinstance(child, ast.Subscript) and isinstance(child.slice, ast.Constant) \
                    and child.slice.value in RAW_FIELDS:
                found = f'[{child.slice.value!r}] line {child.lineno}'
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                f = child.func
                if f.attr == "get" and child.args and isinstance(child.args[0], ast.Constant) \
                        and child.args[0].value in RAW_FIELDS:
                    found = f'.get({child.args[0].value!r}) line {child.lineno}'
                elif isinstance(f.value, ast.Name) and f.value.id == "o" and f.attr in DICT_READERS:
                    found = f"o.{f.attr}() line {child.lineno}"
            if found:
                out.setdefault(name, []).append(found)
            visit(child, name)

    visit(tree, "<module>")
    return out


def assert_edges(path: Path, edges: dict[str, str], label: str) -> None:
    """`path` reads raw dicts only in the functions `edges` names, and each of them still does."""
    uses = raw_uses(ast.parse(path.read_text()))
    outside = {fn: u for fn, u in uses.items() if fn not in edges}
    assert outside == {}, f"{label}: raw dict reads outside its edge functions: {outside}"
    stale = set(edges) - set(uses)
    assert not stale, f"{label}: listed edges that touch no raw dict any more: {sorted(stale)}"


@pytest.mark.parametrize("module", sorted(EDGES))
def test_controller_reads_typed_objects_outside_its_edges(module):
    assert_edges(ROOT / module, EDGES[module], module)
