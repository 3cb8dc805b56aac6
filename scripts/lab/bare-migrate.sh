#!/usr/bin/env bash
# Stop-and-copy migration with bare CRIU commands: the benchmark baseline spotlift is measured
# against. No SSH, no orchestrator: every command runs directly in the nodes' network namespaces.
#
#   bare-migrate.sh SRC DST PID [--json] [--keep-images]
#       SRC, DST   node-a, node-b, ... (or a, b, or 10.77.0.2 ...)
#       PID        host pid of the tree root (as printed by workload.sh start)
#       --json     print only the result JSON on stdout (else a summary, then the JSON)
#       --keep-images  keep the page images (removed on success otherwise; logs and stats stay)
#
# Sequence (the same one the engine runs over SSH):
#   1. criu page-server --daemon in DST's namespace on DST's address (pages stream straight there)
#   2. criu dump --leave-stopped --page-server in SRC's namespace (source frozen, not killed)
#   3. copy the remaining image files (plain cp: both "nodes" share this filesystem)
#   4. criu restore --restore-detached in DST's namespace
#   5. the restored pid is alive in DST's namespace -> kill the frozen source (the commit point);
#      otherwise resume the source with SIGCONT to every task of its tree.
# Result JSON: {"downtimeMs","dumpMs","copyMs","restoreMs","restoredPid", ...} where downtime is
# restore end - the moment CRIU seized the tree (dump start + the "Seized task" timestamp of CRIU's
# own log, so CRIU's start-up is not counted), plus CRIU's stats (stats-dump, stats-restore).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
  sed -n '5,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

JSON_ONLY=0
KEEP=0
args=()
for a in "$@"; do
  case "$a" in
    --json) JSON_ONLY=1 ;;
    --keep-images) KEEP=1 ;;
    -h | --help) usage ;;
    -*) die "unknown option $a" ;;
    *) args+=("$a") ;;
  esac
done
[ ${#args[@]} -eq 3 ] || usage
SRC=$(resolve_node "${args[0]}")
DST=$(resolve_node "${args[1]}")
PID=${args[2]}
[[ $PID =~ ^[0-9]+$ ]] || die "PID must be a number"
[ "$SRC" != "$DST" ] || die "SRC and DST are the same node"
[ -x "$CRIU" ] || die "criu not found (run scripts/lab/install.sh)"
alive "$PID" || die "pid $PID is not running"
[ "$(stat -L -c %i "/proc/$PID/ns/net")" = "$(stat -L -c %i "$(netns_path "$SRC")")" ] ||
  die "pid $PID does not live in $SRC's network namespace"

DST_ADDR=$(node_addr "$(node_index "$DST")")
# Image dirs: under the lab dir by default; SPOTLIFT_IMAGES_DIR moves them (e.g. to a tmpfs, to take
# the disk out of the figures). Name is unique per run: concurrent migrations do not share dirs.
RUN=${SPOTLIFT_IMAGES_DIR:-$LAB/migrations}/$(date +%Y%m%d-%H%M%S)-$PID-$SRC-$DST-$RANDOM
SRCDIR=$RUN/src
DSTDIR=$RUN/dst
mkdir -p "$SRCDIR" "$DSTDIR"
ms() { echo $((($2 - $1) / 1000000)); } # ns timestamps -> whole ms

say() { [ $JSON_ONLY = 1 ] || echo "$*"; }

fail() { # $1 = message; prints an error JSON on stdout and exits 1
  log "error: $1 (logs in $RUN)"
  printf '{"error":"%s","imagesDir":"%s"}\n' "${1//\"/\'}" "$RUN"
  exit 1
}

resume_source() {
  local p
  # CRIU leaves every task of the tree stopped; wake each one (the root alone is not enough).
  for p in $(tree_pids "$PID"); do kill -CONT "$p" 2>/dev/null || true; done
  log "source $PID resumed"
}

stop_page_server() {
  local p
  p=$(cat "$RUN/page-server.pid" 2>/dev/null) || return 0
  alive "$p" && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = criu ] && kill "$p" 2>/dev/null || true
}

# 1. Page server. Each namespace has its own ports; pick one at random and retry on a clash so
#    concurrent migrations to the same node do not collide.
PORT=
for _ in 1 2 3 4 5; do
  p=$((20000 + RANDOM % 10000))
  # --daemon returns once the server listens, so the dump below can connect right away.
  if in_node "$DST" "$CRIU" page-server --daemon -D "$DSTDIR" --address "$DST_ADDR" --port "$p" \
    --pidfile "$RUN/page-server.pid" -o page-server.log -v4 >/dev/null 2>>"$RUN/page-server.stderr"; then
    PORT=$p
    break
  fi
done
[ -n "$PORT" ] || fail "criu page-server did not start on $DST ($DSTDIR/page-server.log)"

# 2. Dump, pages streamed to DST; the source tree stays frozen.
t0=$(now_ns)
if ! in_node "$SRC" "$CRIU" dump -t "$PID" --leave-stopped --page-server --address "$DST_ADDR" --port "$PORT" \
  -D "$SRCDIR" -o dump.log -v4 >/dev/null 2>>"$RUN/dump.stderr"; then
  stop_page_server
  # A failed dump normally lets the tree run on; make sure nothing stays stopped.
  resume_source
  fail "criu dump failed ($SRCDIR/dump.log)"
fi
t1=$(now_ns)

# 3. The image files the page server did not receive (everything but pages and pagemaps).
for f in "$SRCDIR"/*; do
  case "$(basename "$f")" in dump.log) continue ;; esac
  [ -e "$DSTDIR/$(basename "$f")" ] || cp -a "$f" "$DSTDIR/"
done
t2=$(now_ns)

# 4. Restore in DST's namespace; -d returns once the tree runs.
RESTORED=
if in_node "$DST" "$CRIU" restore -D "$DSTDIR" --restore-detached --pidfile "$RUN/restored.pid" \
  -o restore.log -v4 >/dev/null 2>>"$RUN/restore.stderr"; then
  RESTORED=$(cat "$RUN/restored.pid" 2>/dev/null || true)
fi
t3=$(now_ns)
stop_page_server

# 5. Commit point: the restored tree runs in DST's namespace. Only then does the source go.
if [[ ! $RESTORED =~ ^[0-9]+$ ]] || ! alive "$RESTORED" ||
  [ "$(stat -L -c %i "/proc/$RESTORED/ns/net")" != "$(stat -L -c %i "$(netns_path "$DST")")" ]; then
  [[ $RESTORED =~ ^[0-9]+$ ]] && kill -KILL "$RESTORED" 2>/dev/null || true
  resume_source
  fail "restore on $DST failed ($DSTDIR/restore.log)"
fi
src_pids=$(tree_pids "$PID")
# shellcheck disable=SC2086
kill -KILL $src_pids 2>/dev/null || true
# shellcheck disable=SC2086
wait_gone 50 $src_pids || log "warning: source pids still present: $src_pids"
t4=$(now_ns)

# Figures. CRIU's log timestamps are seconds since it started logging; the first "Seized task"
# line is when the tree stopped running.
seized_us=$(sed -n 's/^(\([0-9]*\)\.\([0-9]*\)) Seized task.*/\1\2/p' "$SRCDIR/dump.log" | head -n1)
stats=$("$PYTHON" "$LAB_SCRIPTS/criu_stats.py" "$SRCDIR" "$DSTDIR" 2>/dev/null || echo '{}')
if [ -n "$seized_us" ]; then
  freeze_start=$((t0 + 10#$seized_us * 1000))
else # no log line: fall back to dump start + CRIU's freezing time
  freezing_us=$("$PYTHON" -c 'import json,sys; print(int(json.loads(sys.argv[1]).get("freezingMs",0)*1000))' "$stats")
  freeze_start=$((t0 + freezing_us * 1000))
fi
downtime=$(ms "$freeze_start" "$t3")
[ "$downtime" -ge 0 ] || downtime=$(ms "$t0" "$t3")
if [ $KEEP = 0 ]; then rm -f "$SRCDIR"/pages-*.img "$DSTDIR"/pages-*.img; fi

json=$(printf '{"downtimeMs":%d,"dumpMs":%d,"copyMs":%d,"restoreMs":%d,"restoredPid":%d,"sourcePid":%d,"src":"%s","dst":"%s","dumpStartToRestoreEndMs":%d,"totalMs":%d,"pageServerPort":%d,"imagesDir":"%s","criu":%s}' \
  "$downtime" "$(ms "$t0" "$t1")" "$(ms "$t1" "$t2")" "$(ms "$t2" "$t3")" "$RESTORED" "$PID" "$SRC" "$DST" \
  "$(ms "$t0" "$t3")" "$(ms "$t0" "$t4")" "$PORT" "$RUN" "$stats")
say "migrated $PID from $SRC to $DST: restored pid $RESTORED, downtime ${downtime} ms" \
  "(dump $(ms "$t0" "$t1") ms, copy $(ms "$t1" "$t2") ms, restore $(ms "$t2" "$t3") ms)"
echo "$json"
