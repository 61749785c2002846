"""Namespace fixtures shared with tests/integration/probe (see twl_netns.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from twl_netns import made_namespaces, netpair, workload  # noqa: E402, F401
