"""Service -> backend pods for `netsim explain SRC svc/NS/NAME:PORT`: named targetPorts resolved per pod."""

from __future__ import annotations

from typing import Any

from netsim.model.errors import Source
from netsim.model.loader import parse_object
from netsim.policy.model import ContainerPort, PodInfo, PolicyModel
from netsim.policy.verify import service_backends


def _svc(target: int | str, protocol: str = "TCP") -> Any:
    """The typed Service (as the store's parse cache hands it out)."""
    return parse_object({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"selector": {"app": "web"},
                                  "ports": [{"name": "http", "port": 80, "targetPort": target,
                                             "protocol": protocol}]}}, Source("t"))


MODEL = PolicyModel([], [
    PodInfo("default", "a", {"app": "web"}, "10.0.0.1", "n1", (ContainerPort("http", 8080),)),
    PodInfo("default", "b", {"app": "web"}, "10.0.0.2", "n2", (("http", 9090, "TCP"),)),
    PodInfo("default", "c", {"app": "web"}, "10.0.0.3", "n2", (("http", 53, "UDP"),)),  # name, other protocol
    PodInfo("other", "d", {"app": "web"}, "10.0.0.4", "n1", (("http", 8080, "TCP"),)),  # other namespace
    PodInfo("default", "e", {"app": "db"}, "10.0.0.5", "n1", (("http", 8080, "TCP"),)),  # not selected
], [])


def test_named_target_port_is_resolved_per_pod() -> None:
    got = [(p.key, port) for p, port in service_backends(MODEL, _svc("http"), 80)]
    assert got == [("default/a", 8080), ("default/b", 9090)]


def test_numeric_target_port_and_protocol() -> None:
    assert [(p.key, port) for p, port in service_backends(MODEL, _svc(8080), 80)] == \
        [("default/a", 8080), ("default/b", 8080), ("default/c", 8080)]
    assert [(p.key, port) for p, port in service_backends(MODEL, _svc("http", "UDP"), 80, "UDP")] == \
        [("default/c", 53)]
    assert service_backends(MODEL, _svc("http"), 81) == []
    assert service_backends(MODEL, _svc("http"), 80, "UDP") == []
