# A Sentinel set for redis.sh (sourced by it, not run): a master, a replica and three sentinels, all TLS only,
# so the orchestrator's Sentinel settings (sentinelTLS, enableTLSForSentinelMode, tls) meet real servers.
# shellcheck shell=bash
# Uses redis.sh's PORT, DIR, PIDFILE, TLS_DIR, SET_MARK, SENTINEL_NAME, make_tls, rcli_at, log, die.

SENTINEL_PASSWORD=sentinel-secret

set_member_dirs() { echo "$DIR" "$DIR/replica" "$DIR/sentinel-0" "$DIR/sentinel-1" "$DIR/sentinel-2"; }

# TLS only, on every listener and every outgoing link (replication, sentinel to redis and to sentinel).
tls_conf() {
  printf '%s\n' "port 0" "tls-port $1" "bind 127.0.0.1" \
    "tls-cert-file $TLS_DIR/server.pem" "tls-key-file $TLS_DIR/server.key" \
    "tls-ca-cert-file $TLS_DIR/ca.pem" "tls-auth-clients no" "tls-replication yes"
}

# A data node (master or replica; after a failover either may be either): config file so the sentinels'
# CONFIG REWRITE after a switch lands. The ACL users are those of start-tls, plus the replication link's and
# the sentinels' own, each with only the commands the Redis docs list for it.
data_conf() { # PORT DIR [replicaof-port]
  tls_conf "$1"
  printf '%s\n' "dir $2" "pidfile $2/redis.pid" "logfile $2/redis.log" "daemonize yes" 'save ""' \
    "appendonly yes" "appendfsync everysec" "maxmemory-policy noeviction" "protected-mode yes" \
    "user default off" \
    "user spotlift on >secret ~spotlift:* ~spotlift-bull:* &* +@all" \
    "user replica on >secret +psync +replconf +ping" \
    "user sentinel on >secret &* +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill" \
    "masteruser replica" "masterauth secret"
  [ -z "${3:-}" ] || echo "replicaof 127.0.0.1 $3"
}

sentinel_conf() { # PORT DIR
  tls_conf "$1"
  printf '%s\n' "dir $2" "pidfile $2/redis.pid" "logfile $2/redis.log" "daemonize yes" \
    "requirepass $SENTINEL_PASSWORD" \
    "sentinel monitor $SENTINEL_NAME 127.0.0.1 $PORT 2" \
    "sentinel auth-user $SENTINEL_NAME sentinel" "sentinel auth-pass $SENTINEL_NAME secret" \
    "sentinel down-after-milliseconds $SENTINEL_NAME 1000" \
    "sentinel failover-timeout $SENTINEL_NAME 10000" "sentinel parallel-syncs $SENTINEL_NAME 1"
}

scli() { # sentinel PORT, ARGS
  local port=$1
  shift
  REDISCLI_AUTH=$SENTINEL_PASSWORD timeout 2 redis-cli --tls --cacert "$TLS_DIR/ca.pem" -h 127.0.0.1 -p "$port" "$@"
}

start_set() {
  command -v redis-server >/dev/null || die "redis-server missing (run scripts/lab/install.sh)"
  [ "$PORT" -le 45534 ] || die "PORT must leave room for the sentinels at PORT+20000..20002"
  if [ -f "$SET_MARK" ]; then
    local up=1 d
    for d in $(set_member_dirs); do [ -n "$(pid_in "$d")" ] || up=0; done
    [ $up = 1 ] && { log "Sentinel set already running on $PORT"; return 0; }
    die "the Sentinel set on $PORT is partly down: stop it first"
  fi
  # Another instance on these ports would mix a stranger's data into the set: refuse.
  local p
  for p in "$PORT" $((PORT + 1)) $((PORT + 20000)) $((PORT + 20001)) $((PORT + 20002)); do
    ! (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || die "port $p is already in use"
  done
  rm -rf "$DIR"
  mkdir -p "$DIR/replica"
  make_tls
  touch "$SET_MARK"
  data_conf "$PORT" "$DIR" >"$DIR/redis.conf"
  data_conf $((PORT + 1)) "$DIR/replica" "$PORT" >"$DIR/replica/redis.conf"
  redis-server "$DIR/redis.conf" || die "master did not start (see $DIR/redis.log)"
  redis-server "$DIR/replica/redis.conf" || die "replica did not start (see $DIR/replica/redis.log)"
  local i
  for i in 0 1 2; do
    mkdir -p "$DIR/sentinel-$i"
    sentinel_conf $((PORT + 20000 + i)) "$DIR/sentinel-$i" >"$DIR/sentinel-$i/sentinel.conf"
    redis-server "$DIR/sentinel-$i/sentinel.conf" --sentinel || die "sentinel $i did not start"
  done
  # Ready once the replica is in sync and every sentinel knows the replica and the two other sentinels: a
  # failover from then on has a replica to promote and a quorum to agree.
  for _ in $(seq 300); do
    if [ "$(rcli_at $((PORT + 1)) info replication 2>/dev/null | tr -d '\r' | grep -c '^master_link_status:up')" = 1 ] &&
      set_sentinels_agree; then
      log "Sentinel set up: master 127.0.0.1:$PORT, replica $((PORT + 1)), sentinels $((PORT + 20000))-$((PORT + 20002)) (TLS)"
      return 0
    fi
    sleep 0.1
  done
  die "the Sentinel set on $PORT did not come up (see the logs under $DIR)"
}

set_sentinels_agree() {
  local i out
  for i in 0 1 2; do
    out=$(scli $((PORT + 20000 + i)) sentinel master "$SENTINEL_NAME" 2>/dev/null | tr -d '\r' | paste -sd' ') || return 1
    [[ " $out " == *" num-slaves 1 "* && " $out " == *" num-other-sentinels 2 "* ]] || return 1
  done
}

pid_in() { # pid of the redis-server whose pidfile is in DIR, empty if none runs
  local pid
  pid=$(cat "$1/redis.pid" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-* ]] && echo "$pid"
  return 0
}

stop_set() {
  local d pid pids=()
  for d in $(set_member_dirs); do
    pid=$(pid_in "$d")
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; pids+=("$pid"); }
  done
  for pid in "${pids[@]}"; do
    wait_gone 50 "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone 20 "$pid" || true; }
  done
  rm -rf "$DIR"
  log "Sentinel set on $PORT stopped"
}
