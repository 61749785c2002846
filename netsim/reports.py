"""The text and picture forms of what `netsim.Cluster`'s methods return, for the CLI.

The CLI imports nothing below the front door but pure modules (tests/unit/cli/test_cli_front_door.py):
what it prints of a probe, verify, trace or load result is rendered by the observation layer's own
renderers, which this module hands on. Each is imported when first called, so a command that prints
none of them (or `--help`) does not load matplotlib or the tracer. Rendering only: nothing here acts on
a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def check_draw_format(path: str) -> str:
    """The picture format `path`'s extension asks for (png, svg, dot); UsageError for another."""
    from netsim.draw import check_format
    return check_format(path)


def matrix_png(report: Any, path: str) -> str:
    """A verify report's reachability matrix as a heatmap PNG."""
    from netsim.draw import matrix_png as draw_matrix
    return draw_matrix(report, path)


def load_text(report: dict[str, Any]) -> str:
    """`netsim load`'s text report."""
    from netsim.load.report import render_text
    return render_text(report)


def verify_matrix(cells: Sequence[Any], which: str) -> str:
    """A verify report's expected or observed matrix as text."""
    from netsim.policy.verify import matrix
    return matrix(cells, which)


def probe_spread(results: Iterable[Any]) -> dict[str, int]:
    """How many attempts each endpoint served (`netsim probe --count`)."""
    from netsim.probe.engine import spread
    return spread(results)


def trace_text(report: Any) -> str:
    """`netsim trace`'s text: one line per hop, simulated and observed."""
    from netsim.trace.report.text import render_text
    return render_text(report)
