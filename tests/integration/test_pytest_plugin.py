"""The documented pytest-plugin example runs as written (docs/python-api.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def test_documented_example_passes(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    example = next(b for b in blocks if "pytest.mark.netsim" in b)
    test_file = tmp_path / "test_shop_policies.py"
    test_file.write_text(example)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
