"""The kubelet's atomic writer for API-data volumes (configMap, secret, downwardAPI, projected).

pkg/volume/util/atomic_writer.go AtomicWriter.Write: a payload (relative path -> bytes and mode) is
written into a fresh hidden directory `..<timestamp>.<random>` inside the volume directory, a symlink
`..data` is pointed at it by renaming a `..data_tmp` symlink over it (one atomic step: a reader sees the
old set of files or the new one, never a mix), the user-visible names are symlinks `<name> -> ..data/<name>`
for each top-level path of the payload, user-visible names no longer in the payload are removed, and the
old timestamped directory is removed last. A payload equal to what is there (content and mode) writes
nothing. Paths are validated as validatePath does: relative, no `..` element, not starting with `..`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

DATA_DIR = "..data"
DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = 0o644


def validate_path(path: str) -> str | None:
    """Why `path` may not be a payload path (atomic_writer.go validatePath), or None."""
    if not path:
        return "path must not be empty"
    if len(path) > 4096:
        return "path must be less than or equal to 4096 characters"
    if os.path.isabs(path):
        return "must be a relative path"
    if any(part == ".." for part in path.split("/")):
        return "must not contain '..'"
    if path.startswith(".."):
        return "must not start with '..'"
    return None


def _current(target: str) -> str | None:
    try:
        return os.readlink(os.path.join(target, DATA_DIR))
    except OSError:
        return None


def _unchanged(ts_dir: str, payload: Mapping[str, FileProjection]) -> bool:
    """shouldWritePayload's inverse: every file there with the same bytes and mode, and nothing more."""
    found = set()
    for root, _, files in os.walk(ts_dir):
        for f in files:
            found.add(os.path.relpath(os.path.join(root, f), ts_dir))
    if found != set(payload):
        return False
    for rel, proj in payload.items():
        p = os.path.join(ts_dir, rel)
        try:
            st = os.lstat(p)
            with open(p, "rb") as fh:
                if fh.read() != proj.data or (st.st_mode & 0o7777) != proj.mode:
                    return False
        except OSError:
            return False
    return True


def write(target: str, payload: Mapping[str, FileProjection]) -> bool:
    """Make `target` hold exactly `payload`; True when something was written."""
    for rel in payload:
        problem = validate_path(rel)
        if problem:
            raise ValueError(f"invalid path {rel!r}: {problem}")
    os.makedirs(target, exist_ok=True)
    os.chmod(target, 0o755)
    old = _current(target)
    if old is not None and _unchanged(os.path.join(target, old), payload):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    ts_dir = tempfile.mkdtemp(prefix=stamp, dir=target)
    os.chmod(ts_dir, 0o755)
    for rel, proj in payload.items():
        path = os.path.join(ts_dir, rel)
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        d = parent
        while d != ts_dir:  # payload subdirectories are 0755 like the kubelet's MkdirAll
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        with open(path, "wb") as fh:
            fh.write(proj.data)
        os.chmod(path, proj.mode)
    tmp_link = os.path.join(target, DATA_TMP)
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(ts_dir), tmp_link)
    os.rename(tmp_link, os.path.join(target, DATA_DIR))
    top = {rel.split("/")[0] for rel in payload}
    for name in top:
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_DIR, name), link)
    for name in os.listdir(target):
        if name.startswith("..") or name in top:
            continue
        path = os.path.join(target, name)
        if os.path.islink(path):
            os.unlink(path)
    if old is not None and old != os.path.basename(ts_dir):
        shutil.rmtree(os.path.join(target, old), ignore_errors=True)
    return True
