"""Golden files pin the whole rendered payload of each scenario in tests/unit/proxy/scenarios.py.

To regenerate after an intended change, run
    NETSIM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/proxy/test_proxy_golden.py
and review the diff of tests/unit/proxy/golden/*.txt before committing it. Without the variable a
missing or different golden file fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netsim.proxy.render import render_full

from .scenarios import NODE, NODE_2IPS, scenarios

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NETSIM_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_golden_payload(name: str) -> None:
    services, eps, cfg = scenarios()[name]
    # The flag scenarios run on a node with two addresses, so nodePortAddresses has something to choose.
    node = NODE_2IPS if name.startswith("flag_") else NODE
    payload = render_full(services, eps, node, cfg).payload
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(payload)
    assert path.exists(), f"missing golden file {path}; run with NETSIM_UPDATE_GOLDEN=1"
    assert payload == path.read_text(), f"rendered payload differs from {path}"


def test_render_is_deterministic_whatever_the_input_order() -> None:
    services, eps, cfg = scenarios()["udp_sctp"]
    a = render_full(services, eps, NODE, cfg).payload
    b = render_full(list(reversed(services)), {k: list(reversed(v)) for k, v in eps.items()}, NODE, cfg).payload
    assert a == b
