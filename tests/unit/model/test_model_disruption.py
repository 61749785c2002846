"""The typed PodDisruptionBudget and ReplicationController (netsim.model.disruption,
netsim.model.replicationcontroller): parsed as kube-apiserver validates and defaults them, decoded with their
status by the store's parse cache, and a bad one refused by `netsim apply` naming its field, nothing written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from netsim.model.disruption import PodDisruptionBudget
from netsim.model.errors import SpecErrors
from netsim.model.loader import parse_documents, parse_mappings
from netsim.model.replicationcontroller import ReplicationController
from netsim.store import MemoryStore

PDB = """
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec: {maxUnavailable: 25%, selector: {matchLabels: {app: web}}, unhealthyPodEvictionPolicy: AlwaysAllow}
"""

RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
"""


def test_a_pdb_parses_typed_and_round_trips():
    (pdb,) = parse_documents(PDB, "pdb.yaml")
    assert isinstance(pdb, PodDisruptionBudget)
    assert (pdb.max_unavailable, pdb.min_available, pdb.eviction_policy) == ("25%", None, "AlwaysAllow")
    assert pdb.selects({"app": "web"}) and not pdb.selects({"app": "api"})
    assert pdb.to_dict()["spec"] == {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "web"}},
                                     "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    assert parse_mappings([pdb.to_dict()], "<store>")[0] == pdb


def test_policy_v1_keeps_a_nil_selector_apart_from_an_empty_one():
    (nil,) = parse_documents("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: a}\n"
                             "spec: {minAvailable: 1}\n")
    (every,) = parse_documents("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: a}\n"
                               "spec: {minAvailable: 1, selector: {}}\n")
    assert nil.selector is None and not nil.selects({"app": "web"}) and nil.eviction_policy == "IfHealthyBudget"
    assert every.selects({"app": "web"}) and every.to_dict()["spec"]["selector"] == {}


def test_the_parse_cache_decodes_a_stored_pdb_with_its_status():
    s = MemoryStore()
    (pdb,) = parse_documents(PDB, "pdb.yaml")
    stored = s.create(pdb.to_dict())
    s.update_status("PodDisruptionBudget", "default", "web", {
        "observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 4, "desiredHealthy": 3,
        "expectedPods": 4, "disruptedPods": {"web-1": "2026-01-01T00:00:00Z"},
        "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]})
    typed = s.typed("PodDisruptionBudget", "default", "web")
    assert typed.meta.uid == stored["metadata"]["uid"]
    st = typed.status
    assert (st.observed_generation, st.disruptions_allowed, st.current_healthy, st.desired_healthy,
            st.expected_pods) == (1, 1, 4, 3, 4)
    assert dict(st.disrupted_pods) == {"web-1": "2026-01-01T00:00:00Z"}
    assert st.condition("DisruptionAllowed").true
    assert s.typed("PodDisruptionBudget", "default", "web") is typed  # once per resourceVersion


def test_a_replicationcontroller_is_defaulted_as_the_api_server_does():
    (rc,) = parse_documents(RC, "rc.yaml")
    assert isinstance(rc, ReplicationController)
    # SetDefaults_ReplicationController: the selector and the object's labels from the template's labels
    assert (rc.selector, rc.meta.labels, rc.replicas) == ({"app": "web"}, {"app": "web"}, 1)
    assert rc.selects({"app": "web", "x": "y"}) and not rc.selects({})
    assert parse_mappings([rc.to_dict()], "<store>")[0] == rc


@pytest.mark.parametrize(("spec", "field", "message"), [
    ("{minAvailable: 1, maxUnavailable: 1}", "spec", "minAvailable and maxUnavailable cannot be both set"),
    ('{minAvailable: "5"}', "spec.minAvailable", "a valid percent string"),
    ("{maxUnavailable: 101%}", "spec.maxUnavailable", "must not be greater than 100%"),
    ("{minAvailable: -1}", "spec.minAvailable", "must be greater than or equal to 0"),
    ("{unhealthyPodEvictionPolicy: Never}", "spec.unhealthyPodEvictionPolicy", "IfHealthyBudget, AlwaysAllow"),
    ("{minAvailable: 1, selector: {matchLabels: {app: 'a b'}}}", "spec.selector.matchLabels", ""),
])
def test_a_bad_pdb_names_its_field(spec, field, message):
    with pytest.raises(SpecErrors) as e:
        parse_documents(f"apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web}}\nspec: {spec}\n",
                        "pdb.yaml")
    text = str(e.value)
    assert f"PodDisruptionBudget default/web: field {field}" in text and message in text, text


def test_netsim_apply_refuses_a_bad_pdb_with_exit_2_naming_the_field_and_writes_nothing(monkeypatch):
    """Through the CLI, in process (netsim.cli.front.InProcessFront: a fake kernel, an in-memory store)."""
    from netsim import preflight
    from netsim.cli.front import InProcessFront
    from netsim.cli.main import cli
    from netsim.kernel.fake import FakeKernel

    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    front = InProcessFront(FakeKernel(), MemoryStore)
    try:
        def run(*args: str, input: str | None = None):
            return CliRunner().invoke(cli, list(args), obj=front, input=input, catch_exceptions=False)

        assert run("up", "--name", "pdbs", "-o", "json").exit_code == 0
        bad = PDB.replace("maxUnavailable: 25%", "maxUnavailable: 25%, minAvailable: 1") + "---\n" + RC
        r = run("apply", "-f", "-", input=bad)
        assert r.exit_code == 2, r.output
        assert "PodDisruptionBudget default/web: field spec: minAvailable and maxUnavailable cannot be both set" \
            in r.output
        r = run("get", "pdb,rc", "-A")
        assert "No resources found" in r.output, r.output  # all or nothing: the good RC is not written either
        r = run("apply", "-f", "-", input=PDB)
        assert r.exit_code == 0, r.output
        r = run("get", "pdb")
        assert r.output.split("\n")[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED",
                                                   "DISRUPTIONS", "AGE"]
        assert r.output.split("\n")[1].split()[:4] == ["web", "N/A", "25%", "0"], r.output
    finally:
        front.remove_all()
