#!/usr/bin/env bash
# Installs everything netsim needs on a Debian machine, as root: kernel tools from apt, a virtualenv in
# .venv with netsim and its test extras. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh must run as root (it installs apt packages)" >&2
  exit 2
fi

APT_PACKAGES=(iproute2 iptables ipset conntrack nftables iputils-ping netcat-openbsd tcpdump procps util-linux
              containernetworking-plugins graphviz python3 python3-venv python3-pip)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The API endpoint's tests drive the real kubectl. Keep the one the machine has (any recent kubectl);
# where there is none, Debian's kubernetes-client package provides one.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "installing: kubernetes-client (kubectl)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null || \
    echo "kubectl could not be installed; the kubectl tests will be skipped" >&2
fi

# The etcd store (spec.store.type: etcd) runs Debian's etcd server as a private process per cluster, never
# the distribution's own service: the package's postinst would start /etc/init.d/etcd (data in
# /var/lib/etcd), so it is installed with a policy-rc.d that refuses service starts, and on a machine run
# by systemd the unit is stopped, disabled and masked.
if ! command -v etcd >/dev/null 2>&1; then
  echo "installing: etcd-server etcd-client (netsim starts its own etcd per cluster; the system service stays off)"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null || \
    echo "etcd could not be installed; the etcd store and its tests will be unavailable" >&2
  [ -n "$made_policy" ] && rm -f "$policy"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
    systemctl mask etcd.service >/dev/null 2>&1 || true
  fi
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "netsim needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# An editable install in setuptools' "compat" mode: a .pth line naming this directory. The default mode
# installs an import hook (`__editable___netsim_*_finder`) that every Python start imports and runs from
# site.py (pathlib, importlib.util, ...: 15-30 ms of each `netsim` command, issue #16 item 2).
stamp=.venv/.netsim-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # setuptools calls compat mode transitional: where a later setuptools has dropped it, the default mode
  # (slower to start, same behaviour) is installed instead of failing the setup.
  .venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat \
    || .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
echo "netsim installed: $(.venv/bin/netsim --version)"
