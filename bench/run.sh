#!/usr/bin/env bash
# Benchmarks: figures and ratios against baselines measured in the same run (not timed tests).
#   bash bench/run.sh downtime [--reps N] [--sizes 64,256,1024]   stop-and-copy vs the bare CRIU sequence
#   bash bench/run.sh fleet                                       evacuation planner vs FIFO vs upper bound
#   bash bench/run.sh evacuation [--contention=1.25]              downtime objective vs today's vs the offline best (model)
#   bash bench/run.sh evacuation-lab [--sizes 256,384,512]        both objectives on the lab, real CRIU, 120 s and 30 s notices
#   bash bench/run.sh rebalance [--seed=N] [--hours=168]           a week: evacuation only vs live rebalancing vs restarts
#   bash bench/run.sh transport [--mib 1024] [--criu-mib 1024] [--reps N] [--pipes-only] [--image-root DIR]
#                                                                 page transports vs raw TCP and OpenSSH tunnels (same hops)
#   bash bench/run.sh notice [--trials 20] [--poll-ms 250]        notice-to-first-freeze latency (fake IMDS over SSH)
#   bash bench/run.sh postcopy [--reps N] [--sizes 256,1024]      post-copy vs stop-and-copy downtime through spotlift
#   bash bench/run.sh precopy [--reps N]                          pre-copy (eager and lazy restore) vs stop-and-copy, qemu lab
#   bash bench/run.sh container [--reps N] [--mib 256]            Podman container stop-and-copy vs the bare Podman sequence
#   bash bench/run.sh guard [--count 4] [--interval 10] [--mib 256] guard checkpoints vs full ones on demand, restore after a loss
#   bash bench/run.sh guard --qemu [--reps 1] [--count 4] [--interval 10] [--mib 64] [--hot 4] [--vm-mib 1024]
#                                                                 the same in the qemu lab (soft-dirty): incremental guard checkpoints
#   bash bench/run.sh scale --records [--sizes 0,10000,100000]    list and create latency, RSS with 100,000 records
#   bash bench/run.sh scale --watch [--nodes 30] [--seconds 10]     metadata watch cost, exec vs stream mode
#   bash bench/run.sh scale --fleet [--nodes 1000] [--baseline 30] [--ks 1,10,50]
#                                                                 notice -> first migration command, 1 and 2 orchestrators,
#                                                                 simulated nodes (bench/scale/sim)
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
  evacuation) node dist/bench/evacuation/evacuation-bench.js "$@" ;;
  evacuation-lab) node dist/bench/evacuation/evacuation-lab-bench.js "$@" ;;
  rebalance) node dist/bench/rebalance/rebalance-sim.js "$@" ;;
  transport) node dist/bench/transport/transport-bench.js "$@" ;;
  notice) node dist/bench/notice/notice-bench.js "$@" ;;
  postcopy) node dist/bench/postcopy/postcopy-bench.js "$@" ;;
  precopy) node dist/bench/precopy/precopy-bench.js "$@" ;;
  container) node dist/bench/container/container-bench.js "$@" ;;
  scale)
    if [ "${1:-}" = "--watch" ]; then shift; node dist/bench/scale/watch-bench.js "$@"
    elif [ "${1:-}" = "--fleet" ]; then shift; node dist/bench/scale/fleet-bench.js "$@"
    else node dist/bench/scale/records-bench.js "$@"; fi ;;
  guard)
    if [ "${1:-}" = "--qemu" ]; then shift; node dist/bench/guard/guard-qemu-bench.js "$@"
    else node dist/bench/guard/guard-bench.js "$@"; fi ;;
  *) echo "unknown benchmark: $what (container | downtime | evacuation | evacuation-lab | fleet | guard | notice | postcopy | precopy | rebalance | scale | transport)" >&2; exit 2 ;;
esac
