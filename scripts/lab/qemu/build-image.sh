#!/usr/bin/env bash
# Builds the qemu lab image: a Debian 12 cloud kernel (vmlinuz) and a busybox initramfs holding CRIU
# (this machine's build, with every library ldd lists), dropbear, the lab workload and the kernel
# modules CRIU and the network need. Idempotent: everything is cached under
# ${SPOTLIFT_CACHE:-/var/cache/spotlift}/qemu and rebuilt only when an input changes.
#
# Outputs (in $OUT): vmlinuz, initramfs.cpio.gz, image.env (what went in), debs/ (downloaded packages).
# Per-VM files (host key, authorized key, name, addresses) are NOT in this image: vm.sh appends a small
# second cpio archive for each VM.
#
# Environment:
#   SPOTLIFT_CACHE            cache root (default /var/cache/spotlift)
#   SPOTLIFT_QEMU_KERNEL_PKG  kernel package (default: what Debian 12's linux-image-cloud-amd64 depends on)
#   SPOTLIFT_CRIU             CRIU binary to put in the guest (default: the lab's build, /usr/local/sbin/criu, made by ../install.sh)
#   SPOTLIFT_QEMU_FORCE=1     rebuild even if the stamp matches
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE_ROOT=${SPOTLIFT_CACHE:-/var/cache/spotlift}
OUT=$CACHE_ROOT/qemu
DEBS=$OUT/debs
log() { echo "[lab/qemu/build-image] $*" >&2; }
t_start=$(date +%s.%N)

# Kernel modules loaded by the guest's init, dependencies resolved with modprobe --show-depends.
# virtio: the NICs and the entropy source; veth, tun, macvlan, bridge: CRIU's kerndat probes create
# veth pairs (link nsid) and dump/restore of network namespaces needs them; nf_tables/nft_*:
# CRIU's nftables network lock and its kerndat nftables checks; x_tables/ip_tables: the iptables lock;
# *_diag: socket dumping (CRIU reads sockets through sock_diag); af_packet is built in;
# overlay, autofs4: only so that `criu check --all` has nothing to report (mount dumping).
MODULES=(virtio_pci virtio_net virtio_rng veth tun macvlan bridge
  nf_tables nft_compat nft_ct nf_conntrack_netlink nft_chain_nat nft_reject_inet
  ip_tables iptable_filter ip6_tables ip6table_filter xt_mark
  inet_diag tcp_diag udp_diag raw_diag unix_diag af_packet_diag netlink_diag
  overlay autofs4)

need() { command -v "$1" >/dev/null 2>&1; }
if ! need qemu-system-x86_64 || ! need cpio || ! need depmod || ! need gcc; then
  bash "$HERE/install.sh"
fi

CRIU=${SPOTLIFT_CRIU:-}
if [ -z "$CRIU" ]; then
  # the lab's own CRIU build (Debian source + scripts/lab/criu patches); a no-op when up to date
  bash "$HERE/../install.sh"
  CRIU=/usr/local/sbin/criu
fi

local_stamp() {
  { echo "modules=${MODULES[*]} kernel=${SPOTLIFT_QEMU_KERNEL_PKG:-}"
    sha256sum "$CRIU" "$HERE/workload.c" "$HERE/nowms.c" "$HERE/build-image.sh" | awk '{print $1}'; } | sha256sum | awk '{print $1}'
}
LOCAL_STAMP=$(local_stamp)
# Fast path: local inputs unchanged and the package versions were checked less than a day ago.
if [ "${SPOTLIFT_QEMU_FORCE:-0}" != 1 ] && [ -s "$OUT/initramfs.cpio.gz" ] && [ -s "$OUT/vmlinuz" ] &&
  [ "$(cat "$OUT/local-stamp" 2>/dev/null)" = "$LOCAL_STAMP" ] &&
  [ -n "$(find "$OUT/local-stamp" -mmin -1440 2>/dev/null)" ]; then
  log "up to date ($OUT; package versions checked within a day)"
  exit 0
fi

mkdir -p "$DEBS"
APT_OPTS=(-o APT::Sandbox::User=root -q)
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2; exit}'; }
candidates() { # pkg... -> "pkg version" lines, one apt-cache call
  apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/{sub(":$","",$1); p=$1} /Candidate:/{print p, $2}'
}
kernel_pkg() {
  if [ -n "${SPOTLIFT_QEMU_KERNEL_PKG:-}" ]; then echo "$SPOTLIFT_QEMU_KERNEL_PKG"; return; fi
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}

KPKG=$(kernel_pkg)
if [ -z "$KPKG" ] || [ -z "$(candidate libtommath1)" ]; then
  log "apt lists are missing or stale: apt-get update"
  apt-get update -qq || true
  KPKG=$(kernel_pkg)
fi
GUEST_PKGS=("$KPKG" busybox-static dropbear-bin libtomcrypt1 libtommath1)
declare -A VER
offline=0
while read -r p v; do VER[$p]=$v; done < <(candidates "${GUEST_PKGS[@]}")
for p in "${GUEST_PKGS[@]}"; do
  [ -n "${VER[$p]:-}" ] && [ "${VER[$p]}" != "(none)" ] || offline=1
done
if [ -z "$KPKG" ] || [ $offline = 1 ]; then
  if [ -s "$OUT/initramfs.cpio.gz" ] && [ -s "$OUT/vmlinuz" ]; then
    log "package versions unknown (offline?); keeping the cached image"
    exit 0  # (the local inputs may have changed: SPOTLIFT_QEMU_FORCE=1 with apt reachable rebuilds)
  fi
  log "cannot resolve the guest packages (${GUEST_PKGS[*]})"; exit 1
fi

stamp_input() {
  for p in "${GUEST_PKGS[@]}"; do echo "$p=${VER[$p]}"; done
  echo "modules=${MODULES[*]}"
  sha256sum "$CRIU" "$HERE/workload.c" "$HERE/nowms.c" "$HERE/build-image.sh" | awk '{print $1}'
}
STAMP=$(stamp_input | sha256sum | awk '{print $1}')
if [ "${SPOTLIFT_QEMU_FORCE:-0}" != 1 ] && [ -s "$OUT/initramfs.cpio.gz" ] && [ -s "$OUT/vmlinuz" ] &&
  [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ]; then
  log "up to date ($OUT, kernel $KPKG)"
  echo "$LOCAL_STAMP" > "$OUT/local-stamp"
  exit 0
fi

# --- download (only what is missing) ---
deb_of() { # pkg version -> cached .deb path (apt-get download encodes ':' in the epoch as %3a)
  local v=${2//:/%3a}
  echo "$DEBS/${1}_${v}_amd64.deb"
}
for p in "${GUEST_PKGS[@]}"; do
  f=$(deb_of "$p" "${VER[$p]}")
  if [ ! -s "$f" ]; then
    log "downloading $p ${VER[$p]}"
    rm -f "$DEBS/${p}"_*.deb
    (cd "$DEBS" && apt-get "${APT_OPTS[@]}" download "$p=${VER[$p]}" >/dev/null)
    [ -s "$f" ] || { log "download of $p failed"; exit 1; }
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
X=$work/x          # extracted packages
R=$work/root       # the initramfs tree
mkdir -p "$X" "$R"
for p in "${GUEST_PKGS[@]}"; do dpkg -x "$(deb_of "$p" "${VER[$p]}")" "$X"; done

KVER=$(ls "$X/lib/modules" | head -n1)
[ -n "$KVER" ] && [ -f "$X/boot/vmlinuz-$KVER" ] || { log "no kernel in $KPKG"; exit 1; }
grep -q '^CONFIG_MEM_SOFT_DIRTY=y' "$X/boot/config-$KVER" || log "WARNING: $KVER has no CONFIG_MEM_SOFT_DIRTY"
grep -q '^CONFIG_USERFAULTFD=y' "$X/boot/config-$KVER" || log "WARNING: $KVER has no CONFIG_USERFAULTFD"

# --- layout: merged /usr like Debian 12 ---
mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,proc,sys,dev,run,tmp,lab,root/.ssh,etc/dropbear,etc/lab,var/log,var/run}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
chmod 700 "$R/root" "$R/root/.ssh"; chmod 1777 "$R/tmp"

# busybox and its applets
install -m 0755 "$X/bin/busybox" "$R/usr/bin/busybox"
"$X/bin/busybox" --list-full | while read -r a; do
  a=${a#/}; a=${a#usr/}        # bin/ls, sbin/init, usr/bin/wget -> bin/ls, sbin/init, bin/wget
  [ "$a" = bin/busybox ] && continue
  [ -e "$R/usr/$a" ] || ln -s /usr/bin/busybox "$R/usr/$a"
done

# dynamically linked binaries and their libraries (resolved against the extracted packages first)
copy_with_libs() { # src dst
  install -m 0755 "$1" "$R$2"
  LD_LIBRARY_PATH="$X/usr/lib/x86_64-linux-gnu:$X/lib/x86_64-linux-gnu" ldd "$1" |
    awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | while read -r lib; do
      [ -e "$R/usr/lib/x86_64-linux-gnu/$(basename "$lib")" ] && continue
      cp -L "$lib" "$R/usr/lib/x86_64-linux-gnu/$(basename "$lib")"
    done
  if LD_LIBRARY_PATH="$X/usr/lib/x86_64-linux-gnu" ldd "$1" | grep -q 'not found'; then
    log "missing libraries for $1:"; ldd "$1" | grep 'not found' >&2; exit 1
  fi
}
copy_with_libs "$CRIU" /usr/sbin/criu
copy_with_libs "$X/usr/sbin/dropbear" /usr/sbin/dropbear
for b in dbclient dropbearkey dropbearconvert; do copy_with_libs "$X/usr/bin/$b" "/usr/bin/$b"; done
# util-linux's flock for the engine's node-side freeze lock (Debian's busybox-static has no flock applet)
copy_with_libs /usr/bin/flock /usr/bin/flock
# the dynamic loader at its ABI path (/lib64 -> usr/lib64)
cp -L /lib64/ld-linux-x86-64.so.2 "$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ln -sf ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/usr/lib64/ld-linux-x86-64.so.2"
# glibc's iconv/gconv and NSS are not needed: no locales, passwd/group are plain files.

# the workload and the clock helper, static
gcc -O2 -static -o "$R/usr/bin/workload" "$HERE/workload.c"
gcc -O2 -static -o "$R/usr/bin/nowms" "$HERE/nowms.c"
strip "$R/usr/bin/workload" "$R/usr/bin/nowms"

# kernel modules
depmod -b "$X" "$KVER"
: > "$R/etc/lab/modules"
for m in "${MODULES[@]}"; do
  modprobe -d "$X" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  rel=${ko#"$X/lib/modules/$KVER/"}
  mkdir -p "$R/usr/lib/modules/$KVER/$(dirname "$rel")"
  cp "$ko" "$R/usr/lib/modules/$KVER/$rel"
  echo "$rel" >> "$R/etc/lab/modules"
done
cp "$X/lib/modules/$KVER/modules.builtin" "$X/lib/modules/$KVER/modules.order" "$R/usr/lib/modules/$KVER/"
depmod -b "$R/usr" "$KVER" 2>/dev/null || true

# --- configuration ---
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$R/etc/group"
printf '/bin/sh\n/bin/ash\n' > "$R/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' > "$R/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$R/etc/hosts"
echo lab > "$R/etc/hostname"
cat > "$R/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
EOF
cat > "$R/etc/inittab" <<'EOF'
::sysinit:/etc/lab/rcS
::respawn:/usr/sbin/dropbear -F -E -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF
cat > "$R/etc/lab/rcS" <<'EOF'
#!/bin/sh
# lab guest init: mounts, modules, network, ssh host key. Per-VM settings come from /etc/lab/vm.conf
# (appended by vm.sh as a second cpio archive).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "lab-init: $*" > /dev/console; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755,size=90% tmpfs /lab
LAB_NAME=lab; LAB_LINK_ADDR=
[ -f /etc/lab/vm.conf ] && . /etc/lab/vm.conf
kver=$(uname -r)
failed=
while read -r m; do
  insmod "/lib/modules/$kver/$m" 2>/dev/null || grep -q "^$(basename "$m" .ko | tr - _) " /proc/modules || failed="$failed $m"
done < /etc/lab/modules
[ -n "$failed" ] && say "insmod failed:$failed"
hostname "$LAB_NAME"; echo "$LAB_NAME" > /etc/hostname
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2
if [ -n "$LAB_LINK_ADDR" ]; then ip addr add "$LAB_LINK_ADDR" dev eth1 && ip link set eth1 up; fi
if [ -f /etc/dropbear/host_ed25519.openssh ]; then
  dropbearconvert openssh dropbear /etc/dropbear/host_ed25519.openssh /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
else
  dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
fi
chmod 600 /root/.ssh/authorized_keys 2>/dev/null
# optional layers appended by vm.sh (e.g. Podman's) bring their own boot hooks
for f in /etc/lab/rc.d/*; do [ -x "$f" ] && "$f"; done
say "ready $LAB_NAME $(uname -r) mem=$(awk '/MemTotal/{print $2}' /proc/meminfo)kB"
EOF
chmod 0755 "$R/etc/lab/rcS"
ln -s /sbin/init "$R/init"
cat > "$R/etc/lab/image.env" <<EOF
KERNEL_PKG=$KPKG
KERNEL_PKG_VERSION=${VER[$KPKG]}
KERNEL_VERSION=$KVER
BUSYBOX_VERSION=${VER[busybox-static]}
DROPBEAR_VERSION=${VER[dropbear-bin]}
CRIU_VERSION=$("$CRIU" --version | sed -n 's/^Version: *//p')
CRIU_SHA256=$(sha256sum "$CRIU" | awk '{print $1}')
EOF

# --- pack ---
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 > "$work/initramfs.cpio.gz"
install -m 0644 "$X/boot/vmlinuz-$KVER" "$OUT/vmlinuz.new"
install -m 0644 "$X/boot/config-$KVER" "$OUT/config"
mv "$work/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
cp "$R/etc/lab/image.env" "$OUT/image.env"
echo "$STAMP" > "$OUT/stamp"
echo "$LOCAL_STAMP" > "$OUT/local-stamp"
t_end=$(date +%s.%N)
log "built $OUT (kernel $KVER, initramfs $(du -h "$OUT/initramfs.cpio.gz" | cut -f1)) in $(awk "BEGIN{printf \"%.1f\", $t_end-$t_start}") s"
