#!/usr/bin/env bash
# Start or stop a lab workload (scripts/lab/workload.py).
#
#   workload.sh start NODE NAME [workload.py args...]   prints the host pid to dump
#       e.g. workload.sh start node-a demo --mem-mib 64 --udp 10.77.0.1:40000
#   workload.sh stop PID                                  kill the whole tree (also a frozen one)
#
# The workload runs in NODE's network and mount namespaces as the init of its own pid namespace, in its own
# session: source and destination share one kernel here, so a restored tree must not need the pids
# the frozen original still holds, and CRIU refuses a session leader outside the pid namespace.
#   setsid nsenter --net=/run/netns/spl-NODE --mount=/run/spotlift/mntns/spl-NODE \
#     unshare -p -f setsid python3 workload.py ...
# The printed pid is the child of unshare (pid 1 inside the namespace): that is what `criu dump -t`
# takes. Its stdio goes to a file under the lab dir, never to the caller's pipes (CRIU cannot restore
# pipes to a process that is gone, and a caller like execFile would wait for them to close).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

cmd_start() {
  [ $# -ge 2 ] || usage
  local node name launcher child pid_file
  node=$(resolve_node "$1")
  name=$2
  shift 2
  [[ $name =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "NAME must be 1-64 of [A-Za-z0-9._-]"
  [ -x "$PYTHON" ] || die "missing $PYTHON (run scripts/lab/install.sh)"
  local dir=$LAB/workloads
  mkdir -p "$dir"
  local extra=()
  # Default diagnostics file, unless the caller chose one.
  case " $* " in *" --log "* | *" --log="*) ;; *) extra=(--log "$dir/$name.log") ;; esac

  # cd /: the restored process gets the same cwd back, so give it one that always exists.
  # The outer setsid puts unshare in a session of its own, away from the caller's process group
  # (a test runner killing its group must not take the workload's parent along). It does not fork
  # here (a background job is no group leader), so $! is unshare's pid.
  node_nsenter "$node"
  # stdio is opened inside the node's mount namespace (by the inner sh): a file opened in the
  # host's would sit on a mount CRIU cannot find in the node's ("Can't lookup mount").
  (cd / && exec setsid "${NSENTER[@]}" /bin/sh -c 'log=$1; shift; exec "$@" </dev/null >>"$log" 2>&1' sh \
    "$dir/$name.stdio.log" unshare --pid --fork setsid "$PYTHON" "$LAB_SCRIPTS/workload.py" --name "$name" "${extra[@]}" "$@" \
    </dev/null >/dev/null 2>&1) &
  launcher=$!

  # Wait for unshare's child to have become python running workload.py.
  child=
  for _ in $(seq 100); do
    child=$(cat /proc/"$launcher"/task/*/children 2>/dev/null | awk '{print $1}')
    if [ -n "$child" ] && tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null | grep -q "workload.py"; then
      break
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      tail -20 "$dir/$name.stdio.log" >&2 || true
      die "workload $name exited at once (see $dir/$name.stdio.log)"
    fi
    child=
    sleep 0.05
  done
  [ -n "$child" ] || die "workload $name did not start"
  # Give it a moment to fail on bad arguments (argparse exits before any heartbeat).
  sleep 0.2
  alive "$child" || { tail -20 "$dir/$name.stdio.log" >&2 || true; die "workload $name exited (see $dir/$name.stdio.log)"; }
  pid_file=$dir/$name.pid
  echo "$child" >"$pid_file"
  log "$name on $node: pid $child (log $dir/$name.log)"
  echo "$child"
}

cmd_stop() {
  [ $# -eq 1 ] && [[ $1 =~ ^[0-9]+$ ]] || usage
  local pid=$1 pids
  alive "$pid" || { log "pid $pid is not running"; return 0; }
  pids=$(tree_pids "$pid")
  # SIGKILL works on stopped (frozen) tasks too; killing a pid namespace's init kills the rest.
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  # shellcheck disable=SC2086
  wait_gone 50 $pids || die "pids still alive after SIGKILL: $pids"
  log "stopped $pid"
}

case "${1:-}" in
  start) shift && cmd_start "$@" ;;
  stop) shift && cmd_stop "$@" ;;
  *) usage ;;
esac
