"""A private etcd server for one cluster (or one test), from the distribution's `etcd-server` package.

It listens on 127.0.0.1 only, on two free ports (client and peer), keeps its data in `<dir>/etcd` and is
recorded in `<dir>/etcd.json` (pid, URLs, data dir), so that whoever removes `<dir>` (`netsim down`) can
stop it, also after a crash of the process that started it: `stop` kills the recorded pid if its command
line still names the data dir, and any other etcd whose `--data-dir` is that dir (one started by a run
killed before it recorded it). The distribution's own etcd service (/var/lib/etcd) is never used.

Flags (etcd 3.4 `etcd --help`): one member (`--initial-cluster name=peer`), `--max-txn-ops` and
`--max-request-bytes` raised from 128 ops / 1.5 MiB because one `apply` or controller pass is one Txn,
and no auto-compaction (netsim's compactor compacts as kube-apiserver's does).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass

from netsim.etcd.client import Etcd, EtcdError

DATA_DIR = "etcd"
RECORD = "etcd.json"
LOG = "etcd.log"
MAX_TXN_OPS = 1_000_000
MAX_REQUEST_BYTES = 64 * 1024 * 1024
START_TIMEOUT = 20.0


class EtcdUnavailable(EtcdError):
    """No etcd binary: install the distribution's etcd-server package (scripts/setup.sh does)."""


@dataclass(frozen=True)
class LocalEtcd:
    pid: int
    name: str
    client_url: str
    peer_url: str
    data_dir: str


def binary() -> str | None:
    return shutil.which("etcd")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def _serves(pid: int, data_dir: str) -> bool:
    """`pid` is an etcd with exactly this --data-dir (pids get reused; names can nest)."""
    args = _cmdline(pid)
    return bool(args) and os.path.basename(args[0]) == "etcd" and any(
        a == f"--data-dir={data_dir}" or (a == "--data-dir" and i + 1 < len(args) and args[i + 1] == data_dir)
        for i, a in enumerate(args))


def find(data_dir: str) -> list[int]:
    """Every running etcd whose data dir is `data_dir`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _serves(int(entry), data_dir):
            out.append(int(entry))
    return out


def start(name: str, base_dir: str) -> LocalEtcd:
    """Start etcd for `name` with its data in base_dir/etcd; returns once it answers. Ports are picked
    free just before the start; if another process takes one first etcd exits and we try new ones."""
    last = ""
    for _ in range(3):
        try:
            return _launch(name, base_dir, f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}")
        except EtcdError as exc:
            last = str(exc)
    raise EtcdError(last)


def restart(base_dir: str) -> LocalEtcd:
    """Start the recorded etcd of base_dir again, on its data and its ports (clients keep their URL)."""
    rec = record(base_dir)
    if rec is None:
        raise EtcdError(f"no etcd recorded in {base_dir}")
    return _launch(rec.name, base_dir, rec.client_url, rec.peer_url)


def _launch(name: str, base_dir: str, client: str, peer: str) -> LocalEtcd:
    exe = binary()
    if exe is None:
        raise EtcdUnavailable("the etcd store needs the etcd binary (Debian package etcd-server; "
                              "scripts/setup.sh installs it)")
    data_dir = os.path.join(os.path.abspath(base_dir), DATA_DIR)
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    argv = [exe, "--name", name, "--data-dir", data_dir,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
            "--max-txn-ops", str(MAX_TXN_OPS), "--max-request-bytes", str(MAX_REQUEST_BYTES),
            "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}  # no ambient ETCD_* config
    with open(os.path.join(base_dir, LOG), "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True)
    rec = LocalEtcd(proc.pid, name, client, peer, data_dir)
    with open(os.path.join(base_dir, RECORD), "w") as f:
        json.dump(asdict(rec), f)
    deadline = time.monotonic() + START_TIMEOUT
    client_api = Etcd([client], timeout=2.0)
    last = ""
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client_api.status()
                return rec
            except EtcdError as exc:
                last = str(exc)
                time.sleep(0.05)
    finally:
        client_api.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    raise EtcdError(f"etcd did not start (see {os.path.join(base_dir, LOG)}): "
                    f"{_tail(os.path.join(base_dir, LOG)) or last}")


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().strip().splitlines()
        return lines[-1][:300] if lines else ""
    except OSError:
        return ""


def record(base_dir: str) -> LocalEtcd | None:
    try:
        with open(os.path.join(base_dir, RECORD)) as f:
            return LocalEtcd(**json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def alive(base_dir: str) -> bool:
    rec = record(base_dir)
    return rec is not None and _serves(rec.pid, rec.data_dir)


def stop(base_dir: str) -> int:
    """Kill the etcd of base_dir (recorded or found by its data dir); how many went. Data stays: the caller
    removes base_dir."""
    data_dir = os.path.join(os.path.abspath(base_dir), DATA_DIR)
    pids = set(find(data_dir))
    rec = record(base_dir)
    if rec is not None and _serves(rec.pid, rec.data_dir):
        pids.add(rec.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline and _serves(pid, data_dir):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.01)
    return len(pids)


__all__ = ["EtcdUnavailable", "LocalEtcd", "alive", "binary", "find", "record", "restart", "start", "stop"]
