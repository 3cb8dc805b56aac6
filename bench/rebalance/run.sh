#!/usr/bin/env bash
# Build the rebalancing benchmark and run it. Builds only what it needs (libs/placement, libs/domain, this
# folder) so unrelated work in progress elsewhere cannot break it; `npm run build` produces the same
# dist/bench/rebalance/rebalance-sim.js. Arguments go to the benchmark (--seed=N --hours=168 --reserve=0.2 --pool-reserve=0.2; DEBUG_SIM=1 prints
# each workload a notice catches).
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsc -p bench/rebalance/tsconfig.bench.json
npx tsc-alias -p bench/rebalance/tsconfig.bench.json
exec node dist/bench/rebalance/rebalance-sim.js "$@"
