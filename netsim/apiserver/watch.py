"""WATCH: a chunked stream of JSON events, one per line, from the store's change log.

As k8s.io/apiserver pkg/endpoints/handlers/watch.go and the watch cache (pkg/storage/cacher) serve it:
- no resourceVersion, or "0": the current objects first as ADDED events, then the changes after them;
  a resourceVersion: the changes after it (`Store.changes_since`).
- a resourceVersion the change log was compacted past is answered, as the cacher does, with one ERROR
  event holding a Status 410 Expired ("too old resource version: X (Y)") in an otherwise normal 200
  stream; client-go's reflector and the Python client relist on it.
- `allowWatchBookmarks=true`: a BOOKMARK event (an object with only metadata.resourceVersion) after a
  quiet interval (NETSIM_WATCH_BOOKMARK_INTERVAL seconds, default 60, about as often as the cacher's
  bookmark timer), so a client can restart from a recent version without events of its kind.
- label and field selectors filter events; an object that stops matching is sent as DELETED (the cacher's
  watch filter does the same transition), one that starts matching as ADDED.
- `timeoutSeconds` ends the stream (default: 30 to 60 minutes, upstream's randomised minRequestTimeout).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from netsim.apiserver import errors
from netsim.apiserver.handlers import Handlers, Target, selected, selectors
from netsim.store import Compacted

POLL = 0.25  # how long one wait for a store change blocks before the stream checks it should go on


def bookmark_interval() -> float:
    return float(os.environ.get("NETSIM_WATCH_BOOKMARK_INTERVAL", "60"))


def _in_scope(t: Target, ns: str | None) -> bool:
    return not t.res.namespaced or t.namespace is None or ns == t.store_ns


def events(h: Handlers, t: Target, query: Mapping[str, str], stopping: Callable[[], bool],
           render: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The watch events for `t`, rendered by `render(type, object)` (JSON object or a Table row). Bad
    arguments raise ApiError here, before the stream (and its 200) starts."""
    label, field = selectors(query, t.kind)
    rv_text = query.get("resourceVersion") or ""
    if rv_text not in ("", "0") and not rv_text.isdigit():
        raise errors.bad_request(f"invalid resource version: {rv_text!r}")
    return _stream(h, t, query, stopping, render, label, field, rv_text)


def _stream(h: Handlers, t: Target, query: Mapping[str, str], stopping: Callable[[], bool],
            render: Callable[[str, dict[str, Any]], dict[str, Any]], label: Any, field: tuple,
            rv_text: str) -> Iterator[dict[str, Any]]:
    timeout = float(query["timeoutSeconds"]) if (query.get("timeoutSeconds") or "").isdigit() else \
        random.uniform(1800, 3600)
    deadline = time.monotonic() + timeout
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    filtered = label is not None or bool(field)
    visible: set[tuple[str | None, str]] = set()
    if rv_text in ("", "0"):
        with h.store.snapshot() as snap:
            rv = snap.current_rv()
            initial = snap.list(t.kind, t.store_ns)
        for obj in initial:
            if selected(obj, t.kind, label, field):
                visible.add((obj["metadata"].get("namespace"), obj["metadata"]["name"]))
                yield render("ADDED", h.present(t, obj))
    else:
        rv = int(rv_text)
    last_sent = time.monotonic()
    interval = bookmark_interval()
    while not stopping() and time.monotonic() < deadline:
        try:
            changes = h.store.changes_since(rv, limit=500)
        except Compacted as e:
            status = errors.expired(f"too old resource version: {e.rv} ({e.compacted})").status()
            yield {"type": "ERROR", "object": status}
            return
        for c in changes:
            rv = c.rv
            if c.kind != t.kind or not _in_scope(t, c.namespace):
                continue
            raw = c.object  # once: a change-log entry decodes its body on each read
            key = (raw["metadata"].get("namespace"), c.name)
            obj = h.present(t, dict(raw))  # present() sets apiVersion/kind: the selectors read the stored object
            if c.type == "DELETED":
                if key in visible or selected(raw, t.kind, label, field):
                    visible.discard(key)
                    yield render("DELETED", obj)
                    last_sent = time.monotonic()
                continue
            if selected(raw, t.kind, label, field):
                typ = "ADDED" if c.type == "ADDED" or (key not in visible and filtered) else "MODIFIED"
                visible.add(key)
                yield render(typ, obj)
                last_sent = time.monotonic()
            elif key in visible:
                visible.discard(key)
                yield render("DELETED", obj)
                last_sent = time.monotonic()
        if changes:
            continue
        if bookmarks and time.monotonic() - last_sent >= interval:
            yield {"type": "BOOKMARK", "object": {"kind": t.res.kind, "apiVersion": t.res.group_version,
                                                  "metadata": {"resourceVersion": str(rv)}}}
            last_sent = time.monotonic()
        h.store.wait_for_change(rv, min(POLL, max(0.0, deadline - time.monotonic())))
