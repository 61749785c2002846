"""PlayedContainers at ten thousand pods: asking about one pod (every pod, every pass) or forgetting it (every
new sandbox) never walks the containers of every other pod."""

from __future__ import annotations

from netsim.node.liveness import PlayedContainers


class _NoWalk(dict):
    """The (pod, container) map, refusing to be walked: a lookup per pod is all `down`/`forget` may do."""

    def items(self):
        raise AssertionError("walked the containers of every pod")

    def __iter__(self):
        raise AssertionError("walked the containers of every pod")

    def keys(self):
        raise AssertionError("walked the containers of every pod")


def test_down_and_forget_touch_one_pod_only():
    played = PlayedContainers()
    for i in range(10_000):
        played.get(f"default/p{i}", "web", 0.0)
    played.get("default/p7", "side", 0.0)
    played.kill("default/p7", "web", 1.0)
    played._state = _NoWalk(played._state)
    assert played.down("default/p7") == {"web"} and played.down("default/p8") == set()
    played.forget("default/p7")
    assert played.peek("default/p7", "web") is None and played.peek("default/p7", "side") is None
    assert played.down("default/p7") == set() and played.peek("default/p8", "web") is not None
    played.restart_wait("default/p8", "web", 2.0)
    played.kill("default/p8", "web", 2.0)
    played.restart("default/p8", "web", 3.0)
    assert played.down("default/p8") == set() and played.peek("default/p8", "web").restarts == 1
