#!/usr/bin/env bash
# Command one: the whole of spotlift on this machine, for real.
#   bash scripts/demo.sh          install what is missing, bring up the lab (Redis, three sshd nodes in
#                                 network namespaces), start the orchestrator, start a demo workload on
#                                 node-a and migrate it to node-b through the REST API (via the CLI).
#                                 The orchestrator keeps running afterwards for you to try more.
#   bash scripts/demo.sh stop     stop the orchestrator, the demo workload, Redis and the lab nodes.
# Run as root on Debian 12 (CRIU needs root). State lives in .lab/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LAB=${SPOTLIFT_LAB_DIR:-$ROOT/.lab}
PORT=${SPOTLIFT_DEMO_PORT:-8080}
REDIS_PORT=${SPOTLIFT_DEMO_REDIS_PORT:-16379}
HB_PORT=40000
mkdir -p "$LAB/demo"

stop() {
  for f in orchestrator heartbeats; do
    pid=$(cat "$LAB/demo/$f.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -f "$LAB/demo/$f.pid"
  done
  bash scripts/lab/redis.sh stop "$REDIS_PORT" || true
  bash scripts/lab/nodes.sh down   # also ends workloads and CRIU processes in the node namespaces
  echo "spotlift demo stopped."
}
if [ "${1:-}" = stop ]; then stop; exit 0; fi

need_node() {
  command -v node >/dev/null || { echo "Node.js >= 20.19 is required (not found)" >&2; exit 1; }
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || { echo "Node.js >= 20.19 is required (found $(node --version))" >&2; exit 1; }
}
need_node
bash scripts/lab/install.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
bash scripts/lab/nodes.sh up 3 >/dev/null
bash scripts/lab/redis.sh start "$REDIS_PORT" >/dev/null

TOKEN_FILE=$LAB/demo/api-token
[ -s "$TOKEN_FILE" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TOKEN_FILE")
export SPOTLIFT_API_TOKEN=$(cat "$TOKEN_FILE")
export SPOTLIFT_URL=http://127.0.0.1:$PORT
cli() { node dist/apps/cli/src/main.js "$@"; }

# A tiny collector for the workload's UDP heartbeats on the lab bridge, so you can see it continue.
if ! kill -0 "$(cat "$LAB/demo/heartbeats.pid" 2>/dev/null)" 2>/dev/null; then
  python3 -u - "$HB_PORT" "$LAB/demo/heartbeats.log" <<'PY' >/dev/null 2>&1 &
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.77.0.1", int(sys.argv[1])))
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        data, addr = s.recvfrom(65535)
        hb = json.loads(data)
        log.write(f"{addr[0]} seq={hb['seq']} counter={hb['counter']} ok={hb['ok']} pid={hb['pid']}\n")
PY
  echo $! > "$LAB/demo/heartbeats.pid"
fi

if ! curl -sf "$SPOTLIFT_URL/health/ready" >/dev/null 2>&1; then
  # A restart keeps what the previous run logged (why it stopped is often in its last lines): the old log is
  # rotated to orchestrator.log.1 (five kept) and the new one appended to.
  log=$LAB/demo/orchestrator.log
  if [ -s "$log" ]; then
    for i in 4 3 2 1; do if [ -f "$log.$i" ]; then mv -f "$log.$i" "$log.$((i + 1))"; fi; done
    mv -f "$log" "$log.1"
  fi
  # The lab's sshds read one shared authorized_keys: the ssh transport's one-time node-to-node keys go there.
  SPOTLIFT_CONFIG=$LAB/nodes.json REDIS_URL=redis://127.0.0.1:$REDIS_PORT PORT=$PORT SPOTLIFT_LOG_FORMAT=json \
    SPOTLIFT_SSH_TUNNEL_AUTHORIZED_KEYS=$LAB/ssh/authorized_keys \
    setsid nohup node dist/apps/orchestrator/src/main.js >>"$log" 2>&1 </dev/null &
  echo $! > "$LAB/demo/orchestrator.pid"
  for _ in $(seq 100); do curl -sf "$SPOTLIFT_URL/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -sf "$SPOTLIFT_URL/health/ready" >/dev/null || { tail -30 "$LAB/demo/orchestrator.log"; exit 1; }
fi
sleep 1 # the config's nodes are probed at boot
echo "== nodes"
cli nodes list

echo "== starting a 256 MiB demo workload on node-a"
NAME=demo-$(date +%s)
PID=$(bash scripts/lab/workload.sh start node-a "$NAME" --mem-mib 256 --udp "10.77.0.1:$HB_PORT")
sleep 2
WL=$(cli --json workloads add --name "$NAME" --node node-a --pid "$PID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cli workloads list
echo "last heartbeat: $(tail -n 1 "$LAB/demo/heartbeats.log")"

echo "== migrating $WL to node-b through the REST API"
cli migrate "$WL" --to node-b
sleep 1
echo "last heartbeat: $(tail -n 1 "$LAB/demo/heartbeats.log")   (10.77.0.3 is node-b)"

cat <<TXT

The orchestrator is still running at $SPOTLIFT_URL (OpenAPI: $SPOTLIFT_URL/docs/openapi.json and /metrics, both with the bearer token).
Try more:
  export SPOTLIFT_URL=$SPOTLIFT_URL SPOTLIFT_API_TOKEN=\$(cat $TOKEN_FILE)
  npx spotlift migrate $WL                               # back, destination chosen by spotlift (npm install -g . for a plain 'spotlift')
  npx spotlift migrations ls
  tail -f $LAB/demo/heartbeats.log                       # the workload's heartbeats
Logs: $LAB/demo/orchestrator.log (earlier runs: .1 to .5).   Stop everything: bash scripts/demo.sh stop
TXT
