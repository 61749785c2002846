"""Services on a running cluster, end to end through the kernel: kube-proxy's rules as the daemon writes
them, each CNI data path, the workload server answering with the client address it saw.

One cluster per (plugin, backend), shared by the tests of that combination (module scope, removed by the
finaliser). The full set runs on flannel/vxlan; the core (ClusterIP to a cross-node endpoint, NodePort from
outside with masquerade) runs on every combination. What is expected follows kube-proxy's iptables mode
(kubernetes pkg/proxy/iptables/proxier.go; summarised in docs/reference/kube-proxy.md sections 5 and 6):

- pod -> ClusterIP: DNAT to the endpoint, no masquerade for pod sources (cluster-CIDR detector);
- node -> ClusterIP: DNAT in nat OUTPUT, masqueraded (the node IP is outside the cluster CIDR);
- external -> NodePort with eTP=Cluster: masqueraded, so the server sees an address of the node;
- eTP=Local: the client IP is kept on a node with a local endpoint, and a node without one DROPs
  (a timeout, not a refusal);
- no endpoints: REJECT (refused); sessionAffinity ClientIP: `-m recent` pins a source IP to one endpoint;
- hairpin: a pod reaching itself through its Service is masqueraded (KUBE-SEP `-s <ep> -j KUBE-MARK-MASQ`)
  and must still get its answer.
"""

from __future__ import annotations

import pytest
from svc_cluster import (
    COMBOS,
    FULL,
    HOST_IP,
    combo_id,
    describe,
    node_addresses,
    node_ip,
    node_port,
    running_cluster,
    served,
)

pytestmark = pytest.mark.root

EXTERNAL_IP = "172.18.100.10"  # on the underlay's network, outside the nodes and the LoadBalancer pool

MANIFESTS = f"""
apiVersion: v1
kind: Pod
metadata: {{name: web-a, labels: {{app: web, pod: web-a}}}}
spec:
  nodeName: node-1
  containers: [{{name: web, image: agnhost, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web-b, labels: {{app: web, pod: web-b}}}}
spec:
  nodeName: node-2
  containers: [{{name: web, image: agnhost, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{role: client}}}}
spec:
  nodeName: node-1
  containers: [{{name: client, image: busybox}}]
---
apiVersion: v1
kind: Service
metadata: {{name: svc-a}}
spec:
  selector: {{pod: web-a}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: svc-b}}
spec:
  selector: {{pod: web-b}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-local}}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {{pod: web-a}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  selector: {{app: nothing}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: ext}}
spec:
  selector: {{app: web}}
  externalIPs: ["{EXTERNAL_IP}"]
  ports: [{{port: 80, targetPort: 8080}}]
"""


@pytest.fixture(scope="module")
def cluster(request):
    """A two-node cluster of the requested (plugin, backend) with the manifests above applied."""
    plugin, backend = request.param
    with running_cluster(plugin, backend) as c:
        c.apply(MANIFESTS)
        pods = {p["metadata"]["name"]: p for p in c.pods("default")}
        assert {"web-a", "web-b", "client"} <= set(pods), sorted(pods)
        yield c


ALL = pytest.mark.parametrize("cluster", COMBOS, ids=combo_id, indirect=True)
ONLY_FULL = pytest.mark.parametrize("cluster", [FULL], ids=combo_id, indirect=True)


# --- core: every combination ----------------------------------------------------------------------


@ALL
def test_pod_to_cluster_ip_cross_node(cluster):
    res = cluster.probe(frm="default/client", to="svc/default/svc-b", count=3)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {"default/web-b"}
    # Pod sources are not masqueraded for ClusterIP traffic (the cluster-CIDR detector).
    client_ip = cluster.sources("default/client")[0].ip
    assert {r.client_ip for r in res} == {client_ip}, describe(res)


@ALL
def test_host_to_node_port_is_masqueraded_on_every_node(cluster):
    np = node_port(cluster, "web")
    for node in ("node-1", "node-2"):
        res = cluster.probe(frm="host/client", to=f"{node_ip(cluster, node)}:{np}", count=8)
        assert all(r.connected for r in res), f"{node}: {describe(res)}"
        mine = node_addresses(cluster, node)
        for r in res:
            assert r.client_ip != HOST_IP and r.client_ip in mine, \
                f"{node}: server saw {r.client_ip}, expected one of {sorted(mine)}"


# --- full set: one combination --------------------------------------------------------------------


@ONLY_FULL
def test_pod_to_cluster_ip_same_node(cluster):
    res = cluster.probe(frm="default/client", to="svc/default/svc-a", count=3)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {"default/web-a"}
    assert {r.client_ip for r in res} == {cluster.sources("default/client")[0].ip}


@ONLY_FULL
@pytest.mark.parametrize("frm", ["node-1", "node-2"])
def test_node_to_cluster_ip(cluster, frm):
    for svc, pod in (("svc-a", "default/web-a"), ("svc-b", "default/web-b")):
        res = cluster.probe(frm=f"node/{frm}", to=f"svc/default/{svc}", count=2)
        assert all(r.connected for r in res), f"{frm} -> {svc}: {describe(res)}"
        assert set(served(res)) == {pod}
        # Node-originated ClusterIP traffic is masqueraded: the server sees an address of the node.
        assert {r.client_ip for r in res} <= node_addresses(cluster, frm), describe(res)


@ONLY_FULL
def test_node_port_reaches_both_endpoints_from_each_node(cluster):
    np = node_port(cluster, "web")
    for node in ("node-1", "node-2"):
        res = cluster.probe(frm="host/client", to=f"{node_ip(cluster, node)}:{np}", count=40)
        assert all(r.connected for r in res), describe(res)
        assert set(served(res)) == {"default/web-a", "default/web-b"}, f"{node}: {served(res)}"


@ONLY_FULL
def test_external_traffic_policy_local_keeps_client_ip(cluster):
    np = node_port(cluster, "web-local")
    res = cluster.probe(frm="host/client", to=f"{node_ip(cluster, 'node-1')}:{np}", count=5)
    assert all(r.connected for r in res), describe(res)
    assert {r.client_ip for r in res} == {HOST_IP}, describe(res)
    assert set(served(res)) == {"default/web-a"}


@ONLY_FULL
def test_external_traffic_policy_local_drops_without_local_endpoint(cluster):
    np = node_port(cluster, "web-local")
    res = cluster.probe(frm="host/client", to=f"{node_ip(cluster, 'node-2')}:{np}", count=2, timeout=1.0)
    assert [r.outcome for r in res] == ["timeout", "timeout"], describe(res)


@ONLY_FULL
@pytest.mark.parametrize("frm", ["default/client", "node/node-2"])
def test_session_affinity_pins_client(cluster, frm):
    # One connection first so the affinity entry exists, then 20 more (concurrent) must follow it.
    first = cluster.probe(frm=frm, to="svc/default/sticky")
    assert first[0].connected, describe(first)
    res = cluster.probe(frm=frm, to="svc/default/sticky", count=20)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {first[0].served_by}, served(res)


@ONLY_FULL
def test_session_affinity_pins_external_client_through_node_port(cluster):
    """Same through a NodePort of a sticky NodePort service: the recent list is keyed on the source the
    PREROUTING DNAT sees (the host's IP), before any masquerade."""
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sticky-np"},
                   "spec": {"type": "NodePort", "selector": {"app": "web"}, "sessionAffinity": "ClientIP",
                            "ports": [{"port": 80, "targetPort": 8080}]}})
    target = f"{node_ip(cluster, 'node-2')}:{node_port(cluster, 'sticky-np')}"
    first = cluster.probe(frm="host/client", to=target)
    assert first[0].connected, describe(first)
    res = cluster.probe(frm="host/client", to=target, count=20)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {first[0].served_by}


@ONLY_FULL
@pytest.mark.parametrize("frm", ["default/client", "node/node-2"])
def test_service_without_endpoints_rejects(cluster, frm):
    res = cluster.probe(frm=frm, to="svc/default/empty", count=2, timeout=1.0)
    assert [r.outcome for r in res] == ["refused", "refused"], describe(res)


@ONLY_FULL
def test_node_port_without_endpoints_rejects_from_outside(cluster):
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty-np"},
                   "spec": {"type": "NodePort", "selector": {"app": "nothing"},
                            "ports": [{"port": 80, "targetPort": 8080}]}})
    target = f"{node_ip(cluster, 'node-1')}:{node_port(cluster, 'empty-np')}"
    res = cluster.probe(frm="host/client", to=target, timeout=1.0)
    assert res[0].outcome == "refused", describe(res)


@ONLY_FULL
def test_hairpin_pod_reaches_itself_through_its_service(cluster):
    res = cluster.probe(frm="default/web-a", to="svc/default/svc-a", count=3)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {"default/web-a"}
    # KUBE-SEP masquerades hairpin traffic, so the pod does not see its own address as the client.
    own = cluster.sources("default/web-a")[0].ip
    assert own not in {r.client_ip for r in res}, describe(res)


@ONLY_FULL
def test_hairpin_through_node_port_of_own_node(cluster):
    """web-local's only endpoint is web-a itself; a pod source short-circuits eTP=Local to KUBE-SVC."""
    np = node_port(cluster, "web-local")
    res = cluster.probe(frm="default/web-a", to=f"{node_ip(cluster, 'node-1')}:{np}", count=2)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {"default/web-a"}


# --- external IPs and LoadBalancer IPs (need the fabric to route them to a node) ------------------


@ONLY_FULL
def test_host_to_load_balancer_ip(cluster):
    svc = cluster.service("default", "lb")
    ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    assert ingress and ingress[0].get("ip"), f"no LoadBalancer IP allocated: {svc.get('status')}"
    res = cluster.probe(frm="host/client", to=f"{ingress[0]['ip']}:80", count=10, timeout=1.0)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) <= {"default/web-a", "default/web-b"}
    assert all(r.client_ip != HOST_IP for r in res), describe(res)  # eTP=Cluster: masqueraded


@ONLY_FULL
def test_pod_to_load_balancer_ip_is_short_circuited(cluster):
    """Inside the cluster, kube-proxy DNATs LB IPs in every node's KUBE-SERVICES: no announcement needed."""
    ip = cluster.service("default", "lb")["status"]["loadBalancer"]["ingress"][0]["ip"]
    res = cluster.probe(frm="default/client", to=f"{ip}:80", count=4)
    assert all(r.connected for r in res), describe(res)


@ONLY_FULL
def test_host_to_external_ip(cluster):
    res = cluster.probe(frm="host/client", to=f"{EXTERNAL_IP}:80", count=10, timeout=1.0)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) <= {"default/web-a", "default/web-b"}
    assert all(r.client_ip != HOST_IP for r in res), describe(res)


@ONLY_FULL
def test_pod_to_external_ip_is_short_circuited(cluster):
    res = cluster.probe(frm="default/client", to=f"{EXTERNAL_IP}:80", count=4)
    assert all(r.connected for r in res), describe(res)


# MetalLB's layer-2 speaker announces an eTP=Local service's IP only from a node that has a serving endpoint
# of it (metallb/metallb speaker/layer2_controller.go ShouldAnnounce / nodesWithEndpoint); otherwise the one
# node that answers ARP would drop every packet (KUBE-EXTERNAL-SERVICES DROP, no local endpoints). The
# requested IPs are chosen so that a speaker that ignores endpoints (the daemon's plain hash over live nodes)
# picks the node *without* the endpoint for both services; a correct speaker passes whatever it hashes.
LOCAL_LB = {"lb-local-a": ("web-a", "172.18.255.203"), "lb-local-b": ("web-b", "172.18.255.200")}


@ONLY_FULL
@pytest.mark.parametrize("svc", sorted(LOCAL_LB))
def test_host_to_load_balancer_ip_external_traffic_policy_local(cluster, svc):
    for name, (pod, ip) in LOCAL_LB.items():
        cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerIP": ip,
                                "selector": {"pod": pod}, "ports": [{"port": 80, "targetPort": 8080}]}})
    pod, ip = LOCAL_LB[svc]
    got = cluster.service("default", svc)["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert got == ip
    res = cluster.probe(frm="host/client", to=f"{ip}:80", count=4, timeout=1.0)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {f"default/{pod}"}
    assert {r.client_ip for r in res} == {HOST_IP}, describe(res)


@ONLY_FULL
def test_metallb_annotation_ip_without_node_ports_behind_padded_source_ranges(cluster):
    """The `metallb.io/loadBalancerIPs` annotation picks the ingress IP (metallb controller/service.go
    getDesiredLbIPs); `allocateLoadBalancerNodePorts: false` leaves the Service without NodePorts; a
    space-padded loadBalancerSourceRanges entry is accepted trimmed (ValidateService) and kube-proxy lets the
    host's range through its firewall. The IP answers from the external host."""
    ip = "172.18.255.210"
    cluster.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "lb-annotated", "annotations": {"metallb.io/loadBalancerIPs": ip}},
                   "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                            "loadBalancerSourceRanges": [f" {HOST_IP}/32 "], "selector": {"app": "web"},
                            "ports": [{"port": 80, "targetPort": 8080}]}})
    svc = cluster.service("default", "lb-annotated")
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == ip
    assert "nodePort" not in svc["spec"]["ports"][0]
    assert svc["spec"]["loadBalancerSourceRanges"] == [f"{HOST_IP}/32"]
    res = cluster.probe(frm="host/client", to=f"{ip}:80", count=4, timeout=1.0)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) <= {"default/web-a", "default/web-b"}


@ONLY_FULL
def test_prefer_close_keeps_traffic_in_the_zone(cluster):
    """trafficDistribution: PreferClose: the EndpointSlice controller hints each endpoint for its node's
    zone and each node's kube-proxy keeps only its zone's endpoints (pkg/proxy/topology.go), for pod
    traffic and for NodePort traffic alike; without it both pods would serve."""
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "close"},
                   "spec": {"type": "NodePort", "trafficDistribution": "PreferClose", "selector": {"app": "web"},
                            "ports": [{"port": 80, "targetPort": 8080}]}})
    [sl] = [s for s in cluster.store.list("EndpointSlice")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == "close"]
    assert sorted(e["hints"]["forZones"][0]["name"] for e in sl["endpoints"]) == ["zone-1", "zone-2"]
    res = cluster.probe(frm="default/client", to="svc/default/close", count=8)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {"default/web-a"}  # the client runs on node-1, zone-1
    close_np = cluster.service("default", "close")["spec"]["ports"][0]["nodePort"]
    res = cluster.probe(frm="host/client", to=f"{node_ip(cluster, 'node-2')}:{close_np}", count=8, timeout=1.0)
    assert all(r.connected for r in res), describe(res)
    assert set(served(res)) == {"default/web-b"}
