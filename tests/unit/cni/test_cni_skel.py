"""The exec protocol and in-process invoke: env validation, decode/config/version errors, every command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cni_plugins.registry import get_plugin
from cni_plugins.skel import args_from_env, invoke, run_exec
from cni_plugins.types import SUPPORTED_VERSIONS, CniArgs, CniError, Result, parse_cni_args

FLANNEL = get_plugin("netsim-flannel")
BASE_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/netsim-c-pod-default-p",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def run(env: dict, stdin: str | bytes, kernel=None) -> tuple[int, dict | None]:
    out = io.StringIO()
    data = stdin.encode() if isinstance(stdin, str) else stdin
    rc = run_exec(FLANNEL, env, data, lambda conf: kernel, stdout=out)
    text = out.getvalue()
    return rc, (json.loads(text) if text.strip() else None)


def test_version_command():
    rc, out = run({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "0.4.0"}')
    assert rc == 0 and out == {"cniVersion": "0.4.0", "supportedVersions": SUPPORTED_VERSIONS}
    assert SUPPORTED_VERSIONS == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    assert invoke(FLANNEL, "VERSION", CniArgs(), {}, None)["supportedVersions"] == SUPPORTED_VERSIONS


@pytest.mark.parametrize("drop,missing", [
    ("CNI_NETNS", "CNI_NETNS"), ("CNI_IFNAME", "CNI_IFNAME"), ("CNI_PATH", "CNI_PATH")])
def test_missing_env_is_code_4_naming_them(drop, missing):
    env = {k: v for k, v in BASE_ENV.items() if k != drop}
    rc, out = run(env, "{}")
    assert rc == 1 and out["code"] == 4 and missing in out["msg"]


def test_missing_several_env_vars_all_named():
    rc, out = run({"CNI_COMMAND": "ADD"}, "{}")
    assert out["code"] == 4
    for name in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"):
        assert name in out["msg"]


def test_del_does_not_need_netns_and_command_is_required():
    cmd, args = args_from_env({**{k: v for k, v in BASE_ENV.items() if k != "CNI_NETNS"}, "CNI_COMMAND": "DEL"})
    assert cmd == "DEL" and args.netns == ""
    with pytest.raises(CniError) as exc:
        args_from_env({})
    assert exc.value.code == 4 and "CNI_COMMAND" in exc.value.msg
    with pytest.raises(CniError) as exc:
        args_from_env({"CNI_COMMAND": "FROB"})
    assert exc.value.code == 4


def test_invalid_container_id_is_code_4():
    rc, out = run({**BASE_ENV, "CNI_CONTAINERID": "-bad/id"}, "{}")
    assert out["code"] == 4 and "containerID" in out["msg"]


def test_cni_args_parsing():
    assert parse_cni_args("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IgnoreUnknown=1") == {
        "K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "p", "IgnoreUnknown": "1"}
    rc, out = run({**BASE_ENV, "CNI_ARGS": "novalue"}, "{}")
    assert out["code"] == 4


def test_undecodable_json_is_code_6():
    rc, out = run(BASE_ENV, "{not json")
    assert rc == 1 and out["code"] == 6
    rc, out = run(BASE_ENV, "[1, 2]")
    assert out["code"] == 6


def test_missing_or_bad_name_is_code_7():
    rc, out = run(BASE_ENV, '{"cniVersion": "1.0.0", "type": "netsim-flannel"}')
    assert out["code"] == 7 and "network name" in out["msg"]
    rc, out = run(BASE_ENV, '{"cniVersion": "1.0.0", "name": "bad name!"}')
    assert out["code"] == 7


def test_unsupported_field_is_code_2_and_names_it():
    conf = {"cniVersion": "1.0.0", "name": "cbr0", "type": "netsim-flannel", "delegate": {"name": "x"}}
    rc, out = run(BASE_ENV, json.dumps(conf))
    assert out["code"] == 2 and "name" in out["msg"]


def test_incompatible_version_is_code_1():
    rc, out = run(BASE_ENV, '{"cniVersion": "9.9.9", "name": "cbr0"}')
    assert out["code"] == 1 and out["cniVersion"] == "1.0.0"
    with pytest.raises(CniError) as exc:
        invoke(FLANNEL, "GC", CniArgs(), {"cniVersion": "1.0.0", "name": "cbr0"}, None)
    assert exc.value.code == 1
    with pytest.raises(CniError) as exc:
        invoke(FLANNEL, "CHECK", CniArgs("a", "/x", "eth0"), {"cniVersion": "0.3.1", "name": "cbr0"}, None)
    assert exc.value.code == 1


def test_cni_versions_list_picks_highest_supported():
    from cni_plugins.types import check_version
    assert check_version({"cniVersions": ["0.3.1", "1.0.0", "2.0.0"]}) == "1.0.0"
    with pytest.raises(CniError):
        check_version({"cniVersions": ["2.0.0"]})


def test_result_round_trip_and_old_versions_carry_ip_version():
    data = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff",
                                                   "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}], "dns": {"nameservers": ["10.96.0.10"]}}
    assert Result.from_dict(data).to_dict() == data
    old = Result.from_dict({**data, "cniVersion": "0.3.1"}).to_dict()
    assert old["ips"][0]["version"] == "4"


def test_error_object_shape():
    err = CniError(11, "try later", "because")
    assert err.to_dict("1.1.0") == {"cniVersion": "1.1.0", "code": 11, "msg": "try later", "details": "because"}


def _script(name: str, env: dict, stdin: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name(name)
    return subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), **env})


@pytest.mark.parametrize("script", ["netsim-flannel", "netsim-calico", "netsim-canal", "netsim-host-local"])
def test_console_scripts_version_and_errors(script):
    proc = _script(script, {"CNI_COMMAND": "VERSION"}, '{"cniVersion": "1.1.0"}')
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS}
    proc = _script(script, {"CNI_COMMAND": "ADD"}, "{}")
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 4
    proc = _script(script, BASE_ENV, "{oops")
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 6
    proc = _script(script, BASE_ENV, '{"cniVersion": "1.0.0"}')
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 7
    proc = _script(script, {}, "")
    assert proc.returncode == 0 and "CNI protocol versions supported" in proc.stderr


def test_netconf_view_keeps_unknown_keys():
    from cni_plugins.types import NetConf
    nc = NetConf.from_dict({"cniVersion": "1.1.0", "name": "n", "type": "t", "custom": {"x": 1},
                            "runtimeConfig": {"portMappings": []}})
    assert (nc.cni_version, nc.name, nc.type) == ("1.1.0", "n", "t")
    assert nc.raw["custom"] == {"x": 1} and nc.runtime_config == {"portMappings": []}
