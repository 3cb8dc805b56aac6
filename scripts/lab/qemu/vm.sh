#!/usr/bin/env bash
# Lab VMs under qemu (TCG, no KVM) booted from the image that build-image.sh makes.
#
#   vm.sh up NAME SSHPORT [MEM_MIB]   boot NAME in the background, wait for SSH, print its node JSON
#   vm.sh down NAME                   stop NAME (and its ssh control master)
#   vm.sh ssh NAME CMD...             run CMD as root in NAME (host key pinned, lab key)
#   vm.sh node NAME                   print NAME's node JSON again
#   vm.sh list                        one line per VM that is running
#
# Networking is user-mode only: the guest is 10.0.2.15 on eth0 and its port 22 is forwarded from
# 127.0.0.1:SSHPORT; nothing leaves the machine. Optional extras, by environment, for `up`:
#   SPOTLIFT_QEMU_CPUS=1|2                     vCPUs (default 1)
#   SPOTLIFT_QEMU_LINK=listen:PORT|connect:PORT  a private VM-to-VM link (eth1): a qemu socket netdev on
#                                              127.0.0.1:PORT; the listening VM must be up first
#   SPOTLIFT_QEMU_LINK_ADDR=10.77.1.1/24       eth1's address (the node's dataAddress)
#   SPOTLIFT_QEMU_FWD="8000:8000 ..."          more forwards 127.0.0.1:HOSTPORT -> guest GUESTPORT
#   SPOTLIFT_QEMU_APPEND="..."                 extra kernel arguments (default "mitigations=off")
#   SPOTLIFT_QEMU_BOOT_TIMEOUT=180             seconds to wait for SSH
#   SPOTLIFT_QEMU_PODMAN=1                     append the Podman layer (build-podman-layer.sh): podman, runc, conmon
# Files: ${SPOTLIFT_LAB_DIR:-<repo>/.lab}/qemu/NAME/{qemu.pid,serial.log,qemu.log,node.json,known_hosts,...}
# and the lab's client key ${SPOTLIFT_LAB_DIR}/qemu/id_ed25519 (made on first use).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
LAB=${SPOTLIFT_LAB_DIR:-$REPO/.lab}/qemu
IMG=${SPOTLIFT_CACHE:-/var/cache/spotlift}/qemu
KEY=$LAB/id_ed25519
log() { echo "[lab/qemu/vm] $*" >&2; }
die() { log "$*"; exit 1; }

valid_name() { [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad VM name '$1' (a-z, 0-9, -)"; }
valid_port() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1024 ] && [ "$1" -le 65535 ] || die "bad port '$1'"; }
alive() { [ -f "$1/qemu.pid" ] && kill -0 "$(cat "$1/qemu.pid")" 2>/dev/null; }
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

ssh_opts() { # $1 = vm dir
  local d=$1 port
  port=$(cat "$d/ssh_port")
  echo -i "$KEY" -p "$port" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$d/known_hosts" -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=8 \
    -o ControlMaster=auto -o ControlPath="$d/ssh.ctl" -o ControlPersist=300
}

node_json() { # $1 = name
  local d=$LAB/$1 hk addr
  hk=$(awk '{print $1" "$2}' "$d/hostkey.pub")
  addr=$(cat "$d/data_address")
  printf '{"id":"%s","host":"127.0.0.1","port":%s,"user":"root","hostKey":"%s","dataAddress":"%s","privateKeyPath":"%s","knownHostsPath":"%s"}\n' \
    "$1" "$(cat "$d/ssh_port")" "$hk" "$addr" "$KEY" "$d/known_hosts"
}

# The client key is shared by every VM and VMs are started in parallel: make it
# in a private temp name and move it into place, so a second "up" never finds a
# half-made key or makes ssh-keygen ask whether to overwrite.
ensure_client_key() {
  [ -f "$KEY" ] && [ -f "$KEY.pub" ] && return 0
  local tmp="$KEY.tmp.$$"
  ssh-keygen -q -t ed25519 -N '' -C spotlift-lab -f "$tmp" </dev/null
  mv -f "$tmp.pub" "$KEY.pub.new.$$" && mv -f "$tmp" "$KEY.new.$$"
  if ln "$KEY.new.$$" "$KEY" 2>/dev/null; then mv -f "$KEY.pub.new.$$" "$KEY.pub"
  else # another "up" won the race: keep its key
    while [ ! -f "$KEY.pub" ]; do sleep 0.05; done
    rm -f "$KEY.pub.new.$$"
  fi
  rm -f "$KEY.new.$$"
}

cmd_up() {
  [ $# -ge 2 ] || die "usage: vm.sh up NAME SSHPORT [MEM_MIB]"
  local name=$1 port=$2 mem=${3:-1024} cpus=${SPOTLIFT_QEMU_CPUS:-1} d=$LAB/$1
  valid_name "$name"; valid_port "$port"
  [[ $mem =~ ^[0-9]+$ ]] && [ "$mem" -ge 256 ] && [ "$mem" -le 4096 ] || die "bad memory '$mem' (256..4096 MiB)"
  [[ $cpus =~ ^[12]$ ]] || die "SPOTLIFT_QEMU_CPUS must be 1 or 2"
  if alive "$d"; then
    [ "$(cat "$d/ssh_port")" = "$port" ] || die "$name is already running on port $(cat "$d/ssh_port")"
    node_json "$name"; return 0
  fi
  port_busy "$port" && die "127.0.0.1:$port is in use"
  [ -s "$IMG/vmlinuz" ] && [ -s "$IMG/initramfs.cpio.gz" ] || bash "$HERE/build-image.sh"
  mkdir -p "$d"; chmod 700 "$LAB"
  rm -f "$d"/{qemu.pid,serial.log,qemu.log,node.json,known_hosts,ssh.ctl,hostkey,hostkey.pub}
  ensure_client_key
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$d/hostkey" </dev/null
  echo "$port" > "$d/ssh_port"
  echo "[127.0.0.1]:$port $(awk '{print $1" "$2}' "$d/hostkey.pub")" > "$d/known_hosts"

  local link=${SPOTLIFT_QEMU_LINK:-} link_addr=${SPOTLIFT_QEMU_LINK_ADDR:-}
  local netargs=() fwd="hostfwd=tcp:127.0.0.1:$port-:22" f
  for f in ${SPOTLIFT_QEMU_FWD:-}; do
    [[ $f =~ ^([0-9]+):([0-9]+)$ ]] || die "bad SPOTLIFT_QEMU_FWD entry '$f'"
    fwd="$fwd,hostfwd=tcp:127.0.0.1:${BASH_REMATCH[1]}-:${BASH_REMATCH[2]}"
  done
  # distinct MACs per VM (two VMs on one link must not share the default MAC)
  local mac_base
  mac_base=$(printf '52:54:%02x:%02x' $(((port >> 8) & 255)) $((port & 255)))
  netargs+=(-netdev "user,id=n0,net=10.0.2.0/24,$fwd" -device "virtio-net-pci,netdev=n0,addr=0x3,mac=$mac_base:00:01,romfile=")
  if [ -n "$link" ]; then
    [[ $link =~ ^(listen|connect):([0-9]+)$ ]] || die "SPOTLIFT_QEMU_LINK must be listen:PORT or connect:PORT"
    local link_mode=${BASH_REMATCH[1]} link_port=${BASH_REMATCH[2]}
    [[ $link_addr =~ ^[0-9.]+/[0-9]+$ ]] || die "SPOTLIFT_QEMU_LINK_ADDR (like 10.77.1.1/24) is needed with a link"
    netargs+=(-netdev "socket,id=n1,$link_mode=127.0.0.1:$link_port"
      -device "virtio-net-pci,netdev=n1,addr=0x4,mac=$mac_base:00:02,romfile=")
    echo "${link_addr%/*}" > "$d/data_address"
    if [ "$link_mode" = connect ]; then # the listening VM's qemu must be up, or qemu fails at once
      local w=0
      until port_busy "$link_port"; do
        w=$((w + 1)); [ $w -le 300 ] || die "nothing listens on 127.0.0.1:$link_port for the link"
        sleep 0.1
      done
    fi
  else
    link_addr=
    echo 10.0.2.15 > "$d/data_address"
  fi

  # per-VM cpio appended to the image: name, addresses, host key, authorized key
  local ov=$d/overlay
  rm -rf "$ov"; mkdir -p "$ov/etc/lab" "$ov/etc/dropbear" "$ov/root/.ssh"
  chmod 700 "$ov/root" "$ov/root/.ssh"
  printf 'LAB_NAME=%s\nLAB_LINK_ADDR=%s\n' "$name" "$link_addr" > "$ov/etc/lab/vm.conf"
  install -m 600 "$d/hostkey" "$ov/etc/dropbear/host_ed25519.openssh"
  install -m 600 "$KEY.pub" "$ov/root/.ssh/authorized_keys"
  local layers=()
  if [ "${SPOTLIFT_QEMU_PODMAN:-0}" = 1 ]; then
    bash "$HERE/build-podman-layer.sh"
    layers+=("$IMG/podman.cpio.gz")
  fi
  { cat "$IMG/initramfs.cpio.gz" "${layers[@]}"; (cd "$ov" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1); } > "$d/initrd.cpio.gz"
  rm -rf "$ov"

  local t0 t1
  t0=$(date +%s%N)
  setsid qemu-system-x86_64 -name "$name" -accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" \
    -nographic -monitor none -serial "file:$d/serial.log" -no-reboot \
    -kernel "$IMG/vmlinuz" -initrd "$d/initrd.cpio.gz" \
    -append "console=ttyS0 quiet panic=1 ${SPOTLIFT_QEMU_APPEND-mitigations=off}" \
    "${netargs[@]}" -device virtio-rng-pci -pidfile "$d/qemu.pid" \
    </dev/null >"$d/qemu.log" 2>&1 &
  local qpid=$! deadline=$((SECONDS + ${SPOTLIFT_QEMU_BOOT_TIMEOUT:-180}))
  # shellcheck disable=SC2046
  until ssh $(ssh_opts "$d") root@127.0.0.1 true 2>/dev/null; do
    if ! kill -0 "$qpid" 2>/dev/null; then
      log "qemu exited:"; tail -20 "$d/qemu.log" "$d/serial.log" >&2 || true; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "no SSH after ${SPOTLIFT_QEMU_BOOT_TIMEOUT:-180}s; serial log:"; tail -30 "$d/serial.log" >&2 || true
      cmd_down "$name"; exit 1
    fi
    sleep 0.5
  done
  t1=$(date +%s%N)
  echo "$qpid" > "$d/qemu.pid"
  echo $(((t1 - t0) / 1000000)) > "$d/boot_ms"
  log "$name up in $(((t1 - t0) / 1000000)) ms (ssh 127.0.0.1:$port, ${mem} MiB, $cpus vCPU)"
  node_json "$name" | tee "$d/node.json"
}

cmd_down() {
  [ $# -ge 1 ] || die "usage: vm.sh down NAME"
  local name=$1 d=$LAB/$1 pid i
  valid_name "$name"
  if [ -S "$d/ssh.ctl" ]; then
    # shellcheck disable=SC2046
    ssh $(ssh_opts "$d") -O exit root@127.0.0.1 2>/dev/null || true
  fi
  if alive "$d"; then
    pid=$(cat "$d/qemu.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "$name down"
  fi
  rm -f "$d/qemu.pid" "$d/ssh.ctl" "$d/initrd.cpio.gz" # the initrd is remade by every `up`
}

cmd_ssh() {
  [ $# -ge 2 ] || die "usage: vm.sh ssh NAME CMD..."
  local name=$1 d=$LAB/$1; shift
  valid_name "$name"
  alive "$d" || die "$name is not running"
  # shellcheck disable=SC2046
  exec ssh $(ssh_opts "$d") root@127.0.0.1 "$@"
}

cmd_list() {
  local d
  for d in "$LAB"/*/; do
    [ -d "$d" ] || continue
    alive "$d" && echo "$(basename "$d") pid=$(cat "$d/qemu.pid") port=$(cat "$d/ssh_port")"
  done
  return 0
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  ssh) shift; cmd_ssh "$@" ;;
  node) shift; valid_name "${1:-}"; node_json "$1" ;;
  list) cmd_list ;;
  *) die "usage: vm.sh up NAME SSHPORT [MEM_MIB] | down NAME | ssh NAME CMD... | node NAME | list" ;;
esac
