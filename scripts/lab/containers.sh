# Podman in the lab (sourced by nodes.sh and install.sh, after lib.sh). See /work/shared/LAB.md, "Containers".
# shellcheck shell=bash
#
# Every node runs Debian's podman with runc and the lab's CRIU, configured by one containers.conf that
# the nodes' sshd sessions get as CONTAINERS_CONF. Each node has its own container storage and run
# directories, bound over the standard paths inside the node's mount namespace: the SAME paths on every
# node, as on real nodes (a container restored from another node's export keeps the source's paths in its
# config; per-node --root/--runroot paths break that restore). Two nodes share no image and no container.
#   /var/lib/containers  <- <labdir>/nodes/NODE/containers        (images, containers, podman's database)
#   /run/containers      <- /run/spotlift/nodes/NODE/containers    (tmpfs, like /run: gone after a reboot,
#   /run/libpod          <- /run/spotlift/nodes/NODE/libpod         which is how podman notices one)
#   /run/runc            <- /run/spotlift/nodes/NODE/runc           (runc's container states)

LAB_CONTAINERS_CONF=/etc/spotlift/containers.conf
LAB_IMAGE=localhost/spotlift-heartbeat:lab
# The node that gets the lab image at `nodes.sh up`; the others lack it, so a first migration must send it.
LAB_IMAGE_NODE=node-a

# containers.conf for the nodes: no default rlimits (setting them needs CAP_SYS_RESOURCE, which root
# lacks here), runc (Debian's crun fails on this host's hybrid cgroups and has no checkpoint support),
# cgroupfs and a file event log (no systemd as pid 1, no journald).
containers_conf_text() {
  cat <<'CONF'
# Written by scripts/lab/install.sh for the lab nodes (CONTAINERS_CONF in their sshd sessions).
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
}

# Node $1's run-time container state on the host (tmpfs); removed when the node goes down.
node_run_dir() { echo "/run/spotlift/nodes/$1"; }

# "host-path node-path" of each per-node container directory, one a line.
node_container_dirs() {
  echo "$LAB/nodes/$1/containers /var/lib/containers"
  echo "$(node_run_dir "$1")/containers /run/containers"
  echo "$(node_run_dir "$1")/libpod /run/libpod"
  echo "$(node_run_dir "$1")/runc /run/runc"
}

# Are node $1's container directories bound at the standard paths in its mount namespace?
node_containers_ok() {
  local src dst want got
  while read -r src dst; do
    want=$(stat -c %d:%i "$src" 2>/dev/null) || return 1
    got=$(nsenter --mount="$(mntns_path "$1")" stat -c %d:%i "$dst" 2>/dev/null) || return 1
    [ "$want" = "$got" ] || return 1
  done < <(node_container_dirs "$1")
}

# Binds node $1's container directories into its existing mount namespace (its sshd and workloads see
# them at once: they live in that namespace). Idempotent; a stale bind (another lab dir's) is replaced.
ensure_node_containers() {
  local node=$1 src dst handle
  handle=$(mntns_path "$node")
  while read -r src dst; do
    mkdir -p "$src" "$dst" # $dst on the host: the node's namespace is a copy of the host's mounts
    if [ "$(stat -c %d:%i "$src")" != "$(nsenter --mount="$handle" stat -c %d:%i "$dst" 2>/dev/null)" ]; then
      nsenter --mount="$handle" umount "$dst" 2>/dev/null || true
      nsenter --mount="$handle" mount --bind "$src" "$dst"
    fi
  done < <(node_container_dirs "$node")
  node_containers_ok "$node" || die "$node: could not bind its container directories"
}

# podman in node $1's namespaces with the lab's configuration.
node_podman() {
  local node=$1
  shift
  in_node "$node" env CONTAINERS_CONF="$LAB_CONTAINERS_CONF" podman "$@"
}

# The lab image's root file system: busybox-static (a shell and its applets) and /bin/heartbeat, built
# with no registry. Cached by content under <labdir>/podman/, so an unchanged lab does no work.
lab_image_tar() {
  local src=$LAB_SCRIPTS/podman/heartbeat.c id out work
  id=$( (cat "$src"; dpkg-query -W -f='${Version}' busybox-static) | sha256sum | cut -c1-12)
  out=$LAB/podman/heartbeat-rootfs-$id.tar
  if [ ! -s "$out" ]; then
    command -v gcc >/dev/null && [ -x /bin/busybox ] || die "missing gcc or busybox-static (run scripts/lab/install.sh)"
    mkdir -p "$LAB/podman"
    work=$(mktemp -d)
    mkdir -p "$work/root/bin" "$work/root/tmp" "$work/root/proc" "$work/root/sys" "$work/root/dev" "$work/root/etc"
    gcc -static -O2 -Wall -Wextra -Werror -o "$work/root/bin/heartbeat" "$src" || { rm -rf "$work"; die "heartbeat.c does not build"; }
    install -m 0755 /bin/busybox "$work/root/bin/busybox"
    local a
    for a in sh cat echo ls ps sleep kill mkdir rm grep head tail wc; do ln -s busybox "$work/root/bin/$a"; done
    chmod 1777 "$work/root/tmp"
    tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$work/root" -cf "$out.tmp" .
    rm -rf "$work"
    mv -f "$out.tmp" "$out"
  fi
  echo "$out"
}

# Makes sure node $1 has the current lab image (podman import of the cached root file system, ~0.3 s;
# the image's label names the root file system it came from, so a changed heartbeat.c is re-imported).
ensure_lab_image() {
  local node=$1 tar have
  tar=$(lab_image_tar)
  have=$(node_podman "$node" image inspect --format '{{index .Labels "spotlift.rootfs"}}' "$LAB_IMAGE" 2>/dev/null || true)
  [ "$have" = "$(basename "$tar")" ] && return 0
  node_podman "$node" import -q --change 'ENTRYPOINT ["/bin/heartbeat"]' --change 'WORKDIR /' \
    --change "LABEL spotlift.rootfs=$(basename "$tar")" "$tar" "$LAB_IMAGE" >/dev/null ||
    die "$node: podman import of $tar failed"
  log "$node: lab image $LAB_IMAGE imported"
}
