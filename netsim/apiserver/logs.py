"""`pods/log`: a container's output, as the kubelet serves it through the API server
(pkg/registry/core/pod/rest/log.go LogREST, the kubelet's containerLogs handler).

The files are the ones `netsim logs` reads (naming.container_log; `.previous` holds the last terminated
instance). Query parameters: `container` (required when the pod has several, with upstream's message),
`previous`, `tailLines`, `limitBytes`, `follow` (a chunked stream of what is appended until the pod goes
away, the container's file is replaced by a restart, or the client leaves), `timestamps` (each line
prefixed with its RFC3339Nano time and a space, as the kubelet writes them) and `sinceSeconds` /
`sinceTime` (lines from then on), the times being those logtimes.py recorded. Containers without a
`command` are played by the workload server and have no output: their log is empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from netsim import naming
from netsim.apiserver import errors, logtimes
from netsim.store import parse_time

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


def check_query(query: Mapping[str, str]) -> float | None:
    """The PodLogOptions validation of the API server (pkg/apis/core/validation ValidatePodLogOptions) for
    the time filters; the earliest time wanted (sinceSeconds/sinceTime), or None."""
    secs, when = query.get("sinceSeconds"), query.get("sinceTime")
    if secs and when:
        raise errors.invalid("PodLogOptions", "", "", [{"field": "", "message": "at most one of `sinceTime` or "
                                                        "`sinceSeconds` may be specified"}])
    if secs:
        if not secs.lstrip("-").isdigit() or int(secs) < 1:
            raise errors.invalid("PodLogOptions", "", "", [{"field": "sinceSeconds",
                                                            "message": "must be greater than 0"}])
        return time.time() - int(secs)
    if when:
        t = parse_time(when)
        if t is None:
            raise errors.bad_request(f'parsing time "{when}" as RFC3339: cannot parse')
        return t
    return None


def _render(path: str, data: bytes, start: int, query: Mapping[str, str], since: float | None) -> bytes:
    """Lines from offset `start`: those at or after `since`, prefixed with their time when asked
    (the kubelet's ReadLogs: "<RFC3339Nano> <line>")."""
    stamps = query.get("timestamps") in ("true", "1")
    if not stamps and since is None:
        return data
    out = []
    for line, t in logtimes.line_times(path, data, start):
        if since is not None and t < since:
            continue
        out.append(logtimes.rfc3339nano(t).encode() + b" " + line if stamps else line)
    return b"".join(out)


def read(path: str, query: Mapping[str, str]) -> bytes:
    since = check_query(query)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    start = 0
    if (query.get("tailLines") or "").isdigit():
        tail = _tail(data, int(query["tailLines"]))
        start, data = len(data) - len(tail), tail
    data = _render(path, data, start, query, since)
    if (query.get("limitBytes") or "").isdigit():
        data = data[: int(query["limitBytes"])]
    return data


def follow(path: str, first: bytes, still_there: Callable[[], bool], stopping: Callable[[], bool],
           query: Mapping[str, str] | None = None) -> Iterator[bytes]:
    """What the file holds (as `read` cut it), then whatever is appended, until the pod goes away."""
    query = query or {}
    since = check_query(query)
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
            chunk = chunk[: chunk.rfind(b"\n") + 1] if query.get("timestamps") in ("true", "1") else chunk
            if chunk:
                start, offset = offset, offset + len(chunk)
                ino = st.st_ino
                if query.get("timestamps") in ("true", "1"):
                    time.sleep(FOLLOW_POLL / 4)  # the clock records the line a moment after it is written
                yield _render(path, chunk, start, query, since)
                continue
        if time.monotonic() - checked > 1.0:
            if not still_there():
                return
            checked = time.monotonic()
        time.sleep(FOLLOW_POLL)
