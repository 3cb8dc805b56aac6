#!/usr/bin/env bash
# A private Redis for tests and the demo (nothing on this machine starts one; the distro service is
# disabled by install.sh). Loopback only; run as production needs it (README "Redis in production"):
# AOF (appendonly yes, appendfsync everysec) and maxmemory-policy noeviction, so a restart keeps every
# acknowledged write. Test data must not outlive the instance: `stop` deletes it, `restart` keeps it.
#
#   redis.sh start PORT     start redis-server on 127.0.0.1:PORT (daemonized) and wait for PING;
#                           a no-op if our instance on PORT already answers
#   redis.sh stop PORT      shut it down, delete its data, and wait until it is gone
#   redis.sh restart PORT   shut it down (the AOF flushed) and start it again from its AOF
#
# Data dir, pidfile and log: <labdir>/redis/PORT/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
  sed -n '7,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || usage
PORT=$2
DIR=$LAB/redis/$PORT
PIDFILE=$DIR/redis.pid

ping() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ]; }

our_pid() { # pid of our redis on PORT, empty if not running
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] && echo "$pid"
  return 0
}

cmd_start() {
  command -v redis-server >/dev/null || die "redis-server missing (run scripts/lab/install.sh)"
  mkdir -p "$DIR"
  if [ -n "$(our_pid)" ] && ping; then
    log "already running on 127.0.0.1:$PORT"
    return 0
  fi
  # Something else on the port would make tests talk to a stranger's data: refuse.
  if ping; then die "port $PORT answers PING but is not the lab's redis ($PIDFILE)"; fi
  rm -f "$PIDFILE"
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$PIDFILE" \
    --dir "$DIR" --logfile "$DIR/redis.log" --save '' \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --protected-mode yes --databases 16 ||
    die "redis-server did not start (see $DIR/redis.log)"
  for _ in $(seq 100); do
    ping && { log "started on 127.0.0.1:$PORT (pid $(our_pid))"; return 0; }
    sleep 0.05
  done
  tail -5 "$DIR/redis.log" >&2 || true
  die "redis on port $PORT does not answer PING"
}

cmd_stop() {
  local pid
  pid=$(our_pid)
  if [ -z "$pid" ]; then
    log "not running on port $PORT"
    return 0
  fi
  redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  wait_gone 50 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone 20 "$pid" || true; }
  rm -f "$PIDFILE"
  # The instance's data ends with it (the next start is empty).
  rm -rf "$DIR/appendonlydir" "$DIR/dump.rdb"
  log "stopped on port $PORT"
}

cmd_restart() {
  local pid
  pid=$(our_pid)
  if [ -n "$pid" ]; then
    # SHUTDOWN with AOF on writes and fsyncs the AOF: every acknowledged write is in it.
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    wait_gone 100 "$pid" || die "redis on port $PORT did not shut down"
    rm -f "$PIDFILE"
  fi
  cmd_start
}

case "$1" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_restart ;;
  *) usage ;;
esac
