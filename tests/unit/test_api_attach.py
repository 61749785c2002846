"""Attaching to a cluster (`netsim.Cluster(name)`, what every CLI verb does) reads the state and nothing more:
the spec is parsed when asked for, admission needs it only for a Service, and the name checks live beside
the state (netsim.state), so `netsim apply` of a slice imports neither the builders nor the cluster model
(issue #16 item 2; tests/unit/cli/test_cli_imports.py counts the imports). No root: in process."""

from __future__ import annotations

import pytest

from netsim import lifecycle, naming, state
from netsim.api import Cluster, NoDaemon
from netsim.controlplane.admission import admit
from netsim.model import cluster as model_cluster
from netsim.model.cluster import ClusterSpec, default_cluster
from netsim.model.errors import SpecError
from netsim.store import MemoryStore

SLICE = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": True}}]}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}


def attached(spec_doc: dict) -> Cluster:
    store = MemoryStore()
    return Cluster("att", cluster_state=state.ClusterState(name="att", phase="ready", spec=spec_doc), store=store,
                   daemon=NoDaemon(store))


def test_the_spec_is_parsed_when_first_asked_for():
    c = attached(default_cluster("att").to_dict())
    assert c._spec is None
    assert isinstance(c.spec, ClusterSpec) and c.spec.name == "att" and c.spec is c.spec
    c.close()


def test_a_slice_is_written_without_the_spec_a_service_with_it():
    """A spec the cluster model refuses shows that nothing parsed it: a slice is admitted and stored without
    it, a Service (its ClusterIP comes from the spec's service network) needs it and says what is wrong."""
    bad = {**default_cluster("att").to_dict(), "spec": {"network": {"plugin": "weave"}}}
    c = attached(bad)
    assert c.apply([SLICE], wait=False)[-1] == "endpointslice/web-1 created"
    assert c._spec is None
    with pytest.raises(SpecError, match="plugin"):
        c.apply([SERVICE], wait=False)
    good = attached(default_cluster("att").to_dict())
    good.apply([SERVICE], wait=False)
    assert good.store.get("Service", "default", "web")["spec"]["clusterIP"]
    c.close()
    good.close()


def test_admission_without_a_spec_admits_what_allocates_nothing_and_refuses_a_service():
    out = admit([dict(SLICE)], None, [], ["default"])
    assert [o["kind"] for o in out] == ["EndpointSlice"]
    with pytest.raises(ValueError, match="Service"):
        admit([dict(SERVICE)], None, [], ["default"])


def test_the_name_checks_kept_their_old_homes():
    assert lifecycle.resolve_cluster is state.resolve_cluster and lifecycle.check_name is state.check_name
    assert model_cluster.cluster_name_problem("Bad_Name") == naming.cluster_name_problem("Bad_Name")
    assert "is not a cluster name" in (naming.cluster_name_problem("Bad_Name") or "")
    assert naming.cluster_name_problem("good") is None


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.typed: list[str] = []

    def typed_list(self, kind, *a, **kw):  # type: ignore[override]
        self.typed.append(kind)
        return super().typed_list(kind, *a, **kw)


def test_the_wait_after_a_slice_or_a_service_lists_no_pod_a_pod_s_does():
    """Nothing owns a pod through a Service or an EndpointSlice: the wait after applying them does not decode
    every pod of the cluster (at 1,000 pods, most of the CLI's wait); after a Pod it still looks at pods."""
    store = CountingStore()
    c = Cluster("att", cluster_state=state.ClusterState(name="att", phase="ready",
                                                         spec=default_cluster("att").to_dict()),
                store=store, daemon=NoDaemon(store))
    c.apply([SERVICE, SLICE], wait=False)
    c.wait_converged(5, [SERVICE, SLICE])
    assert store.typed == []
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    c.apply([pod], wait=False)
    c.wait_converged(5, [pod])
    assert "Pod" in store.typed
    c.close()
