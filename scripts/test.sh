#!/usr/bin/env bash
# The whole test suite: provisions what it needs (apt packages, CRIU >= 4.2, Redis, sshd), then
# type-checks, lints and runs every jest project (unit, int, e2e with real CRIU). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lab/install.sh
bash scripts/lab/qemu/install.sh   # the real-kernel lab (pre-copy needs soft-dirty, which this kernel lacks)
[ -d node_modules ] || npm ci --no-audit --no-fund
# The e2e suites bring the lab up (scripts/lab/nodes.sh up is idempotent); take it down again at the end
# unless it was already up before this run (someone's demo, or a developer's lab).
if bash scripts/lab/nodes.sh status >/dev/null 2>&1; then lab_was_up=1; else lab_was_up=0; fi
teardown() { [ "$lab_was_up" = 1 ] || bash scripts/lab/nodes.sh down >/dev/null 2>&1 || true; }
trap teardown EXIT
npm run --silent typecheck
npm run --silent lint
npm run --silent build   # the CLI test installs and runs the built command (apps/cli/src/cli.int-spec.ts)
# --forceExit: a suite that leaks a handle must not hang CI past its limit (jest still reports the leak).
NODE_OPTIONS=--experimental-vm-modules npx jest --runInBand --forceExit "$@"
