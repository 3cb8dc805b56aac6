#!/usr/bin/env bash
# Idempotent host packages for the qemu lab (scripts/lab/qemu): the emulator, the tools that build the
# initramfs, and the ssh client the tests use. The kernel, busybox and dropbear for the guest are NOT
# installed here: build-image.sh fetches them with `apt-get download` and unpacks them with `dpkg -x`.
set -euo pipefail
log() { echo "[lab/qemu/install] $*" >&2; }

APT_PKGS=(qemu-system-x86 cpio gzip xz-utils zstd kmod build-essential openssh-client \
  ca-certificates)
source "$(dirname "$0")/../apt.sh"
ensure_apt_packages "${APT_PKGS[@]}"
# CRIU >= 4.2 for this machine (the guest gets a copy of the same binary and its libraries).
if [ ! -x /usr/local/sbin/criu ]; then
  bash "$(dirname "$0")/../install.sh"
fi
log "ok: $(qemu-system-x86_64 --version | head -1)"
