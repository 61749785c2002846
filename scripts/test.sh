#!/usr/bin/env bash
# The full test suite: lint, unit tests (no root needed) and root integration tests on the real kernel.
#
# Test files run in parallel (pytest-xdist, one file per worker at a time: a file's module-scoped
# clusters stay in one process). The integration tests mostly wait on real timers, so more workers than
# cores pay off; NETSIM_TEST_WORKERS sets their number (0 runs everything in this process). Tests marked
# `serial` act on every cluster of the machine (`down --all`) and run afterwards, alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
workers="${NETSIM_TEST_WORKERS:-3}"
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile -m "not serial" "$@" || status=$?
# Exit 5 is "no test selected" (e.g. a path with only serial tests, or none): not a failure here.
[ "$status" -eq 5 ] && status=0
serial=0
.venv/bin/python -m pytest -q -p no:cacheprovider -m serial "$@" || serial=$?
[ "$serial" -eq 5 ] && serial=0
[ "$status" -ne 0 ] && exit "$status"
exit "$serial"
