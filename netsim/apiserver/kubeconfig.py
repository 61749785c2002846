"""The user's kubeconfig: one cluster/user/context `netsim-<cluster>` merged in at `up`, taken out at `down`.

As kind does it (sigs.k8s.io/kind pkg/cluster/internal/kubeconfig/internal/kubeconfig: paths.go
pathForMerge, merge.go, remove.go): the file is `$KUBECONFIG` (a path list: the first of its files that
exists, else the last one) or `~/.kube/config`; entries of the same name are replaced, every other entry is
left as it was, `current-context` is set to the new context; the file is written 0600 (and its directory
made 0700 when missing). Removing takes out exactly the three entries of that name and clears
`current-context` only when it pointed at them. Both hold a lock file next to the kubeconfig (kind and
client-go's `<file>.lock`) so two `up`s at once do not lose each other's entries.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

PREFIX = "netsim-"
STALE_LOCK = 60.0  # seconds after which a lock file is taken to be left behind by a dead process


def context_name(cluster: str) -> str:
    return f"{PREFIX}{cluster}"


def paths(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    seen: list[str] = []
    for p in (env.get("KUBECONFIG") or "").split(os.pathsep):
        if p and p not in seen:
            seen.append(p)
    if seen:
        return seen
    return [os.path.join(os.path.expanduser("~"), ".kube", "config")]


def path_for_merge(env: Mapping[str, str] | None = None) -> str:
    """The file an entry is written to (kind's pathForMerge, which is kubectl's rule)."""
    ps = paths(env)
    if len(ps) == 1:
        return ps[0]
    for p in ps:
        if os.path.isfile(p):
            return p
    return ps[-1]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build(cluster: str, server: str, ca: bytes, client_cert: bytes, client_key: bytes) -> dict[str, Any]:
    """A whole kubeconfig holding only this cluster (what `netsim kubeconfig` prints)."""
    name = context_name(cluster)
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": name, "user": {"client-certificate-data": _b64(client_cert),
                                          "client-key-data": _b64(client_key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


@contextlib.contextmanager
def _locked(path: str, timeout: float = 10.0) -> Iterator[None]:
    """client-go's LockFile: create `<path>.lock` exclusively, remove it when done."""
    lock = f"{path}.lock"
    d = os.path.dirname(path)
    if d and not os.path.isdir(d):  # a first kubeconfig: ~/.kube may not exist yet
        os.makedirs(d, mode=0o700, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - os.stat(lock).st_mtime > STALE_LOCK:
                    os.unlink(lock)  # left by a process killed while it held it
                    continue
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"kubeconfig {path} is locked by {lock}; remove it if no "
                                           "other tool is writing the kubeconfig") from None
            time.sleep(0.05)
    try:
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _save(path: str, doc: Mapping[str, Any]) -> None:
    d = os.path.dirname(path)
    if d and not os.path.isdir(d):
        os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = f"{path}.netsim-tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        yaml.safe_dump(dict(doc), f, default_flow_style=False, sort_keys=False)
    os.replace(tmp, path)


def _replace(entries: list[Any] | None, entry: dict[str, Any]) -> list[Any]:
    out = [e for e in entries or [] if not (isinstance(e, dict) and e.get("name") == entry["name"])]
    return out + [entry]


def merge(config: Mapping[str, Any], path: str | None = None) -> str:
    """Merge the single-cluster `config` (from `build`) into the user's kubeconfig; returns its path."""
    path = path or path_for_merge()
    with _locked(path):
        doc = _load(path)
        doc.setdefault("apiVersion", "v1")
        doc.setdefault("kind", "Config")
        for section in ("clusters", "users", "contexts"):
            doc[section] = _replace(doc.get(section), config[section][0])
        doc["current-context"] = config["current-context"]
        doc.setdefault("preferences", {})
        _save(path, doc)
    return path


def remove(cluster: str, path: str | None = None) -> bool:
    """Take the cluster's entries out of the kubeconfig (nothing else); True if any were there."""
    path = path or path_for_merge()
    if not os.path.isfile(path):
        return False
    name = context_name(cluster)
    with _locked(path):
        doc = _load(path)
        found = False
        for section in ("clusters", "users", "contexts"):
            entries = doc.get(section) or []
            kept = [e for e in entries if not (isinstance(e, dict) and e.get("name") == name)]
            found |= len(kept) != len(entries)
            if section in doc:
                doc[section] = kept
        if doc.get("current-context") == name:
            doc["current-context"] = ""
            found = True
        if found:
            _save(path, doc)
    return found
