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
#   redis.sh start-tls PORT as start, but TLS only (no plain port) with ACL users and `default` off:
#                           `spotlift` (password `secret`; keys spotlift:* and spotlift-bull:*, every command) and
#                           `narrow` (password `secret`; INFO and CONFIG refused); CA in <dir>/tls/ca.pem
#   redis.sh start-sentinel-tls PORT
#                           a Sentinel set, all TLS only: master PORT, replica PORT+1 (`tls-replication`),
#                           sentinels PORT+20000..20002 (quorum 2, master name `spotlift-lab`, password
#                           `sentinel-secret`, down after 1 s); users as start-tls, and `replica` / `sentinel`
#                           with only their commands; `stop PORT` stops all five (whichever is master now)
#
# Data dir, pidfile and log: <labdir>/redis/PORT/ (TLS: a throwaway CA and server cert in its tls/; a Sentinel
# set's replica and sentinels in its replica/ and sentinel-N/).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
  sed -n '7,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[ $# -eq 2 ] && [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || usage
PORT=$2
DIR=$LAB/redis/$PORT
PIDFILE=$DIR/redis.pid

TLS_DIR=$DIR/tls
SET_MARK=$DIR/sentinel-set
SENTINEL_NAME=spotlift-lab
# A TLS instance is recognised by its CA, so stop/restart/ping talk TLS (and as `spotlift`) to it.
rcli_at() {
  local port=$1
  shift
  if [ -f "$TLS_DIR/ca.pem" ]; then
    REDISCLI_AUTH=secret timeout 2 redis-cli --tls --cacert "$TLS_DIR/ca.pem" --user spotlift -h 127.0.0.1 -p "$port" "$@"
  else
    timeout 2 redis-cli -h 127.0.0.1 -p "$port" "$@"
  fi
}
rcli() { rcli_at "$PORT" "$@"; }
ping() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }

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
  [ -f "$SET_MARK" ] && die "port $PORT held a Sentinel set that is partly down: stop it first"
  rm -f "$PIDFILE"
  local listen=(--port "$PORT")
  if [ "${1:-}" = tls ]; then
    [ -f "$TLS_DIR/server.pem" ] || make_tls # kept by `restart`: clients hold this CA
    listen=(--port 0 --tls-port "$PORT" --tls-cert-file "$TLS_DIR/server.pem" --tls-key-file "$TLS_DIR/server.key"
      --tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients no
      --user default off --user spotlift on '>secret' '~spotlift:*' '~spotlift-bull:*' '&*' '+@all'
      --user narrow on '>secret' '~spotlift:*' '~spotlift-bull:*' '&*' '+@all' '-info' '-config')
  else
    rm -rf "$TLS_DIR"
  fi
  redis-server --bind 127.0.0.1 "${listen[@]}" --daemonize yes --pidfile "$PIDFILE" \
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

# A CA and a server certificate for 127.0.0.1 and localhost (EC P-256, valid 7 days); `stop` deletes them.
make_tls() {
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
      -keyout ca.key -out ca.pem -subj /CN=spotlift-lab-redis-ca
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj /CN=127.0.0.1
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -out server.pem \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  ) >/dev/null 2>&1 || die "could not make the TLS certificates in $TLS_DIR"
}

cmd_stop() {
  [ -f "$SET_MARK" ] && { stop_set; return 0; }
  local pid
  pid=$(our_pid)
  if [ -z "$pid" ]; then
    log "not running on port $PORT"
    return 0
  fi
  rcli shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  wait_gone 50 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone 20 "$pid" || true; }
  rm -f "$PIDFILE"
  # The instance's data ends with it (the next start is empty).
  rm -rf "$DIR/appendonlydir" "$DIR/dump.rdb" "$TLS_DIR"
  log "stopped on port $PORT"
}

cmd_restart() {
  [ -f "$SET_MARK" ] && die "port $PORT runs a Sentinel set: stop it and start it again"
  local pid
  pid=$(our_pid)
  if [ -n "$pid" ]; then
    # SHUTDOWN with AOF on writes and fsyncs the AOF: every acknowledged write is in it.
    rcli shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    wait_gone 100 "$pid" || die "redis on port $PORT did not shut down"
    rm -f "$PIDFILE"
  fi
  if [ -f "$TLS_DIR/ca.pem" ]; then cmd_start tls; else cmd_start; fi
}

source "$LAB_SCRIPTS/redis-sentinel.sh"

case "$1" in
  start) cmd_start ;;
  start-tls) cmd_start tls ;;
  start-sentinel-tls) start_set ;;
  stop) cmd_stop ;;
  restart) cmd_restart ;;
  *) usage ;;
esac
