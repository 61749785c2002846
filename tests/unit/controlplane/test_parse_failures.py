"""A stored object that no longer parses is skipped by its controller and reported on itself: a Warning event
FailedParse naming the field, once per resourceVersion (netsim.controlplane.parsefailures)."""

from __future__ import annotations

from netsim.controlplane.events import list_events

from .conftest import deployment

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
"""


def _failed(h) -> list:
    return [e for e in list_events(h.store) if e.reason == "FailedParse"]


def _break(h, kind: str, path: tuple[str, ...], value) -> None:
    """A write around validation (as only a direct store write can make one)."""
    cur = h.get(kind, "web")
    d = cur
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    h.store.update(cur)


def test_an_object_that_no_longer_parses_is_reported_on_itself_once_per_version(h):
    h.add_nodes(1)
    h.apply(deployment(replicas=2) + "---" + SERVICE + "---" + deployment(name="api", replicas=1))
    h.converge()
    rs = next(x for x in h.store.list("ReplicaSet") if x["metadata"]["name"].startswith("web-"))
    _break(h, "Deployment", ("spec", "replicas"), "many")
    _break(h, "Service", ("spec", "ports"), [{"port": "eighty"}])
    for _ in range(3):  # several passes: one event per version, not one per pass
        h.once()
    events = {e.object: e for e in _failed(h)}
    assert len(_failed(h)) == 2 and set(events) == {"Deployment default/web", "Service default/web"}
    dep = events["Deployment default/web"]
    assert (dep.type, dep.actor) == ("Warning", "controller/deployment")
    assert dep.message.startswith("stored object does not parse: field spec.replicas: must be an integer")
    assert "field spec.ports[0].port" in events["Service default/web"].message
    assert events["Service default/web"].actor == "controller/endpointslice"
    # the rest goes on: the other Deployment still scales, the bad one's ReplicaSet and pods are untouched
    cur = h.get("Deployment", "api")
    cur["spec"]["replicas"] = 2
    h.store.update(cur)
    h.converge()
    assert len(h.names(app="api")) == 2 and len(h.names(app="web")) == 2
    assert h.get("ReplicaSet", rs["metadata"]["name"])["spec"]["replicas"] == 2
    # a new version that still does not parse is reported again, once
    _break(h, "Deployment", ("spec", "replicas"), "lots")
    h.once()
    h.once()
    assert [e.object for e in _failed(h)].count("Deployment default/web") == 2
