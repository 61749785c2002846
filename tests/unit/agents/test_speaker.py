"""The LoadBalancer speaker (netsim/agents/speaker.py) on the fake kernel: one live node answers ARP for an
IP of the node network, the fabric routes other IPs to it; a failed node's IPs move, Local policy keeps them
on nodes with a serving endpoint (MetalLB speaker layer2_controller.go ShouldAnnounce)."""

from __future__ import annotations

from netsim import naming
from netsim.agents.speaker import Speaker
from netsim.kernel.api import Route
from netsim.kernel.fake import FakeKernel
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source
from netsim.node.network import NodeRec
from netsim.store import MemoryStore

SPEC = parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "spk"},
                      "spec": {"nodes": [{"name": "n1"}, {"name": "n2"}, {"name": "n3"}]}}, Source("c.yaml"))
NODES = {n.name: NodeRec(n.name, SPEC.node_ip(i), f"10.244.{i}.0/24") for i, n in enumerate(SPEC.nodes)}
LB_IP = str(SPEC.node_net.network_address + 200)  # inside the node network: ARP
EXT_IP = "203.0.113.7"  # outside: routed by the fabric


def world() -> tuple[FakeKernel, MemoryStore, Speaker, list]:
    kernel = FakeKernel()
    kernel.netns_create(naming.fabric_ns(SPEC.name))
    for n in NODES:
        ns = naming.node_ns(SPEC.name, n)
        kernel.netns_create(ns)
        kernel.bridge_add(ns, naming.UPLINK)
    store = MemoryStore()
    events: list = []
    return kernel, store, Speaker(SPEC, NODES, kernel, store, lambda *e: events.append(e)), events


def service(store: MemoryStore, *, local: bool = False) -> None:
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"type": "LoadBalancer", "externalIPs": [EXT_IP], "ports": [{"port": 80}],
                           **({"externalTrafficPolicy": "Local"} if local else {})},
                  "status": {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}})


def proxied(kernel: FakeKernel) -> dict[str, set]:
    return {n: kernel.ns[naming.node_ns(SPEC.name, n)].proxy_neighs for n in NODES}


def test_each_ip_is_announced_by_one_node_and_moves_when_it_fails():
    kernel, store, speaker, events = world()
    service(store)
    speaker.sync(NODES)
    owner = speaker.announced[LB_IP]
    assert [n for n, s in proxied(kernel).items() if (naming.UPLINK, LB_IP) in s] == [owner]
    fabric = kernel.routes(naming.fabric_ns(SPEC.name))
    assert fabric == [Route(dst=f"{EXT_IP}/32", via=NODES[speaker.announced[EXT_IP]].ip)]
    calls = len(kernel.calls)
    speaker.sync(NODES)
    assert len(kernel.calls) == calls  # nothing changed: nothing done
    speaker.sync([n for n in NODES if n != owner])
    assert speaker.announced[LB_IP] != owner
    assert (naming.UPLINK, LB_IP) not in proxied(kernel)[owner]
    assert (naming.UPLINK, LB_IP) in proxied(kernel)[speaker.announced[LB_IP]]
    assert {e[1] for e in events} >= {"IPAnnounced", "IPWithdrawn"}


def test_local_policy_announces_only_from_nodes_with_a_serving_endpoint():
    kernel, store, speaker, _ = world()
    service(store, local=True)
    speaker.sync(NODES)
    assert speaker.announced == {}
    store.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "web-1", "namespace": "default",
                               "labels": {"kubernetes.io/service-name": "web"}},
                  "addressType": "IPv4", "ports": [{"port": 80}],
                  "endpoints": [{"addresses": ["10.244.2.5"], "nodeName": "n3", "conditions": {"ready": True}}]})
    speaker.sync(NODES)
    assert speaker.announced == {LB_IP: "n3", EXT_IP: "n3"}


def test_speakers_of_several_hosts_elect_one_announcer_among_all_live_nodes():
    # One speaker per host agent, each running some of the nodes: all see every live node (theirs, and the
    # other hosts' Ready ones), so exactly one of them announces each IP, as MetalLB's speakers agree.
    kernel, store, _, events = world()
    service(store)
    speakers = [Speaker(SPEC, {n: NODES[n] for n in part}, kernel, store, lambda *e: events.append(e))
                for part in (["n1"], ["n2", "n3"])]
    for sp in speakers:
        sp.sync(NODES)
    owners = [sp.announced.get(LB_IP) for sp in speakers]
    assert len([o for o in owners if o]) == 1
    assert [n for n, s in proxied(kernel).items() if (naming.UPLINK, LB_IP) in s] == [next(o for o in owners if o)]
    assert len(kernel.routes(naming.fabric_ns(SPEC.name))) == 1


class CountingStore(MemoryStore):
    """A MemoryStore that counts the objects it decodes for `list` (what a sync costs at 10,000 slices)."""

    def __init__(self) -> None:
        super().__init__()
        self.listed = 0

    def list(self, kind, namespace=None, selector=None):
        out = super().list(kind, namespace, selector)
        self.listed += len(out)
        return out


def test_a_sync_reads_what_changed_not_every_service_and_slice():
    """At 10,000 Services every sync listed and decoded every Service and EndpointSlice on the daemon's main
    thread (while kube-proxy rendered the same change): the speaker now keeps what it needs from the change
    log, as MetalLB's speaker from its watch."""
    kernel, _, _, events = world()
    store = CountingStore()
    speaker = Speaker(SPEC, NODES, kernel, store, lambda *e: events.append(e))
    for i in range(20):
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": "default"},
                      "spec": {"ports": [{"port": 80}]}})
    service(store, local=True)
    speaker.sync(NODES)
    assert speaker.announced == {}
    listed = store.listed  # the first sync reads everything once (an informer's list)
    store.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "web-1", "namespace": "default",
                               "labels": {"kubernetes.io/service-name": "web"}},
                  "addressType": "IPv4", "ports": [{"port": 80}],
                  "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "n2", "conditions": {"ready": True}}]})
    speaker.sync(NODES)
    assert speaker.announced == {LB_IP: "n2", EXT_IP: "n2"}
    sl = store.get("EndpointSlice", "default", "web-1")
    sl["endpoints"][0]["conditions"] = {"ready": False}
    store.update(sl)
    speaker.sync(NODES)
    assert speaker.announced == {}  # its one serving endpoint went: Local has nowhere to announce from
    store.delete("Service", "default", "web")
    speaker.sync(NODES)
    assert speaker.announced == {} and store.listed == listed
