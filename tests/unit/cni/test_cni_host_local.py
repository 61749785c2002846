"""host-local IPAM: on-disk layout, allocation order, requests, release, GC, validation, concurrency."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cni_plugins.ipam import host_local
from cni_plugins.ipam.host_local import HostLocalConfig, Range
from cni_plugins.skel import invoke
from cni_plugins.types import CniArgs, CniError


def conf(data_dir: Path, subnet: str = "10.244.1.0/24", name: str = "cbr0", **rng) -> dict:
    return {"cniVersion": "1.0.0", "name": name, "type": "netsim-host-local",
            "ipam": {"type": "netsim-host-local", "dataDir": str(data_dir),
                     "ranges": [[{"subnet": subnet, **rng}]], "routes": [{"dst": "10.244.0.0/16"}]}}


def test_layout_matches_reference(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path))
    res = host_local.allocate(cfg, "ctr1", "eth0")
    assert res.to_dict()["ips"] == [{"address": "10.244.1.2/24", "gateway": "10.244.1.1"}]
    assert res.to_dict()["routes"] == [{"dst": "10.244.0.0/16"}]
    d = tmp_path / "cbr0"
    assert sorted(os.listdir(d)) == ["10.244.1.2", "last_reserved_ip.0", "lock"]
    assert (d / "10.244.1.2").read_bytes() == b"ctr1\r\neth0"
    assert (d / "last_reserved_ip.0").read_text() == "10.244.1.2"


def test_last_reserved_ip_is_rewritten_without_truncating_it_to_zero(tmp_path, monkeypatch):
    """ext4 (auto_da_alloc) flushes a file truncated to zero and written again when it is closed: 0.5-1.3
    ms per ADD on /run here. The file is written over and cut to length instead, with the same content,
    also when a shorter address follows a longer one (issue #18, flannel's cost per pod)."""
    import builtins

    cfg = HostLocalConfig.from_conf(conf(tmp_path, "10.0.0.0/24"))
    truncating: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, mode="r", *a, **kw):
        if "last_reserved" in str(file) and "w" in mode:
            truncating.append(f"open({file}, {mode!r})")
        return real_open(file, mode, *a, **kw)

    def spy_os_open(path, flags, *a, **kw):
        if "last_reserved" in str(path) and flags & os.O_TRUNC:
            truncating.append(f"os.open({path}, O_TRUNC)")
        return real_os_open(path, flags, *a, **kw)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    host_local.allocate(cfg, "a", "eth0", [ipaddress.IPv4Address("10.0.0.10")])
    monkeypatch.undo()
    assert truncating == []
    last = tmp_path / "cbr0" / "last_reserved_ip.0"
    assert last.read_text() == "10.0.0.10"
    host_local.allocate(cfg, "b", "eth0", [ipaddress.IPv4Address("10.0.0.9")])
    assert last.read_text() == "10.0.0.9"


def test_defaults_skip_gateway_and_stop_before_broadcast(tmp_path):
    r = Range.parse({"subnet": "10.0.0.0/29"}, "r")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.0.0.1", "10.0.0.6", "10.0.0.1")
    cfg = HostLocalConfig.from_conf(conf(tmp_path, "10.0.0.0/29"))
    got = [host_local.allocate(cfg, f"c{i}", "eth0").ips[0].address for i in range(5)]
    assert got == [f"10.0.0.{i}/29" for i in range(2, 7)]
    with pytest.raises(CniError) as exc:
        host_local.allocate(cfg, "c9", "eth0")
    assert exc.value.code == 100 and "10.0.0.1-10.0.0.6" in exc.value.msg


def test_round_robin_after_last_reserved(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path, "10.0.0.0/29"))
    host_local.allocate(cfg, "a", "eth0")  # .2
    host_local.allocate(cfg, "b", "eth0")  # .3
    host_local.release(cfg, "a", "eth0")
    assert host_local.allocate(cfg, "c", "eth0").ips[0].address == "10.0.0.4/29"  # not the freed .2
    for cid in "def":
        host_local.allocate(cfg, cid, "eth0")  # .5 .6, then wraps to .2
    assert (tmp_path / "cbr0" / "10.0.0.2").read_text().startswith("f")


@pytest.mark.parametrize("subnet,msg", [("10.0.0.0/31", "too small"), ("10.0.0.0/32", "too small"),
                                        ("10.0.0.1/24", "host bits"), ("nonsense", "invalid CIDR")])
def test_rejects_bad_subnets(tmp_path, subnet, msg):
    with pytest.raises(CniError) as exc:
        HostLocalConfig.from_conf(conf(tmp_path, subnet))
    assert exc.value.code == 7 and msg in exc.value.msg


def test_range_start_end_and_gateway(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path, "10.0.0.0/24", rangeStart="10.0.0.10", rangeEnd="10.0.0.11",
                                         gateway="10.0.0.254"))
    assert host_local.allocate(cfg, "a", "eth0").ips[0].to_dict() == {"address": "10.0.0.10/24",
                                                                       "gateway": "10.0.0.254"}
    host_local.allocate(cfg, "b", "eth0")
    with pytest.raises(CniError):
        host_local.allocate(cfg, "c", "eth0")
    with pytest.raises(CniError, match="after rangeEnd"):
        HostLocalConfig.from_conf(conf(tmp_path, "10.0.0.0/24", rangeStart="10.0.0.20", rangeEnd="10.0.0.11"))


def test_requested_ip_and_duplicates(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path))
    ip = ipaddress.IPv4Address("10.244.1.77")
    assert host_local.allocate(cfg, "a", "eth0", [ip]).ips[0].address == "10.244.1.77/24"
    with pytest.raises(CniError, match="not available"):
        host_local.allocate(cfg, "b", "eth0", [ip])
    with pytest.raises(CniError, match="duplicate allocation"):
        host_local.allocate(cfg, "a", "eth0")
    with pytest.raises(CniError, match="could not allocate IP 192.168.0.1"):
        host_local.allocate(cfg, "c", "eth0", [ipaddress.IPv4Address("192.168.0.1")])
    assert sorted(host_local.Store(cfg.dir).allocations()) == [ip]  # failures left nothing behind
    args = {"IP": "10.244.1.80"}
    assert host_local.requested_ips({}, args) == [ipaddress.IPv4Address("10.244.1.80")]
    assert host_local.requested_ips({"runtimeConfig": {"ips": ["10.244.1.9/24"]}}, {}) == \
        [ipaddress.IPv4Address("10.244.1.9")]


def test_release_by_id_and_ifname_is_idempotent(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path))
    host_local.allocate(cfg, "a", "eth0")
    host_local.allocate(cfg, "a", "net1")
    assert [str(i) for i in host_local.release(cfg, "a", "eth0")] == ["10.244.1.2"]
    assert host_local.release(cfg, "a", "eth0") == []
    assert host_local.count(cfg) == 1
    # old-format files hold only the container ID: released by ID alone
    (cfg.dir / "10.244.1.50").write_text("old")
    assert [str(i) for i in host_local.release(cfg, "old", "eth0")] == ["10.244.1.50"]
    assert host_local.release(HostLocalConfig.from_conf(conf(tmp_path, name="never")), "x", "eth0") == []


def test_gc_frees_invalid_attachments(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path))
    for cid in ("keep", "drop1", "drop2"):
        host_local.allocate(cfg, cid, "eth0")
    freed = host_local.gc(cfg, [{"containerID": "keep", "ifname": "eth0"}])
    assert [str(i) for i in freed] == ["10.244.1.3", "10.244.1.4"]
    assert list(host_local.Store(cfg.dir).allocations().values()) == [("keep", "eth0")]


def test_check(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path))
    host_local.allocate(cfg, "a", "eth0")
    assert host_local.check(cfg, "a", "eth0")
    with pytest.raises(CniError) as exc:
        host_local.check(cfg, "b", "eth0")
    assert exc.value.code == 102


def test_concurrent_threads_never_double_allocate(tmp_path):
    cfg = HostLocalConfig.from_conf(conf(tmp_path))
    got: list[str] = []
    errors: list[Exception] = []

    def worker(i: int) -> None:
        try:
            got.append(host_local.allocate(cfg, f"t{i}", "eth0").ips[0].address)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 40 == len(set(got))
    assert host_local.count(cfg) == 40


def _proc_worker(data_dir: str, base: int, out) -> None:
    cfg = HostLocalConfig.from_conf(conf(Path(data_dir)))
    out.put([host_local.allocate(cfg, f"p{base}-{i}", "eth0").ips[0].address for i in range(15)])


def test_concurrent_processes_never_double_allocate(tmp_path):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_proc_worker, args=(str(tmp_path), n, q)) for n in range(4)]
    for p in procs:
        p.start()
    got = [ip for _ in procs for ip in q.get(timeout=30)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert len(got) == 60 == len(set(got))


def test_invoke_in_process(tmp_path):
    c = conf(tmp_path)
    args = CniArgs("ctr1", "/run/netns/x", "eth0")
    res = invoke(host_local.PLUGIN, "ADD", args, c, None)
    assert res["cniVersion"] == "1.0.0" and res["ips"][0]["address"] == "10.244.1.2/24"
    assert "interfaces" not in res
    invoke(host_local.PLUGIN, "CHECK", args, c, None)
    invoke(host_local.PLUGIN, "GC", args, {**c, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}, None)
    assert host_local.count(HostLocalConfig.from_conf(c)) == 0


def _exec(env: dict, stdin: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("netsim-host-local")
    return subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), **env})


def test_console_script_as_delegated_ipam(tmp_path):
    c = json.dumps({**conf(tmp_path), "cniVersion": "0.4.0"})
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr9", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/opt/cni/bin"}
    proc = _exec(env, c)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(proc.stdout)
    assert res == {"cniVersion": "0.4.0", "dns": {}, "routes": [{"dst": "10.244.0.0/16"}],
                   "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "version": "4"}]}
    assert (tmp_path / "cbr0" / "10.244.1.2").read_bytes() == b"ctr9\r\neth0"
    proc = _exec({**env, "CNI_COMMAND": "DEL"}, c)
    assert proc.returncode == 0 and proc.stdout == ""
    assert not (tmp_path / "cbr0" / "10.244.1.2").exists()


def test_range_set_with_two_pools_and_two_range_sets(tmp_path):
    c = conf(tmp_path)
    c["ipam"]["ranges"] = [[{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}], [{"subnet": "10.9.0.0/16"}]]
    cfg = HostLocalConfig.from_conf(c)
    first = host_local.allocate(cfg, "a", "eth0").to_dict()["ips"]
    assert [i["address"] for i in first] == ["10.0.0.2/30", "10.9.0.2/16"]
    assert (tmp_path / "cbr0" / "last_reserved_ip.1").read_text() == "10.9.0.2"
    second = host_local.allocate(cfg, "b", "eth0").ips[0].address
    assert second == "10.0.1.2/30"  # .1 in the second pool is its gateway, skipped
