"""Interop with the reference CNI plugins on one node.

The Debian containernetworking-plugins `bridge` + `host-local` executables are driven through the exec
path a kubelet uses (`cni_plugins.exec.exec_plugin`: CNI_* env, config on stdin, run inside the node netns)
on their own bridge `cni1` / 10.99.0.0/24, beside a pod our plugin wired on the same node (flannel host-gw
on cni0, or calico direct on a routed veth). Traffic between the two crosses the node's routing table.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cni_plugins.exec import decode_output, exec_plugin, find_plugin
from cni_plugins.skel import invoke
from cni_plugins.types import CniError

pytestmark = pytest.mark.root

REF_DIR = "/usr/lib/cni"
REF_SUBNET = "10.99.0.0/24"
REF_GATEWAY = "10.99.0.1"

needs_reference = pytest.mark.skipif(not Path(REF_DIR, "bridge").exists() or not Path(REF_DIR, "host-local").exists(),
                                     reason="reference CNI plugins (/usr/lib/cni) not installed")


def reference_conf(data_dir: Path) -> dict:
    """A bridge network on its own bridge, like a hand-written /etc/cni/net.d entry."""
    return {
        "cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "cni1", "isGateway": True,
        "ipMasq": False, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": REF_SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}],
                 "dataDir": str(data_dir)},
    }


def node_veths(c, node: str) -> set[str]:
    return {link.name for link in c.kernel.links(c.ns(node)) if link.kind == "veth" and link.name != "eth0"}


@needs_reference
@pytest.mark.parametrize("plugin,backend", [("flannel", "host-gw"), ("calico", "direct")])
def test_reference_bridge_pod_reaches_our_pod(cni_cluster, tmp_path, plugin, backend):
    c = cni_cluster
    c.add_node("a", "172.31.0.2")
    ours, conf = c.start_network(plugin, backend)
    veths_before = node_veths(c, "a")
    ref_dir = tmp_path / "ref-ipam"
    ref_conf = reference_conf(ref_dir)

    p1 = c.make_pod("ours1")
    r1 = c.make_pod("ref1")
    res_ours = invoke(ours, "ADD", p1, conf("a"), c.kernel)
    res_ref = exec_plugin(c.kernel, c.ns("a"), "ADD", r1, ref_conf)

    # The reference result has the shape of SPEC.md's bridge example: [bridge, host veth, eth0 in sandbox].
    assert [i["name"] for i in res_ref["interfaces"]][0] == "cni1"
    assert res_ref["interfaces"][2] == {**res_ref["interfaces"][2], "name": "eth0", "sandbox": r1.netns}
    assert res_ref["ips"][0]["interface"] == 2 and res_ref["ips"][0]["gateway"] == REF_GATEWAY
    ref_ip = res_ref["ips"][0]["address"].split("/")[0]
    our_ip = res_ours["ips"][0]["address"].split("/")[0]
    assert ipaddress.ip_address(ref_ip) in ipaddress.ip_network(REF_SUBNET)
    assert ipaddress.ip_address(our_ip) in ipaddress.ip_network("10.244.0.0/16")
    # host-local files in the reference layout: the IP's file holds "<containerID>\r\n<ifname>"
    assert (ref_dir / "refnet" / ref_ip).read_bytes() == f"{r1.container_id}\r\neth0".encode()
    bridge = c.kernel.link_get(c.ns("a"), "cni1")
    assert bridge is not None and bridge.kind == "bridge"
    assert c.kernel.link_get(c.ns("a"), res_ref["interfaces"][1]["name"]).master == "cni1"

    # Both ways through the node: ping, and TCP with the source address the server saw.
    assert c.ping(r1.netns_name, our_ip), "reference pod -> our pod"
    assert c.ping(p1.netns_name, ref_ip), "our pod -> reference pod"
    assert c.tcp(r1.netns_name, p1.netns_name, our_ip) == ref_ip  # no NAT towards a pod
    seen = c.tcp(p1.netns_name, r1.netns_name, ref_ip)
    # Both masquerade pod traffic leaving their network to the address of the egress interface (cni1's
    # gateway): flannel by FLANNEL-POSTRTG, calico by the pool's natOutgoing (cali-nat-outgoing: the
    # reference network is no calico pool).
    assert seen == REF_GATEWAY

    # DEL both, twice each (DEL is idempotent), the reference one after its netns is gone too.
    for _ in range(2):
        invoke(ours, "DEL", p1, conf("a"), c.kernel)
        exec_plugin(c.kernel, c.ns("a"), "DEL", r1, ref_conf)
    assert not c.ping(r1.netns_name, our_ip, attempts=1)
    c.kernel.netns_delete(r1.netns_name)
    exec_plugin(c.kernel, c.ns("a"), "DEL", r1, ref_conf)
    assert node_veths(c, "a") == veths_before
    assert [f.name for f in (ref_dir / "refnet").iterdir() if f.name[0].isdigit()] == []
    assert c.kernel.link_get(p1.netns_name, "eth0") is None


@needs_reference
def test_reference_errors_come_back_as_cni_errors(cni_cluster, tmp_path):
    c = cni_cluster
    c.add_node("a", "172.31.0.2")
    r1 = c.make_pod("ref1")
    conf = reference_conf(tmp_path / "ref-ipam")
    exec_plugin(c.kernel, c.ns("a"), "ADD", r1, conf)
    # A second ADD of the same attachment: the plugin's own error object, non-zero exit.
    with pytest.raises(CniError) as err:
        exec_plugin(c.kernel, c.ns("a"), "ADD", r1, conf)
    # the reference plugin reports it as its own error object (code 999, its message), not as a crash
    assert "already exists" in err.value.msg and not err.value.msg.startswith("netplugin failed")
    with pytest.raises(CniError) as err:
        exec_plugin(c.kernel, c.ns("a"), "ADD", c.pod_args("ref2"), {**conf, "cniVersion": "9.9.9"})
    assert err.value.code == 1  # incompatible version
    version = exec_plugin(c.kernel, c.ns("a"), "VERSION", r1, conf)
    assert "1.0.0" in version["supportedVersions"]
    exec_plugin(c.kernel, c.ns("a"), "DEL", r1, conf)


def test_find_plugin_and_decode_output(tmp_path):
    """Pure parts of the exec helper. They need no root, but live here with the helper's integration tests
    (this task's scope); tests/unit/cni/ is their natural home."""
    exe = tmp_path / "mine"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert find_plugin("mine", [str(tmp_path / "nope"), str(tmp_path)]) == str(exe)
    with pytest.raises(CniError, match="failed to find plugin"):
        find_plugin("other", [str(tmp_path)])
    with pytest.raises(CniError):
        find_plugin("../mine", [str(tmp_path)])
    assert decode_output(0, "", "", "x DEL") == {}
    assert decode_output(0, json.dumps({"cniVersion": "1.0.0", "ips": []}), "", "x ADD")["ips"] == []
    with pytest.raises(CniError) as err:
        decode_output(1, json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "d"}), "", "x")
    assert (err.value.code, err.value.msg, err.value.details) == (7, "bad", "d")
    with pytest.raises(CniError) as err:
        decode_output(2, "panic", "boom on stderr", "x ADD")
    assert err.value.code == 999 and "boom on stderr" in err.value.details


@needs_reference
def test_our_console_script_and_reference_through_one_exec_path(cni_cluster, tmp_path):
    """The same exec helper drives our `netsim-calico` executable (found on CNI_PATH like any plugin) and
    the reference bridge; the two pods reach each other through the node."""
    import sys

    c = cni_cluster
    c.add_node("a", "172.31.0.2")
    _, conf = c.start_network("calico", "direct")
    ours_conf = conf("a")
    bin_dir = str(Path(sys.executable).parent)
    p1, r1 = replace(c.make_pod("ours1"), path=(bin_dir, REF_DIR)), c.make_pod("ref1")  # CNI_PATH
    ref_conf = reference_conf(tmp_path / "ref-ipam")
    res = exec_plugin(c.kernel, c.ns("a"), "ADD", p1, ours_conf)
    ref = exec_plugin(c.kernel, c.ns("a"), "ADD", r1, ref_conf)
    our_ip, ref_ip = (r["ips"][0]["address"].split("/")[0] for r in (res, ref))
    assert res["interfaces"][1]["sandbox"] == p1.netns
    assert c.ping(r1.netns_name, our_ip) and c.ping(p1.netns_name, ref_ip)
    exec_plugin(c.kernel, c.ns("a"), "DEL", p1, ours_conf)
    exec_plugin(c.kernel, c.ns("a"), "DEL", r1, ref_conf)
    assert node_veths(c, "a") == set()
