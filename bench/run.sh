#!/usr/bin/env bash
# Benchmarks: figures and ratios against baselines measured in the same run (not timed tests).
#   bash bench/run.sh downtime [--reps N] [--sizes 64,256,1024]   stop-and-copy vs the bare CRIU sequence
#   bash bench/run.sh fleet                                       evacuation planner vs FIFO vs upper bound
# Run as root; installs and starts what it needs, like the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-downtime}
shift || true
bash scripts/lab/install.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
case "$what" in
  downtime) node dist/bench/downtime/downtime-bench.js "$@" ;;
  fleet) node dist/bench/fleet/fleet-sim.js "$@" ;;
  *) echo "unknown benchmark: $what (downtime | fleet)" >&2; exit 2 ;;
esac
