#!/usr/bin/env bash
# Idempotent lab provisioning: Debian packages, and a CRIU >= 4.2.
# CRIU: built from Debian's source package (sid) with the project's patches (scripts/lab/criu), cached
# under $SPOTLIFT_CACHE (default /var/cache/spotlift), installed as /usr/local/sbin/criu.
set -euo pipefail
CACHE=${SPOTLIFT_CACHE:-/var/cache/spotlift}
CRIU_MIN=4.2
mkdir -p "$CACHE"

log() { echo "[lab/install] $*" >&2; }

APT_PKGS=(redis-server redis-sentinel openssh-server openssh-client iproute2 util-linux procps openssl rsync python3 \
  libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev libprotobuf-c-dev \
  libprotobuf-dev pkgconf protobuf-c-compiler protobuf-compiler uuid-dev python3-protobuf \
  build-essential patch xz-utils ca-certificates \
  podman runc busybox-static)
# deploy/ checks: the image build and smoke run (deploy/container), systemd-analyze (deploy/systemd).
APT_PKGS+=(buildah systemd)

source "$(dirname "$0")/apt.sh"
ensure_apt_packages "${APT_PKGS[@]}"
# The dashboard test (test/dashboard.e2e-spec.ts) drives Debian's Chromium through playwright-core.
ensure_apt_packages chromium
# Debian's postinst may start services; the lab starts its own private instances.
systemctl disable --now redis-server redis-sentinel ssh >/dev/null 2>&1 || true
systemctl disable --now podman.socket >/dev/null 2>&1 || true

# Podman for the lab nodes (containers.sh): Debian's podman with runc, one containers.conf for every node.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/containers.sh"
if [ "$(containers_conf_text)" != "$(cat "$LAB_CONTAINERS_CONF" 2>/dev/null)" ]; then
  mkdir -p "$(dirname "$LAB_CONTAINERS_CONF")"
  containers_conf_text >"$LAB_CONTAINERS_CONF"
  log "wrote $LAB_CONTAINERS_CONF"
fi
# runc, not crun: containers.conf names it, and Debian 12's crun cannot checkpoint here (LAB.md).
command -v runc >/dev/null || { log "runc is missing after install"; exit 1; }

version_ok() { # $1 = a criu binary
  local v
  v=$("$1" --version 2>/dev/null | sed -n 's/^Version: *//p') || return 1
  [ -n "$v" ] || return 1
  [ "$(printf '%s\n%s\n' "$CRIU_MIN" "$v" | sort -V | head -n1)" = "$CRIU_MIN" ] || return 1
  "$1" check >/dev/null 2>&1
}

# The lab's CRIU is Debian's source package plus the patches in scripts/lab/criu (see the README there:
# one patch, lazy restore of parent-image pages). The build is cached per set of patches, and
# /usr/local/sbin/criu is replaced whenever it is not that build (e.g. a stock one from an older checkout).
PATCH_DIR="$(cd "$(dirname "$0")" && pwd)/criu"
PATCHES_ID=$(cat "$PATCH_DIR"/*.patch 2>/dev/null | sha256sum | cut -c1-12)
BUILT="$CACHE/criu-$PATCHES_ID"
CRIU_BIN=/usr/local/sbin/criu
if [ -x "$CRIU_BIN" ] && [ -x "$BUILT" ] && cmp -s "$CRIU_BIN" "$BUILT" && version_ok "$CRIU_BIN"; then
  log "CRIU ok: $($CRIU_BIN --version | head -1) (patches $PATCHES_ID)"
  exit 0
fi

if [ ! -x "$BUILT" ] || ! version_ok "$BUILT"; then
  log "building CRIU from Debian's source package with scripts/lab/criu/*.patch (about a minute)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
  echo "deb-src http://deb.debian.org/debian sid main" > "$work/apt/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "APT::Sandbox::User=root")
  orig=$(ls "$CACHE"/criu_*.orig.tar.* 2>/dev/null | head -n1 || true)
  if [ -z "$orig" ]; then
    apt-get "${aptopts[@]}" update -qq
    (cd "$work" && apt-get "${aptopts[@]}" source --download-only criu >/dev/null 2>&1 || true)
    orig=$(ls "$work"/criu_*.orig.tar.* 2>/dev/null | head -n1 || true)
    [ -n "$orig" ] || { log "could not download CRIU's source"; exit 1; }
    cp "$orig" "$CACHE/"
  fi
  mkdir -p "$work/src" && tar -xf "$orig" -C "$work/src" --strip-components=1
  for p in "$PATCH_DIR"/*.patch; do
    [ -e "$p" ] || continue
    patch -d "$work/src" -p1 --quiet < "$p" || { log "patch $p does not apply to $(basename "$orig")"; exit 1; }
  done
  make -C "$work/src" -j"$(nproc)" criu >"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
  install -m 0755 "$work/src/criu/criu" "$BUILT"
fi
install -m 0755 "$BUILT" "$CRIU_BIN"
version_ok "$CRIU_BIN" || { log "CRIU at $CRIU_BIN fails 'criu check'"; "$CRIU_BIN" check || true; exit 1; }
log "CRIU ok: $($CRIU_BIN --version | head -1) (patches $PATCHES_ID)"
# crit, CRIU's image decoder, from the same source: the forensic tests cross-check spotlift's decoding with it.
bash "$(cd "$(dirname "$0")" && pwd)/crit.sh"
