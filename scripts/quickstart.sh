#!/usr/bin/env bash
# The README's main job: install, then build the default cluster, show it, probe it, tear it down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scenarios/quickstart.yaml ] && .venv/bin/netsim run --help >/dev/null 2>&1; then
  exec .venv/bin/netsim run scenarios/quickstart.yaml
fi
.venv/bin/netsim down --name quickstart >/dev/null 2>&1 || true
trap '.venv/bin/netsim down --name quickstart >/dev/null' EXIT
.venv/bin/netsim up --name quickstart
.venv/bin/netsim status --cluster quickstart
.venv/bin/netsim exec --cluster quickstart host/client -- ping -c 2 -W 1 172.18.0.2
