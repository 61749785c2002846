"""`pods/log`: a container's output, as the kubelet serves it through the API server
(pkg/registry/core/pod/rest/log.go LogREST, the kubelet's containerLogs handler).

The files are the ones `netsim logs` reads (naming.container_log; `.previous` holds the last terminated
instance). Query parameters: `container` (required when the pod has several, with upstream's message),
`previous`, `tailLines`, `limitBytes`, `follow` (a chunked stream of what is appended until the pod goes
away, the container's file is replaced by a restart, or the client leaves). `timestamps` is accepted but
adds nothing: netsim's log files carry no per-line times (not yet). Containers without a `command` are
played by the workload server and have no output: their log is empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from netsim import naming
from netsim.apiserver import errors

FOLLOW_POLL = 0.2


def _container(pod: Mapping[str, Any], name: str, wanted: str | None) -> str:
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted:
        if wanted not in names:
            raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(names) == 1:
        return names[0]
    raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(names)}]")


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def log_path(cluster: str, pod: Mapping[str, Any], query: Mapping[str, str]) -> str:
    md = pod["metadata"]
    container = _container(pod, md["name"], query.get("container") or None)
    path = naming.container_log(cluster, md.get("namespace") or "default", md["name"], container)
    if query.get("previous") in ("true", "1"):
        path += ".previous"
        if not os.path.exists(path):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{md["name"]}" not found')
    return path


def read(path: str, query: Mapping[str, str]) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    if (query.get("tailLines") or "").isdigit():
        data = _tail(data, int(query["tailLines"]))
    if (query.get("limitBytes") or "").isdigit():
        data = data[: int(query["limitBytes"])]
    return data


def follow(path: str, first: bytes, still_there: Callable[[], bool], stopping: Callable[[], bool]) -> Iterator[bytes]:
    """What the file holds (as `read` cut it), then whatever is appended, until the pod goes away."""
    if first:
        yield first
    try:
        offset = os.path.getsize(path)
        ino = os.stat(path).st_ino
    except FileNotFoundError:
        offset, ino = 0, None
    checked = time.monotonic()
    while not stopping():
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and ino is not None and st.st_ino != ino:
            return  # the container restarted: kubectl logs -f ends there too
        if st is not None and st.st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(st.st_size - offset)
            offset += len(chunk)
            ino = st.st_ino
            yield chunk
            continue
        if time.monotonic() - checked > 1.0:
            if not still_there():
                return
            checked = time.monotonic()
        time.sleep(FOLLOW_POLL)
