#!/usr/bin/env bash
# Builds the qemu lab's Podman layer: a second cpio archive that vm.sh appends to the guest's initramfs
# when SPOTLIFT_QEMU_PODMAN=1. It holds this machine's podman, runc and conmon (Debian 12's packages,
# which install.sh put here for the lab nodes) with every library ldd lists, Podman's configuration for
# a guest with no systemd (cgroupfs, file events, runc, the vfs storage driver on the guest's tmpfs),
# and a boot hook that mounts the cgroup2 hierarchy Podman needs. Kept apart from the base image so the
# suites that do not use containers boot the same small initramfs as before (and the same guest RAM).
#
# Output: $OUT/podman.cpio.gz (+ podman.stamp). Rebuilt when a binary or this script changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${SPOTLIFT_CACHE:-/var/cache/spotlift}/qemu
log() { echo "[lab/qemu/build-podman-layer] $*" >&2; }

PODMAN=$(command -v podman || true)
RUNC=$(command -v runc || true)
CONMON=$(command -v conmon || true)
[ -n "$PODMAN" ] && [ -n "$RUNC" ] && [ -n "$CONMON" ] ||
  { log "podman, runc and conmon must be installed on this machine (scripts/lab/install.sh)"; exit 1; }
[ -f /usr/share/containers/containers.conf ] || { log "containers-common is missing"; exit 1; }

stamp=$(sha256sum "$PODMAN" "$RUNC" "$CONMON" "$0" /usr/share/containers/seccomp.json | awk '{print $1}' | sha256sum | awk '{print $1}')
if [ "${SPOTLIFT_QEMU_FORCE:-0}" != 1 ] && [ -s "$OUT/podman.cpio.gz" ] && [ "$(cat "$OUT/podman.stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
R=$work/root
mkdir -p "$R"/usr/{bin,sbin,lib/x86_64-linux-gnu,libexec/podman} "$R"/etc/{containers,lab/rc.d} \
  "$R"/usr/share/containers "$R"/var/{lib/containers,tmp} "$R"/run
chmod 1777 "$R/var/tmp"

copy_with_libs() { # src dst (the base image already has glibc and the loader; duplicates are harmless in cpio order)
  install -m 0755 "$1" "$R$2"
  ldd "$1" | awk '/=> \//{print $3}' | while read -r lib; do
    cp -L "$lib" "$R/usr/lib/x86_64-linux-gnu/$(basename "$lib")"
  done
}
copy_with_libs "$PODMAN" /usr/bin/podman
copy_with_libs "$RUNC" /usr/sbin/runc
copy_with_libs "$CONMON" /usr/bin/conmon
ln -s /usr/bin/conmon "$R/usr/libexec/podman/conmon"
cp /usr/share/containers/containers.conf /usr/share/containers/seccomp.json "$R/usr/share/containers/"
cp /etc/containers/policy.json "$R/etc/containers/policy.json"
printf 'unqualified-search-registries = []\n' > "$R/etc/containers/registries.conf"
# No systemd in the guest: cgroupfs and a file event log; runc (checkpoint/restore); root there has every
# capability, but the nodes' setting is kept so one containers.conf describes both labs.
cat > "$R/etc/containers/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
# vfs: no overlay-on-tmpfs questions; the lab's images are a few MB.
cat > "$R/etc/containers/storage.conf" <<'CONF'
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF
# Boot hook (run by the base image's rcS): the unified cgroup hierarchy Podman and runc need.
cat > "$R/etc/lab/rc.d/podman" <<'EOF'
#!/bin/sh
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || echo "lab-init: cgroup2 mount failed" > /dev/console
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
exit 0
EOF
chmod 0755 "$R/etc/lab/rc.d/podman"
# GNU tar: CRIU dumps a container's tmpfs mounts (/dev, /dev/shm) with GNU tar options busybox's lacks
# ("Can't dump tmpfs content"); copy_with_libs brings libacl along.
copy_with_libs "$(command -v tar)" /usr/bin/tar
# The root must not be the initramfs itself: pivot_root(2) refuses rootfs, and both runc (starting a
# container) and CRIU (restoring one: "mnt: pivot_root(., crtools-put-root...) failed: Invalid argument")
# pivot. This /init (replacing the base image's link to busybox init) copies the initramfs into a tmpfs
# and switches to it; busybox's switch_root frees the initramfs' copy.
rm -f "$R/init"
cat > "$R/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /newroot
mount -t tmpfs -o mode=755 tmpfs /newroot
for e in /*; do [ "$e" = /newroot ] || [ "$e" = /init ] || cp -a "$e" /newroot/; done
ln -s /sbin/init /newroot/init
exec switch_root /newroot /sbin/init
INIT
chmod 0755 "$R/init"
{
  echo "PODMAN_VERSION=$(dpkg-query -W -f='${Version}' podman 2>/dev/null)"
  echo "RUNC_VERSION=$(dpkg-query -W -f='${Version}' runc 2>/dev/null)"
  echo "CONMON_VERSION=$(dpkg-query -W -f='${Version}' conmon 2>/dev/null)"
} > "$R/etc/lab/podman.env"

(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 > "$work/podman.cpio.gz"
mv "$work/podman.cpio.gz" "$OUT/podman.cpio.gz"
echo "$stamp" > "$OUT/podman.stamp"
log "built $OUT/podman.cpio.gz ($(du -h "$OUT/podman.cpio.gz" | cut -f1))"
