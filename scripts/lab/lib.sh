# Shared by the lab scripts (sourced, not run). Names, addresses and small helpers in one place.
# shellcheck shell=bash

LAB_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_SCRIPTS/../.." && pwd)
LAB=${SPOTLIFT_LAB_DIR:-$REPO/.lab}
# Never a relative lab dir: paths end up in nodes.json, sshd configs and CRIU images.
case "$LAB" in /*) ;; *) LAB=$(pwd)/$LAB ;; esac

BRIDGE=spl0
SUBNET_PREFIX=10.77.0
HOST_ADDR=$SUBNET_PREFIX.1
MAX_NODES=20
# Network namespaces and the bridge are global to the machine, so the lock is too (not per lab dir).
LOCK_FILE=/run/lock/spotlift-lab.lock

# Debian's python, not whatever `python3` a login shell finds (pyenv shims and such differ between
# the host and an sshd session, and CRIU restores the exact binary it dumped).
PYTHON=${SPOTLIFT_PYTHON:-/usr/bin/python3}
CRIU=${SPOTLIFT_CRIU:-$(command -v criu 2>/dev/null || echo /usr/local/sbin/criu)}

log() { echo "[lab/$(basename "$0" .sh)] $*" >&2; }
die() { log "error: $*"; exit 1; }

now_ns() { date +%s%N; }

# node index (0-based) <-> name and address: node-a is 10.77.0.2, node-b 10.77.0.3, ...
node_name() { printf 'node-%b' "\\x$(printf '%x' $((97 + $1)))"; }
node_index() { # node-a -> 0; fails for anything else
  [[ $1 =~ ^node-([a-t])$ ]] || return 1
  printf '%d' $(($(printf '%d' "'${BASH_REMATCH[1]}") - 97))
}
node_addr() { echo "$SUBNET_PREFIX.$(($1 + 2))"; }
netns_of() { echo "spl-$1"; }           # node-a -> spl-node-a
netns_path() { echo "/run/netns/spl-$1"; }
veth_of() { echo "splv-${1#node-}"; }   # host end of node-a's veth pair: splv-a

# Each node also has a mount namespace of its own, kept alive by a bind mount of its nsfs file, so
# that /srv/data is private per node (real nodes do not share a file system). Its mounts are
# private (no propagation from or to the host): CRIU refuses mounts whose shared peers it cannot
# reach ("has unreachable sharing"), which is what `ip netns exec`'s slave mounts run into.
MNTNS_DIR=/run/spotlift/mntns
NODE_DATA=/srv/data
mntns_path() { echo "$MNTNS_DIR/spl-$1"; }
# Is the node's mount namespace handle there (an nsfs bind mount, not a plain file left behind)?
mntns_ok() { [ "$(stat -f -c %T "$(mntns_path "$1")" 2>/dev/null)" = nsfs ]; }

# Run a command in a node's namespaces (network, and mount once the node has one). Not
# `ip netns exec`: that unshares a mount namespace per command (see above). Workloads, sshd and
# CRIU must all share the node's one mount namespace: CRIU dumps a task whose mount namespace is
# its own without having to dump the mounts themselves.
in_node() {
  local node=$1
  shift
  node_nsenter "$node"
  "${NSENTER[@]}" "$@"
}
# Sets NSENTER to the nsenter command line for node $1 (for callers that must exec it themselves).
node_nsenter() {
  NSENTER=(nsenter --net="$(netns_path "$1")")
  if mntns_ok "$1"; then NSENTER+=(--mount="$(mntns_path "$1")"); fi
}

# Resolve NODE given as node-a, a, or 10.77.0.2 to node-a (validated).
resolve_node() {
  local n=$1
  case "$n" in
    node-*) ;;
    [a-t]) n=node-$n ;;
    "$SUBNET_PREFIX".*) n=$(node_name $((${n##*.} - 2))) ;;
  esac
  node_index "$n" >/dev/null || die "unknown node '$1' (expected node-a, node-b, ...)"
  [ -e "$(netns_path "$n")" ] || die "node $n is not up (no $(netns_path "$n")); run scripts/lab/nodes.sh up"
  echo "$n"
}

# All pids of a process tree, root first (children via /proc/PID/task/*/children).
tree_pids() {
  local queue=("$1") out=() p t c
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    [ -d "/proc/$p" ] || continue
    out+=("$p")
    for t in /proc/"$p"/task/*/children; do
      for c in $(cat "$t" 2>/dev/null); do queue+=("$c"); done
    done
  done
  echo "${out[@]}"
}

# A pid counts as alive unless it is gone or a zombie (restored trees are re-parented to the
# machine's pid 1, which may be slow to reap).
alive() {
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Wait until every given pid is gone (or a zombie); $1 = timeout in tenths of a second.
wait_gone() {
  local tenths=$1 p i # i is local: callers loop over their own i
  shift
  for ((i = 0; i < tenths; i++)); do
    local any=0
    for p in "$@"; do alive "$p" && any=1; done
    [ $any = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
