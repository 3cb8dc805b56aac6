#!/usr/bin/env bash
# The whole test suite: provisions what it needs (apt packages, CRIU >= 4.2, Redis, sshd), then
# type-checks, lints and runs every jest project (unit, int, e2e with real CRIU). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lab/install.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent typecheck
npm run --silent lint
NODE_OPTIONS=--experimental-vm-modules npx jest --runInBand "$@"
