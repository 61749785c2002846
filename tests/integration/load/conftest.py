"""The namespace-pair and server fixtures are shared with the workload and probe integration tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workload"))

from twl_netns import made_namespaces, netpair, workload  # noqa: E402, F401
