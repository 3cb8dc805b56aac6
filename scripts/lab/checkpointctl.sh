#!/usr/bin/env bash
# Builds checkpointctl (which reads Podman/CRI-O checkpoint archives) as /usr/local/bin/checkpointctl, by hand,
# from a checkout of its source given as $1, offline. Not part of install.sh: checkpointctl is not a Debian
# package and its source cannot be fetched here (only the npm registry and Debian are reachable). v1.1.0 is
# the newest tag that Debian bookworm's Go (1.19) builds (`go 1.18` in go.mod; later tags need 1.21+) and it
# vendors its modules, so no module proxy is needed. Used to read spotlift's export (README "Forensics").
set -euo pipefail
src=${1:?usage: checkpointctl.sh <checkpointctl v1.1.0 source dir>}
command -v go >/dev/null || apt-get install -y -q --no-install-recommends golang-go >/dev/null
cd "$src"
GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 go build -o /usr/local/bin/checkpointctl .
echo "[checkpointctl] built /usr/local/bin/checkpointctl from $src"
