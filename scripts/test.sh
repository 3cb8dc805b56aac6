#!/usr/bin/env bash
# The whole test suite: provisions what it needs (apt packages, CRIU >= 4.2, Redis, sshd), then
# type-checks, lints and runs every jest project (unit, int, e2e with real CRIU). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lab/install.sh
bash scripts/lab/qemu/install.sh   # the real-kernel lab (pre-copy needs soft-dirty, which this kernel lacks)
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent typecheck
npm run --silent lint
# --forceExit: a suite that leaks a handle must not hang CI past its limit (jest still reports the leak).
NODE_OPTIONS=--experimental-vm-modules npx jest --runInBand --forceExit "$@"
