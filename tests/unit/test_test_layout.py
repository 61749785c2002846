"""The suite's own layout: pytest's default (prepend) import mode needs every test module's basename to be
unique across tests/, or collection stops with 'import file mismatch' before any test runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
