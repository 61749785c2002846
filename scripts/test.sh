#!/usr/bin/env bash
# The full test suite: lint, unit tests (no root needed) and root integration tests on the real kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
