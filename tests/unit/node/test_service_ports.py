"""The workload server also serves the numeric targetPorts of the Services selecting a played pod (real
images listen on ports they never declare); named targetPorts are declared ports, served anyway."""

from __future__ import annotations

from typing import Any

from netsim.agents.kubelet import ClusterKubelet
from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.node.service_ports import index_services, target_ports_for


def svc(name: str, selector: dict, ports: list[dict], ns: str = "default", **spec) -> Any:
    if spec.get("type") == "ExternalName":
        spec["externalName"] = "example.com"
    return parse_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                         "spec": {"selector": selector, "ports": ports, **spec}}, Source("t"))


def typed(pod: dict) -> Any:
    return parse_object(pod, Source("t"))


def pod(labels: dict, containers: list[dict], ns: str = "default", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns, "labels": labels},
            "spec": {"containers": containers or [{"name": "c", "image": "x"}], **spec}}


INDEX = index_services([
    svc("web", {"app": "web"}, [{"name": "a", "port": 80, "targetPort": 8080},
                                {"name": "b", "port": 81, "targetPort": "http"},
                                {"name": "c", "port": 53, "targetPort": 5353, "protocol": "UDP"},
                                {"name": "d", "port": 9000}]),
    svc("metrics", {"app": "web", "tier": "x"}, [{"port": 9090, "targetPort": 9091}]),
    svc("other-ns", {"app": "web"}, [{"port": 1, "targetPort": 7777}], ns="prod"),
    svc("manual", {}, [{"port": 2, "targetPort": 6666}]),
    svc("ext", {"app": "web"}, [{"port": 3, "targetPort": 5555}], type="ExternalName"),
])


def test_numeric_target_ports_of_selecting_services_in_the_pods_namespace():
    assert target_ports_for(typed(pod({"app": "web"}, [])), INDEX) == [(5353, "UDP"), (8080, "TCP"), (9000, "TCP")]
    assert (9091, "TCP") in target_ports_for(typed(pod({"app": "web", "tier": "x"}, [])), INDEX)
    assert target_ports_for(typed(pod({"app": "web"}, [], ns="prod")), INDEX) == [(7777, "TCP")]
    assert target_ports_for(typed(pod({"app": "db"}, [])), INDEX) == []


def test_only_pods_whose_containers_are_all_played_serve_them():
    played = pod({"app": "web"}, [{"name": "c", "image": "x", "ports": [{"containerPort": 8443}]}])
    assert ClusterKubelet._ports(played, typed(played), services=INDEX) == [
        (5353, "UDP"), (8080, "TCP"), (8443, "TCP"), (9000, "TCP")]
    assert ClusterKubelet._ports(played, typed(played)) == [(8443, "TCP")]  # no Services known: the declared ports
    # A container with a command runs a process that may be the listener: nothing is added for it,
    # nor while a played container is down, nor on the host network.
    mixed = pod({"app": "web"}, [{"name": "c", "image": "x"}, {"name": "s", "image": "y", "command": ["sleep"]}])
    assert ClusterKubelet._ports(mixed, typed(mixed), services=INDEX) == []
    sidecar = pod({"app": "web"}, [{"name": "c", "image": "x"}],
                  initContainers=[{"name": "s", "image": "y", "command": ["sleep"], "restartPolicy": "Always"}])
    assert ClusterKubelet._ports(sidecar, typed(sidecar), services=INDEX) == []
    init = pod({"app": "web"}, [{"name": "c", "image": "x"}], initContainers=[{"name": "i", "command": ["true"]}])
    assert (8080, "TCP") in ClusterKubelet._ports(init, typed(init), services=INDEX)
    assert ClusterKubelet._ports(played, typed(played), {"c"}, services=INDEX) == []
    host = pod({"app": "web"}, [{"name": "c", "image": "x"}], hostNetwork=True)
    assert ClusterKubelet._ports(host, typed(host), services=INDEX) == []


class CountingLabels(dict):
    """A pod's labels that count the selector lookups made against them."""

    lookups = 0

    def get(self, key, default=None):
        CountingLabels.lookups += 1
        return super().get(key, default)


def test_a_pods_services_are_found_by_its_labels_not_by_matching_every_selector():
    from types import SimpleNamespace
    index = index_services(svc(f"s{i}", {"grp": f"g{i}", "app": "web"}, [{"port": 80, "targetPort": 8000 + i}])
                           for i in range(2000))
    labels = CountingLabels(grp="g7", app="web")
    p = SimpleNamespace(meta=SimpleNamespace(namespace="default", labels=labels))
    CountingLabels.lookups = 0
    assert target_ports_for(p, index) == [(8007, "TCP")]
    assert CountingLabels.lookups <= 4  # the one entry filed under a label of the pod (2,000 selectors before)


def test_the_services_that_changed_are_those_added_removed_or_changed():
    old = index_services([svc("a", {"app": "a"}, [{"port": 80, "targetPort": 8080}]),
                          svc("b", {"app": "b"}, [{"port": 80, "targetPort": 8080}])])
    new = index_services([svc("a", {"app": "a"}, [{"port": 80, "targetPort": 8080}]),
                          svc("b", {"app": "b"}, [{"port": 80, "targetPort": 9090}]),
                          svc("c", {"app": "c"}, [{"port": 80, "targetPort": 8080}], ns="prod")])
    changed = old.changed(new)
    assert changed.matching("default", {"app": "a"}) == []
    assert len(changed.matching("default", {"app": "b"})) == 2  # its old and its new ports
    assert len(changed.matching("prod", {"app": "c"})) == 1
    assert not old.changed(old)
