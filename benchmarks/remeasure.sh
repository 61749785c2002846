#!/usr/bin/env bash
# Re-measure the benchmarks of benchmarks/README.md at their documented sizes, one after the other, each
# logged to OUT/<name>.log with its wall time and the machine's load average before and after (the ratios
# are what compare across machines; the absolute times only on a quiet one). Run as root from the repo root:
#     benchmarks/remeasure.sh [OUT] [NAME ...]      (default OUT: /tmp/netsim-bench-<date>; NAME: all quick ones)
# The long ones (bench_scale at 10,000 pods, bench_services at 10,000 Services, bench_scale_probe at 100 nodes)
# are not in the default set: name them to run them.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-/tmp/netsim-bench-$(date -u +%Y%m%dT%H%M)}
shift || true
mkdir -p "$OUT"
declare -A CMD=(
  [sandboxes]="benchmarks.bench_sandboxes 100 1000"
  [cni]="benchmarks.bench_cni 200 3"
  [controlplane]="benchmarks.bench_controlplane 1000 50"
  [proxy]="benchmarks.bench_proxy 1000 10000"
  [proxy-kernel]="benchmarks.bench_proxy --only kernel"
  [probe]="benchmarks.bench_probe 1000 120"
  [trace]="benchmarks.bench_trace 5"
  [apiserver]="benchmarks.bench_apiserver 1000"
  [load]="benchmarks.bench_load 5000 5"
  [store]="benchmarks.bench_store"
  [decode]="benchmarks.bench_decode"
  [idle]="benchmarks.bench_idle"
  [hosts]="benchmarks.bench_hosts"
  [down]="benchmarks.bench_down"
  [services]="benchmarks.bench_services --services 2000 --only selectorless --change-reps 5 --idle-seconds 10"
  [scale]="benchmarks.bench_scale --nodes 100 --replicas 1000 3000"
  [services-10k]="benchmarks.bench_services --services 10000 --only selectorless --change-reps 5 --idle-seconds 10"
  [scale-10k]="benchmarks.bench_scale --nodes 100 --replicas 10000"
  [scale-probe]="benchmarks.bench_scale_probe 100 100 900"
)
QUICK=(sandboxes cni controlplane proxy proxy-kernel probe trace apiserver load store decode idle hosts down services scale)
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=("${QUICK[@]}")
for name in "${NAMES[@]}"; do
  cmd=${CMD[$name]:-}
  if [ -z "$cmd" ]; then echo "unknown benchmark $name (one of: ${!CMD[*]})" >&2; exit 2; fi
  module=${cmd%% *}
  [ -f "${module//.//}.py" ] || { echo "$name: ${module} not in this tree, skipped" | tee "$OUT/$name.log"; continue; }
  start=$(date +%s.%N); before=$(cut -d' ' -f1-3 /proc/loadavg)
  # shellcheck disable=SC2086
  timeout 3600 "$PY" -m $cmd > "$OUT/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N); after=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '%-14s rc=%-3s %7.1f s  load %s -> %s\n' "$name" "$rc" "$(awk "BEGIN{print $end - $start}")" "$before" "$after" \
    | tee -a "$OUT/summary.txt"
done
echo "logs in $OUT"
