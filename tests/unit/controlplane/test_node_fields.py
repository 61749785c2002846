"""Node objects carry the labels and status fields a kubelet sets, so selectors written for real clusters match."""

from __future__ import annotations

import pytest

from netsim.controlplane.nodes import HostFacts, goarch, node_object, refreshed_status
from netsim.controlplane.scheduler import matches_node_selector_and_affinity
from netsim.model.cluster import parse_cluster
from netsim.model.errors import Source, SpecError
from netsim.objcache import decode_stored

HOST = HostFacts(machine="aarch64", kernel="6.1.0-test", os_image="Debian GNU/Linux 12 (bookworm)", cpus=8,
                 memory=16 * 1024 ** 3, storage=100 * 1024 ** 3, machine_id="ab" * 16, boot_id="boot-1")


def _spec(nodes):
    return parse_cluster({"apiVersion": "netsim/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"},
                          "spec": {"nodes": nodes}}, Source("c.yaml"))


@pytest.mark.parametrize("machine, arch", [("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm"),
                                           ("i686", "386"), ("ppc64le", "ppc64le"), ("s390x", "s390x")])
def test_machine_names_map_to_goarch(machine, arch):
    assert goarch(machine) == arch


def test_labels_and_status_as_a_kubelet_registers_them():
    spec = _spec([{"name": "a", "zone": "z1", "region": "r1", "labels": {"disk": "ssd"}}, {"name": "b"}])
    node = node_object(spec, 0, 0.0, HOST)
    labels = node["metadata"]["labels"]
    assert labels == {"beta.kubernetes.io/arch": "arm64", "beta.kubernetes.io/os": "linux",
                      "kubernetes.io/arch": "arm64", "kubernetes.io/hostname": "a", "kubernetes.io/os": "linux",
                      "topology.kubernetes.io/zone": "z1", "topology.kubernetes.io/region": "r1", "disk": "ssd"}
    st = node["status"]
    assert st["addresses"] == [{"type": "InternalIP", "address": spec.node_ip(0)}, {"type": "Hostname", "address": "a"}]
    assert st["capacity"] == {"cpu": "8", "ephemeral-storage": f"{100 * 1024 ** 2}Ki", "hugepages-2Mi": "0",
                              "memory": f"{16 * 1024 ** 2}Ki", "pods": "110"}
    assert st["allocatable"]["memory"] == f"{16 * 1024 ** 2 - 100 * 1024}Ki"  # minus memory.available<100Mi
    assert st["allocatable"]["ephemeral-storage"] == str(int(100 * 1024 ** 3 * 0.9))  # nodefs.available<10%
    assert st["allocatable"]["pods"] == "110" and st["allocatable"]["cpu"] == "8"
    info = st["nodeInfo"]
    assert info["kubeletVersion"].startswith("v1.32") and info["architecture"] == "arm64"
    assert info["operatingSystem"] == "linux" and info["kernelVersion"] == "6.1.0-test"
    assert info["osImage"] == "Debian GNU/Linux 12 (bookworm)" and info["containerRuntimeVersion"].startswith("containerd://")
    other = node_object(spec, 1, 0.0, HOST)["status"]["nodeInfo"]
    assert info["machineID"] != other["machineID"] and info["systemUUID"] != other["systemUUID"]
    assert info["bootID"] == other["bootID"] == "boot-1"
    assert "topology.kubernetes.io/zone" not in node_object(spec, 1, 0.0, HOST)["metadata"]["labels"]


def test_selectors_written_for_real_clusters_match():
    spec = _spec([{"name": "a", "zone": "z1"}, {"name": "b", "zone": "z2"}])
    labels = {n.name: node_object(spec, i, 0.0, HOST)["metadata"]["labels"] for i, n in enumerate(spec.nodes)}
    pod = decode_stored({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeSelector": {"kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "arm64"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z2"]}]}]}}}}})
    assert [n for n in labels if matches_node_selector_and_affinity(pod, n, labels[n])] == ["b"]


def test_zone_field_and_zone_label_must_agree():
    assert _spec([{"name": "a", "zone": "z1", "labels": {"topology.kubernetes.io/zone": "z1"}}]).nodes[0].labels == {
        "topology.kubernetes.io/zone": "z1"}
    with pytest.raises(SpecError, match=r"spec.nodes\[0\].zone.*disagrees"):
        _spec([{"name": "a", "zone": "z1", "labels": {"topology.kubernetes.io/zone": "z2"}}])
    with pytest.raises(SpecError, match="region"):
        _spec([{"name": "a", "region": "bad value!"}])


def test_spec_round_trips_with_zones():
    spec = _spec([{"name": "a", "zone": "z1"}])
    assert parse_cluster(spec.to_dict(), Source("again")).nodes == spec.nodes


def test_a_restarted_kubelet_reports_its_machine_again():
    spec = _spec([{"name": "a"}])
    old = node_object(spec, 0, 0.0, HOST)
    del old["status"]["nodeInfo"]
    status = refreshed_status(old, node_object(spec, 0, 5.0, HOST), 5.0)
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.32") and status["capacity"]["pods"] == "110"
