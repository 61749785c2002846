"""A mapping whose keys lead with a pod key, indexed by pod.

The kubelet keeps per-container state in flat dicts keyed `(pod key, container, ...)` (probe workers, probe
results, restart back-offs, killed instances, event spam buckets). Forgetting a pod by walking every key
made each pod deletion or failed sandbox cost the size of the whole node's state, which is quadratic
when thousands of pods go at once (a scale-down, a sandbox failure storm): 65 % of the control loop's time
with ~15,000 pods on a node set. Here the pod's keys are kept beside the entries, so `forget(pod)` costs
that pod's entries only.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, MutableMapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _pod_of(key: object) -> object:
    """The pod a key belongs to: the first item of a tuple key; None (no pod) for any other key."""
    return key[0] if isinstance(key, tuple) and key else None


class PodKeyed(MutableMapping[K, V], Generic[K, V]):
    """A dict (insertion ordered) with an index from pod key to that pod's keys."""

    __slots__ = ("_items", "_by_pod")

    def __init__(self) -> None:
        self._items: dict[K, V] = {}
        self._by_pod: dict[object, set[K]] = {}

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        return self._items.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self._items:
            pod = _pod_of(key)
            if pod is not None:
                self._by_pod.setdefault(pod, set()).add(key)
        self._items[key] = value

    def __delitem__(self, key: K) -> None:
        del self._items[key]
        pod = _pod_of(key)
        keys = self._by_pod.get(pod)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_pod[pod]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def keys_of(self, pod: object) -> list[K]:
        """The keys of `pod` (a copy: the caller may delete while it walks them)."""
        return list(self._by_pod.get(pod, ()))

    def forget(self, pod: object) -> None:
        """Drop every entry of `pod`."""
        for key in self._by_pod.pop(pod, ()):
            del self._items[key]
