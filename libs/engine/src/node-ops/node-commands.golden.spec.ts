/**
 * Golden table of the node-operations layer: every command builder, called with typical arguments, and the
 * exact text a node receives. The engine's and apps' specs check behaviour (through ScriptedNodeShell replays
 * or FakeNodeOps); this table is where a change to what runs on a node shows, line by line, in review.
 * A deliberate change updates the string here.
 */
import { cpuSampleCommand } from './cpu-sample.js';
import * as files from './file-sync-commands.js';
import * as sh from './node-scripts.js';
import {
  armed,
  authorizeTunnelKeyCommand,
  directReceive,
  directSend,
  directStreamProbe,
  installNodeTlsCommand,
  readNodeTlsCommand,
  receiveStream,
  removeTunnelKeyDirCommand,
  revokeTunnelKeyCommand,
  tarCommand,
  tunnelCommand,
  tunnelKeyCommand,
  UNPACK_TAR,
} from '@spotlift/node-commands';
import { identityLines } from './identity-script.js';
import * as images from './process/image-store-commands.js';
import * as pc from './podman/podman-commands.js';
import * as criu from './process/criu-commands.js';
import * as live from './process/live-commands.js';
import * as sweep from './sweep-commands.js';

const to = { address: '10.0.0.2', port: 27100 };
const tls = { cacert: '/t/ca.pem', cert: '/t/node.pem', key: '/t/node.key' };

const GOLDEN: Array<[string, () => string, string]> = [
  [
    'criu checkAndMemory',
    () => criu.checkAndMemory(),
    'criu check 2>&1 | tail -n 3; awk \'/^MemAvailable:/{print "MEM_AVAILABLE_KB", $2}\' /proc/meminfo',
  ],
  [
    'criu checkMemoryAndDisk',
    () => criu.checkMemoryAndDisk('/var/lib/spotlift/images'),
    'criu check 2>&1 | tail -n 3; awk \'/^MemAvailable:/{print "MEM_AVAILABLE_KB", $2}\' /proc/meminfo; mkdir -p /var/lib/spotlift/images && df -P -k /var/lib/spotlift/images | awk \'NR == 2 {printf "DISK_AVAIL_BYTES %.0f\\n", $4 * 1024}\'',
  ],
  [
    'criu memoryAndDisk',
    () => criu.memoryAndDisk("/img/it's"),
    "awk '/^MemAvailable:/{print \"MEM_AVAILABLE_KB\", $2}' /proc/meminfo; mkdir -p '/img/it'\\''s' && df -P -k '/img/it'\\''s' | awk 'NR == 2 {printf \"DISK_AVAIL_BYTES %.0f\\n\", $4 * 1024}'",
  ],
  [
    'criu cpuinfoDumpAndRead',
    () => criu.cpuinfoDumpAndRead('/img/m1/src'),
    'mkdir -p -m 0700 /img/m1/src && criu cpuinfo dump -D /img/m1/src --cpu-cap=cpu -o /img/m1/src/cpuinfo-dump.log -v4 && [ -f /img/m1/src/cpuinfo.img ] && base64 -w0 /img/m1/src/cpuinfo.img; true',
  ],
  [
    'criu cpuinfoWriteAndCheck',
    () => criu.cpuinfoWriteAndCheck('/img/m1/dst'),
    'mkdir -p -m 0700 /img/m1/dst && base64 -d > /img/m1/dst/cpuinfo.img && criu cpuinfo check -D /img/m1/dst --cpu-cap=cpu -o /img/m1/dst/cpuinfo-check.log -v4',
  ],
  [
    'criu pageServer tls',
    () => criu.pageServer('/img/m1/dst', '10.0.0.2', 27100, tls),
    'criu page-server -D /img/m1/dst --address 10.0.0.2 --port 27100 --daemon --pidfile /img/m1/dst/page-server.pid --tls --tls-cacert /t/ca.pem --tls-cert /t/node.pem --tls-key /t/node.key -o /img/m1/dst/page-server.log -v4',
  ],
  [
    'criu awaitPageServerExit',
    () => criu.awaitPageServerExit('/img/m1/dst', 5_000),
    'p=$(cat /img/m1/dst/page-server.pid 2>/dev/null); [ -n "$p" ] || exit 0; i=0; while [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ] && ! grep -q \'^State:[[:space:]]*Z\' /proc/$p/status 2>/dev/null; do [ $i -ge 100 ] && exit 1; i=$((i + 1)); sleep 0.05; done; exit 0',
  ],
  [
    'criu dump',
    () => criu.dump(4242, '/img/m1/src', to, { ghostLimitBytes: 64 * 2 ** 20 }),
    'criu dump -t 4242 -D /img/m1/src --leave-stopped --page-server --address 10.0.0.2 --port 27100 --ghost-limit 67108864 -o /img/m1/src/dump.log -v4',
  ],
  [
    'criu dump of a forensic copy (the tree runs on)',
    () => criu.dump(4242, '/img/m1/src', to, { leaveRunning: true }),
    'criu dump -t 4242 -D /img/m1/src --leave-running --page-server --address 10.0.0.2 --port 27100 -o /img/m1/src/dump.log -v4',
  ],
  [
    'criu dump of a full guard checkpoint on a node with soft-dirty (resets the bits for the next)',
    () => criu.dump(4242, '/img/g1/src', to, { leaveRunning: true, trackMem: true }),
    'criu dump -t 4242 -D /img/g1/src --leave-running --page-server --address 10.0.0.2 --port 27100 --track-mem -o /img/g1/src/dump.log -v4',
  ],
  [
    'criu dump of an incremental guard checkpoint (pages dirtied since its parent only)',
    () => criu.dump(4242, '/img/g2/src', to, { leaveRunning: true, prev: '../g1' }),
    'criu dump -t 4242 -D /img/g2/src --leave-running --page-server --address 10.0.0.2 --port 27100 --prev-images-dir ../g1 --track-mem -o /img/g2/src/dump.log -v4',
  ],
  [
    'criu dumpLocal of an encrypted forensic checkpoint (no page-server)',
    () => criu.dumpLocal(4242, '/img/c1/src', { ghostLimitBytes: 64 * 2 ** 20, leaveRunning: true }),
    'criu dump -t 4242 -D /img/c1/src --leave-running --ghost-limit 67108864 -o /img/c1/src/dump.log -v4',
  ],
  [
    'criu dump final of pre-copy over tls',
    () => criu.dump(4242, '/img/m1/src', to, { tls, prev: 'round-3' }),
    'criu dump -t 4242 -D /img/m1/src --leave-stopped --page-server --address 10.0.0.2 --port 27100 --prev-images-dir round-3 --track-mem --tls --tls-cacert /t/ca.pem --tls-cert /t/node.pem --tls-key /t/node.key -o /img/m1/src/dump.log -v4',
  ],
  [
    'criu restore',
    () => criu.restore('/img/m1/dst'),
    'criu restore -D /img/m1/dst --restore-detached --pidfile /img/m1/dst/restored.pid -o /img/m1/dst/restore.log -v4 && echo RESTORED_PID $(cat /img/m1/dst/restored.pid)',
  ],
  [
    'criu restore lazy, daemon first',
    () => criu.restore('/img/m1/dst', { lazyPages: true, daemonFirst: live.lazyPagesDaemon('/img/m1/dst') }),
    'if criu lazy-pages -D /img/m1/dst --daemon --pidfile /img/m1/dst/lazy-pages.pid -o /img/m1/dst/lazy-pages.log -v4; then criu restore -D /img/m1/dst --restore-detached --pidfile /img/m1/dst/restored.pid --lazy-pages -o /img/m1/dst/restore.log -v4 && echo RESTORED_PID $(cat /img/m1/dst/restored.pid); else echo LAZY_DAEMON_FAILED; false; fi',
  ],
  [
    'live pageServerWithParent',
    () => live.pageServerWithParent('/img/m1/dst/round-2', to, '../round-1', tls),
    'criu page-server -D /img/m1/dst/round-2 --address 10.0.0.2 --port 27100 --daemon --pidfile /img/m1/dst/round-2/page-server.pid --prev-images-dir ../round-1 --tls --tls-cacert /t/ca.pem --tls-cert /t/node.pem --tls-key /t/node.key -o /img/m1/dst/round-2/page-server.log -v4',
  ],
  [
    'live stopPageServer',
    () => live.stopPageServer('/img/m1/dst'),
    'p=$(cat /img/m1/dst/page-server.pid 2>/dev/null); [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ] && kill -KILL "$p" 2>/dev/null; true',
  ],
  [
    'live preDump local (hybrid)',
    () => live.preDump(4242, '/img/m1/src/round-1', undefined),
    'criu pre-dump -t 4242 -D /img/m1/src/round-1 --track-mem -o /img/m1/src/round-1/pre-dump.log -v4',
  ],
  [
    'live preDump',
    () => live.preDump(4242, '/img/m1/src/round-2', '../round-1', to, tls),
    'criu pre-dump -t 4242 -D /img/m1/src/round-2 --page-server --address 10.0.0.2 --port 27100 --prev-images-dir ../round-1 --track-mem --tls --tls-cacert /t/ca.pem --tls-cert /t/node.pem --tls-key /t/node.key -o /img/m1/src/round-2/pre-dump.log -v4',
  ],
  [
    'live lazyDumpStart',
    () => live.lazyDumpStart(4242, '/img/m1/src', to, 'round-2', 600, 1024, tls),
    'tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }\nnow_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }\nrm -f /img/m1/src/lazy-dump.done /img/m1/src/lazy-dump.pid\nt0=$(now_ns)\n(cd / && setsid sh -c \'now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\\\'\'\'\\\'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'\\\'\'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'\\\'\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }; criu dump -t 4242 -D /img/m1/src --leave-stopped --prev-images-dir round-2 --track-mem --lazy-pages --address 10.0.0.2 --port 27100 --ghost-limit 1024 --tls --tls-cacert /t/ca.pem --tls-cert /t/node.pem --tls-key /t/node.key -o /img/m1/src/dump.log -v4 & echo $! > "$1/lazy-dump.pid"; wait $!; rc=$?; echo "$rc $(now_ns)" > "$1/lazy-dump.done.tmp"; mv "$1/lazy-dump.done.tmp" "$1/lazy-dump.done"\' sh /img/m1/src </dev/null >/dev/null 2>&1 &)\nn=0; while ! grep -q \'Starting lazy pages server\' /img/m1/src/dump.log 2>/dev/null; do\n  [ -f /img/m1/src/lazy-dump.done ] && { echo "LAZY_FAILED $(cat /img/m1/src/lazy-dump.done)"; exit 1; }\n  n=$((n+1)); [ $n -lt 60000 ] || { echo LAZY_TIMEOUT; exit 2; }; sleep 0.01\ndone\nfor p in $(tree 4242); do kill -STOP "$p" 2>/dev/null; done\ns=$(sed -n \'s/^(\\([0-9]*\\)\\.\\([0-9]*\\)) Seized task.*/\\1\\2/p\' /img/m1/src/dump.log | head -n 1)\necho "LAZY_READY $t0 $(expr "${s:-0}" + 0)"',
  ],
  [
    'live lazyDumpWait',
    () => live.lazyDumpWait('/img/m1/src', 30),
    '[ -f /img/m1/src/lazy-dump.pid ] || [ -f /img/m1/src/lazy-dump.done ] || { echo LAZY_NONE; exit 0; }\nn=0; while [ ! -f /img/m1/src/lazy-dump.done ]; do n=$((n+1)); [ $n -lt 600 ] || { echo LAZY_RUNNING; exit 0; }; sleep 0.05; done\necho "LAZY_DONE $(cat /img/m1/src/lazy-dump.done)"',
  ],
  [
    'live lazyDumpStop',
    () => live.lazyDumpStop('/img/m1/src'),
    'p=$(cat /img/m1/src/lazy-dump.pid 2>/dev/null)\nif [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ]; then kill -KILL "$p" 2>/dev/null;\n  for i in $(seq 1 300); do [ -d /proc/$p ] || break; sleep 0.01; done; fi\necho LAZY_STOPPED',
  ],
  [
    'live lazyPagesDaemon from source over tls',
    () => live.lazyPagesDaemon('/img/m1/dst', to, tls),
    'criu lazy-pages -D /img/m1/dst --page-server --address 10.0.0.2 --port 27100 --daemon --pidfile /img/m1/dst/lazy-pages.pid --tls --tls-cacert /t/ca.pem --tls-cert /t/node.pem --tls-key /t/node.key -o /img/m1/dst/lazy-pages.log -v4',
  ],
  [
    'live lazyPagesWait',
    () => live.lazyPagesWait('/img/m1/dst', 60),
    'now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }\np=$(cat /img/m1/dst/lazy-pages.pid 2>/dev/null); [ -n "$p" ] || { echo PAGES_NONE; exit 0; }\nn=0; while [ -d /proc/$p ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ]; do\n  n=$((n+1)); [ $n -lt 3000 ] || { echo PAGES_RUNNING; exit 0; }; sleep 0.02\ndone\necho "PAGES_END $(now_ns)"\nsed -n \'s/.*UFFD transferred pages: (\\([0-9]*\\/[0-9]*\\)).*/TRANSFERRED \\1/p\' /img/m1/dst/lazy-pages.log 2>/dev/null\ngrep -E \'(Error \\(|BUG at)\' /img/m1/dst/lazy-pages.log 2>/dev/null | grep -v \'RLIMIT_NOFILE\' | tail -n 5 | sed \'s/^/ERR /\'\ntrue',
  ],
  [
    'live lazyPagesStarted',
    () => live.lazyPagesStarted('/img/m1/dst'),
    '[ -s /img/m1/dst/lazy-pages.pid ] && echo DAEMON_STARTED; true',
  ],
  [
    'live lazyPagesStop',
    () => live.lazyPagesStop('/img/m1/dst'),
    'p=$(cat /img/m1/dst/lazy-pages.pid 2>/dev/null); [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ] && kill -KILL "$p" 2>/dev/null; true',
  ],
  [
    'live portFree',
    () => live.portFree(27100),
    'if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn "sport = :27100" 2>/dev/null)" ]; then echo PORT_BUSY; else echo PORT_FREE; fi',
  ],
  [
    'live startProbeProcess',
    () => live.startProbeProcess(60, 'trial-d788c63e'),
    "(cd / && exec setsid unshare -p -f setsid sh -c 'printf %s trial-d788c63e > /proc/self/comm; v=$(head -c 6291456 /dev/urandom | base64 -w0); sleep 60 & wait' </dev/null >/dev/null 2>&1) & u=$!\nfor i in $(seq 1 500); do c=$(cat /proc/$u/task/*/children 2>/dev/null | awk '{print $1}');\n  for k in $(cat /proc/$c/task/*/children 2>/dev/null); do\n    [ \"$(cat /proc/$k/comm 2>/dev/null)\" = sleep ] && { echo \"PROBE_PID $c\"; exit 0; }; done; sleep 0.02; done\necho 'the probe process did not start' >&2; exit 1",
  ],
  [
    'live sampleDirtyPages',
    () => live.sampleDirtyPages(4242, 500),
    'tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }\nnow_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }\npids=$(tree 4242); for p in $pids; do echo 4 > /proc/$p/clear_refs 2>/dev/null || { echo DIRTY_UNKNOWN; exit 0; }; done\nt0=$(now_ns); sleep 0.500; t1=$(now_ns)\nn=0; for p in $pids; do\n  c=$(awk \'$2 ~ /^rw.p$/ {split($1, a, "-"); print a[1], a[2]}\' /proc/$p/maps 2>/dev/null | while read lo hi; do\n    s=$(( 0x$lo / 4096 * 8 )); l=$(( (0x$hi - 0x$lo) / 4096 * 8 ));\n    dd if=/proc/$p/pagemap bs=1M iflag=skip_bytes,count_bytes skip=$s count=$l 2>/dev/null | od -An -v -tx8;\n  done | awk \'{for (i = 1; i <= NF; i++) if (substr($i, 3, 1) ~ /[89a-f]/) c++} END {print c + 0}\')\n  n=$((n + c)); done\necho "DIRTY_PAGES $n $(( (t1 - t0) / 1000000 ))"',
  ],
  [
    'node processState',
    () => sh.processState(4242),
    's=$(awk \'/^State:/{print $2}\' /proc/4242/status 2>/dev/null); echo "STATE ${s:-gone}"',
  ],
  [
    'node inspectTree',
    () => sh.inspectTree(4242),
    'tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }\n[ -d /proc/4242 ] || { echo "no process with pid 4242" >&2; exit 3; }\necho "BOOT $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"\n[ -d /proc/4242 ] && echo "PROC 4242 $(base64 -w0 /proc/4242/stat 2>/dev/null) $(readlink /proc/4242/ns/pid 2>/dev/null | tr -dc 0-9) $(cksum < /proc/4242/cmdline 2>/dev/null | cut -d\' \' -f1)"\necho "NET_NS $(readlink /proc/4242/ns/net 2>/dev/null)"\necho "SESSION_NET_NS $(readlink /proc/$$/ns/net 2>/dev/null)"\nif readlink /proc/4242/exe >/dev/null 2>&1; then echo "EXE yes"; else echo "EXE no"; fi\na=$$; s=; while [ -n "$a" ] && [ "$a" -gt 0 ] 2>/dev/null; do s="$s $a"; [ "$a" -eq 1 ] && break; n=; while read -r k v; do [ "$k" = PPid: ] && { n=$v; break; }; done 2>/dev/null < /proc/$a/status; a=$n; done; echo "SESSION$s"\npids=$(tree 4242)\necho TREE $pids\nrss=0; for p in $pids; do r=$(awk \'/^VmRSS:/{print $2}\' /proc/$p/status 2>/dev/null); rss=$((rss + ${r:-0})); done\necho RSS_KB $rss',
  ],
  [
    // One identity script: registration's inspectTree and the sweeper's processFacts both print these lines.
    'node identityLines',
    () => identityLines([4242, 17]).join('\n'),
    'echo "BOOT $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"\n[ -d /proc/4242 ] && echo "PROC 4242 $(base64 -w0 /proc/4242/stat 2>/dev/null) $(readlink /proc/4242/ns/pid 2>/dev/null | tr -dc 0-9) $(cksum < /proc/4242/cmdline 2>/dev/null | cut -d\' \' -f1)"\n[ -d /proc/17 ] && echo "PROC 17 $(base64 -w0 /proc/17/stat 2>/dev/null) $(readlink /proc/17/ns/pid 2>/dev/null | tr -dc 0-9) $(cksum < /proc/17/cmdline 2>/dev/null | cut -d\' \' -f1)"',
  ],
  [
    'node resumeTree',
    () => sh.resumeTree(4242),
    'tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }\nfor p in $(tree 4242); do kill -CONT "$p" 2>/dev/null; done\ns=$(awk \'/^State:/{print $2}\' /proc/4242/status 2>/dev/null); echo "STATE ${s:-gone}"',
  ],
  [
    'node killTree',
    () => sh.killTree(4242),
    'tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }\n[ -d /proc/4242 ] && kill -KILL $(tree 4242) 2>/dev/null\nfor i in $(seq 1 200); do [ -d /proc/4242 ] || break; sleep 0.01; done\ns=$(awk \'/^State:/{print $2}\' /proc/4242/status 2>/dev/null); echo "STATE ${s:-gone}"',
  ],
  [
    'node timed',
    () => sh.timed('criu restore'),
    'now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }; t0=$(now_ns); criu restore; rc=$?; t1=$(now_ns); echo "SPOTLIFT_TIMES $t0 $t1 $rc"; exit $rc',
  ],
  [
    'node readFileBase64',
    () => sh.readFileBase64('/img/m1/src/cpuinfo.img'),
    '[ -f /img/m1/src/cpuinfo.img ] && base64 -w0 /img/m1/src/cpuinfo.img; true',
  ],
  ['node tailLog', () => sh.tailLog('/img/m1/src/dump.log', 60), 'tail -n 60 /img/m1/src/dump.log 2>/dev/null; true'],
  [
    'node waitCriuIdle',
    () => sh.waitCriuIdle('/img/m1/src', 30),
    'd=/img/m1/src\nbusy() { for p in /proc/[0-9]*; do n=; read -r n 2>/dev/null < "$p/comm"; [ "$n" = criu ] || continue; c=$(tr \'\\0\' \' \' < "$p/cmdline" 2>/dev/null); case "$c" in *"$d"*) ;; *) continue ;; esac; case "$c" in *" page-server "*|*" lazy-pages "*) kill -s KILL "${p#/proc/}" 2>/dev/null ;; *) echo "${p#/proc/}" ;; esac; done; }\nend=$(( $(date +%s) + 30 ))\nwhile :; do b=$(busy); [ -z "$b" ] && { echo "CRIU_IDLE yes"; exit 0; }; [ "$(date +%s)" -ge "$end" ] && { echo "CRIU_IDLE no" $b; exit 1; }; sleep 0.1; done',
  ],
  [
    'node keepLogs',
    () => sh.keepLogs('/img/m1/src', '/var/lib/spotlift/logs/m1', 65536, 10080),
    'src=/img/m1/src; dst=/var/lib/spotlift/logs/m1; n=0\nif [ -d "$src" ]; then for f in $(cd "$src" && find . -type f -name \'*.log\' | sort); do mkdir -p -m 0700 "$dst/$(dirname "$f")" && tail -c 65536 "$src/$f" > "$dst/$f" && n=$((n + 1)); done; fi\nfind /var/lib/spotlift/logs -mindepth 1 -maxdepth 1 -type d -mmin +10080 -exec rm -rf {} + 2>/dev/null\necho "KEPT $n"',
  ],
  [
    'node readPidfile',
    () => sh.readPidfile('/run/app.pid'),
    'p=$(cat /run/app.pid 2>/dev/null); case "$p" in \'\'|*[!0-9]*) ;; *) echo "PID $p" ;; esac; true',
  ],
  [
    'node writeFileFromBase64',
    () => sh.writeFileFromBase64('/img/m1/dst/cpuinfo.img'),
    'base64 -d > /img/m1/dst/cpuinfo.img',
  ],
  [
    'node fileMtimeCommand',
    () => sh.fileMtimeCommand("/img/it's/stats-dump"),
    "t=$(date -r '/img/it'\\''s/stats-dump' +%s%N 2>/dev/null); case \"$t\" in ''|*[!0-9]*) stat -c '%Y %y' '/img/it'\\''s/stats-dump' 2>/dev/null;; *) echo \"$t\";; esac; true",
  ],
  [
    'node removeEmptyDir',
    () => sh.removeEmptyDir('/var/lib/spotlift/checkpoints/wl-1'),
    'rmdir /var/lib/spotlift/checkpoints/wl-1 2>/dev/null; true',
  ],
  [
    // The checkpoint's per-workload directory once hand-quoted its path: a quote in it must stay one word.
    'node removeEmptyDir (a quote in the path)',
    () => sh.removeEmptyDir("/srv/cp/it's; rm -rf /"),
    "rmdir '/srv/cp/it'\\''s; rm -rf /' 2>/dev/null; true",
  ],
  ['node PRINT_LOGIN_HOME', () => sh.PRINT_LOGIN_HOME, 'printf %s "$HOME"'],
  ['node MEM_AVAILABLE_KB', () => sh.MEM_AVAILABLE_KB, "awk '/^MemAvailable:/ {print $2}' /proc/meminfo"],
  [
    'node cpuSampleCommand',
    () => cpuSampleCommand([4242, 4243], 1),
    `s() { echo @@; head -n 1 /proc/stat; grep -c '^cpu[0-9]' /proc/stat; for p in 4242 4243; do echo "P $p $(cat /proc/$p/stat 2>/dev/null)"; done; }; s; sleep 1; s`,
  ],
  // the lock's holder and lease scripts: node-lock.spec.ts
  [
    'node nodeLockPath',
    () => sh.nodeLockPath('proc:b00t:4026531836:4242:12345'),
    '/run/spotlift/locks/proc_b00t_4026531836_4242_12345.lock',
  ],
  [
    'files sendRound',
    () => files.sendRound('/img/m1/src', ['/srv/data/app'], { final: false }),
    "mkdir -p /img/m1/src/file-sync && cd / || exit 1\nns=$(( $(date +%s%N) - 1000000000 ))\ntouch -d \"@$((ns / 1000000000)).$(printf %09d $((ns % 1000000000)))\" /img/m1/src/file-sync/mark.next || exit 1\nfind srv/data/app -print0 > /img/m1/src/file-sync/found || exit 1\nLC_ALL=C sort -z < /img/m1/src/file-sync/found > /img/m1/src/file-sync/now || exit 1\n[ -e /img/m1/src/file-sync/sent ] || : > /img/m1/src/file-sync/sent\nLC_ALL=C comm -z -23 /img/m1/src/file-sync/sent /img/m1/src/file-sync/now > /img/m1/src/file-sync/deleted || exit 1\nif [ -e /img/m1/src/file-sync/mark ]; then find srv/data/app \\( -newer /img/m1/src/file-sync/mark -o -cnewer /img/m1/src/file-sync/mark \\) -print0; else cat /img/m1/src/file-sync/now; fi > /img/m1/src/file-sync/changed || exit 1\nsent=$(tr -cd '\\000' < /img/m1/src/file-sync/changed | wc -c); deleted=$(tr -cd '\\000' < /img/m1/src/file-sync/deleted | wc -c)\nprintf '%s\\000' img/m1/src/file-sync/deleted >> /img/m1/src/file-sync/changed\nmv -f /img/m1/src/file-sync/now /img/m1/src/file-sync/sent && mv -f /img/m1/src/file-sync/mark.next /img/m1/src/file-sync/mark || exit 1\necho \"SPOTLIFT_FILES sent=$sent deleted=$deleted\" >&2\ntar -cf - --null --no-recursion -T /img/m1/src/file-sync/changed; rc=$?\n[ $rc -le 1 ]",
  ],
  [
    'files sendRound final',
    () => files.sendRound('/img/m1/src', ['/srv/data/app', '/srv/data/b c'], { final: true }),
    "mkdir -p /img/m1/src/file-sync && cd / || exit 1\nns=$(( $(date +%s%N) - 1000000000 ))\ntouch -d \"@$((ns / 1000000000)).$(printf %09d $((ns % 1000000000)))\" /img/m1/src/file-sync/mark.next || exit 1\nfind srv/data/app 'srv/data/b c' -print0 > /img/m1/src/file-sync/found || exit 1\nLC_ALL=C sort -z < /img/m1/src/file-sync/found > /img/m1/src/file-sync/now || exit 1\n[ -e /img/m1/src/file-sync/sent ] || : > /img/m1/src/file-sync/sent\nLC_ALL=C comm -z -23 /img/m1/src/file-sync/sent /img/m1/src/file-sync/now > /img/m1/src/file-sync/deleted || exit 1\nif [ -e /img/m1/src/file-sync/mark ]; then find srv/data/app 'srv/data/b c' \\( -newer /img/m1/src/file-sync/mark -o -cnewer /img/m1/src/file-sync/mark \\) -print0; else cat /img/m1/src/file-sync/now; fi > /img/m1/src/file-sync/changed || exit 1\nsent=$(tr -cd '\\000' < /img/m1/src/file-sync/changed | wc -c); deleted=$(tr -cd '\\000' < /img/m1/src/file-sync/deleted | wc -c)\nprintf '%s\\000' img/m1/src/file-sync/deleted >> /img/m1/src/file-sync/changed\nmv -f /img/m1/src/file-sync/now /img/m1/src/file-sync/sent && mv -f /img/m1/src/file-sync/mark.next /img/m1/src/file-sync/mark || exit 1\necho \"SPOTLIFT_FILES sent=$sent deleted=$deleted\" >&2\ntar -cf - --null --no-recursion -T /img/m1/src/file-sync/changed; rc=$?\n[ $rc -eq 0 ]",
  ],
  [
    'files receiveRound',
    () => JSON.stringify(files.receiveRound('/img/m1/dst', ['/srv/data/app'])),
    '{"unpack":"(e=.spotlift-tar.$$.err; rc=0; LC_ALL=C tar -C / -xpf - -- srv/data/app img/m1/dst/file-sync/deleted 2>$e || rc=$?; if [ $rc -eq 2 ] && ! grep -qv -e \': Not found in archive$\' -e \'^tar: Exiting with failure status due to previous errors$\' $e; then rc=0; fi; cat $e >&2; rm -f $e; exit $rc)","after":"if [ -s /img/m1/dst/file-sync/deleted ]; then (cd / && find -H srv/data/app -print0 2>/dev/null; true) | LC_ALL=C sort -z > .spotlift-have.$$; LC_ALL=C sort -z < /img/m1/dst/file-sync/deleted | LC_ALL=C comm -z -12 - .spotlift-have.$$ | (cd / && xargs -0 -r rm -rf --); rm -f .spotlift-have.$$; fi; rm -f /img/m1/dst/file-sync/deleted"}',
  ],
  [
    'files inspectPaths',
    () => files.inspectPaths(['/srv/data/app']),
    'printf \'HOME\\t%s\\n\' "$HOME"; for p in /srv/data/app; do if [ -e "$p" ] || [ -L "$p" ]; then printf \'SIZE\\t%s\\t%s\\n\' "$(du -sk "$p" 2>/dev/null | cut -f1)" "$p"; else printf \'MISSING\\t%s\\n\' "$p"; fi; done',
  ],
  [
    'files freeSpaceFor',
    () => files.freeSpaceFor(['/srv/data/app', '/opt/x']),
    'printf \'HOME\\t%s\\n\' "$HOME"; for p in /srv/data/app /opt/x; do q=$p; while [ ! -e "$q" ] && [ "$q" != / ]; do q=$(dirname "$q"); done; h=0; if [ -e "$p" ]; then h=$(du -sk "$p" 2>/dev/null | cut -f1); fi; d=$(df -P -k "$q" | awk \'NR == 2 {print $4 "\\t" $6}\'); printf \'FREE\\t%s\\t%s\\t%s\\n\' "$d" "${h:-0}" "$p"; done',
  ],
  ['files archivePaths', () => files.archivePaths(['/srv/data/app']), 'cd / && tar -cf - -- srv/data/app'],
  ['files storeArchive', () => files.storeArchive(), 'cat > workload-files.tar'],
  [
    'files readStoredArchive',
    () => files.readStoredArchive('/var/lib/spotlift/checkpoints/wl-1/cp-1'),
    'cat /var/lib/spotlift/checkpoints/wl-1/cp-1/workload-files.tar',
  ],
  [
    'images sealImages',
    () => images.sealImages('/cp/1', ['inventory.img', 'pages-*.img'], 'SHA256SUMS'),
    'cd /cp/1 || exit 1; set -- inventory.img; [ -s "$1" ] || echo "MISSING inventory.img"; set -- pages-*.img; [ -s "$1" ] || echo "MISSING pages-*.img"; sha256sum $(ls | grep -v -e \'\\.log$\' -e \'^SHA256SUMS$\' -e \'^parent$\') > SHA256SUMS && sync && echo STORED_KB $(du -sk . | cut -f1)',
  ],
  [
    'images encryptImages (the data key on stdin only)',
    () => images.encryptImages('/img/c1/src'),
    'cd /img/c1/src || exit 2; IFS= read -r k || exit 3; for f in *; do [ -f "$f" ] || continue; case "$f" in *.log|cpuinfo.img|stats-dump|spotlift-owner.json|.*) continue;; esac; printf \'%s\\n\' "$k" | openssl enc -e -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -pass stdin -in "$f" -out "$f.enc" && mv -f "$f.enc" "$f" || { echo "ENCRYPT_FAILED $f"; rm -f "$f.enc"; exit 4; }; done; sha256sum $(ls | grep -v -e \'\\.log$\')',
  ],
  [
    'images decryptImages (the recorded sums checked first)',
    () => images.decryptImages('/img/c1-r1/dst'),
    'cd /img/c1-r1/dst || exit 2; IFS= read -r k || exit 3; cat > .sums || exit 3; out=$(sha256sum -c .sums 2>&1) || { printf \'%s\\n\' "$out" | grep -v \': OK$\' | head -n 5; echo TAMPERED; exit 5; }; for f in *; do grep -q "^[0-9a-f]\\{64\\} [ *]\\?$f\\$" .sums || { echo "UNLISTED $f"; echo TAMPERED; exit 5; }; done; for f in *; do case "$f" in *.log|cpuinfo.img|stats-dump|spotlift-owner.json|.*) continue;; esac; printf \'%s\\n\' "$k" | openssl enc -d -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -pass stdin -in "$f" -out "$f.dec" && mv -f "$f.dec" "$f" || { echo "DECRYPT_FAILED $f"; exit 4; }; done; rm -f .sums',
  ],
  [
    'images checkImages',
    () => images.checkImages('/cp/1', 'SHA256SUMS'),
    "cd /cp/1 || exit 2; out=$(sha256sum -c SHA256SUMS 2>&1); rc=$?; printf '%s\\n' \"$out\" | grep -v ': OK$' | head -n 5; exit $rc",
  ],
  [
    'sweep listImageDirs',
    () => sweep.listImageDirs('/var/lib/spotlift/images'),
    'r=/var/lib/spotlift/images\nif [ -d "$r" ]; then for d in "$r"/*/; do [ -d "$d" ] || continue; n=$(basename "$d"); echo "DIR $n $(stat -c %Y "$d" 2>/dev/null)"; for s in src dst; do f="$d$s/spotlift-owner.json"; [ -f "$f" ] && echo "MARK $n $s $(head -c 4096 "$f" | base64 | tr -d \'\\n\')"; done; p=$(cat "$d/dst/restored.pid" 2>/dev/null); case "$p" in \'\'|*[!0-9]*) ;; *) echo "RESTORED $n $p" ;; esac; done; fi\nfor p in /proc/[0-9]*; do n=; read -r n 2>/dev/null < "$p/comm"; [ "$n" = criu ] || continue; echo "CRIU ${p#/proc/} $(tr \'\\0\' \' \' < "$p/cmdline" 2>/dev/null)"; done\ntrue',
  ],
  [
    'sweep processFacts',
    () => sweep.processFacts([4242, 17], ['/run/spotlift/locks/k.lock']),
    'echo "BOOT $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"\n[ -d /proc/4242 ] && echo "PROC 4242 $(base64 -w0 /proc/4242/stat 2>/dev/null) $(readlink /proc/4242/ns/pid 2>/dev/null | tr -dc 0-9) $(cksum < /proc/4242/cmdline 2>/dev/null | cut -d\' \' -f1)"\n[ -d /proc/17 ] && echo "PROC 17 $(base64 -w0 /proc/17/stat 2>/dev/null) $(readlink /proc/17/ns/pid 2>/dev/null | tr -dc 0-9) $(cksum < /proc/17/cmdline 2>/dev/null | cut -d\' \' -f1)"\nif [ ! -e /run/spotlift/locks/k.lock ] || ! command -v flock >/dev/null; then echo "LOCK /run/spotlift/locks/k.lock none"; elif flock -n /run/spotlift/locks/k.lock true; then echo "LOCK /run/spotlift/locks/k.lock free"; else echo "LOCK /run/spotlift/locks/k.lock held"; fi\ntrue',
  ],
  [
    'sweep cleanTrial',
    () => sweep.cleanTrial('/var/lib/spotlift/images', 'trial-d788c63e'),
    'd=/var/lib/spotlift/images/trial-d788c63e\nfor p in /proc/[0-9]*; do c=; read -r c 2>/dev/null < "$p/comm"; [ "$c" = criu ] || continue; case "$(tr \'\\0\' \' \' < "$p/cmdline" 2>/dev/null)" in *"$d/"*) kill -KILL "${p#/proc/}" 2>/dev/null && echo "KILLED ${p#/proc/} criu" ;; esac; done\nsleep 0.2\nfor p in /proc/[0-9]*; do c=; read -r c 2>/dev/null < "$p/comm"; [ "$c" = trial-d788c63e ] || continue; k=$(cat "$p"/task/*/children 2>/dev/null); kill -KILL "${p#/proc/}" $k 2>/dev/null && echo "KILLED ${p#/proc/} probe"; done\nrm -rf -- "$d"; [ -e "$d" ] || echo REMOVED\ntrue',
  ],
  // libs/transport's own commands, written in @spotlift/node-commands (transport cannot import the engine).
  ['transport tarCommand', () => tarCommand('/img/m1/src', []), 'tar -C /img/m1/src -cf - .'],
  [
    'transport tarCommand (excluding)',
    () => tarCommand("/img/it's", ['./*.log', './round-*']),
    "tar -C '/img/it'\\''s' -cf - $(cd '/img/it'\\''s' && for f in * .[!.]* ..?*; do { [ -e \"$f\" ] || [ -L \"$f\" ]; } || continue; case \"./$f\" in ./*.log|./round-*) continue ;; esac; echo \"./$f\"; done)",
  ],
  ['transport UNPACK_TAR', () => UNPACK_TAR, 'tar -xf -'],
  ['transport armed', () => armed(UNPACK_TAR), 'read spotlift_go; [ "$spotlift_go" = go ] || exit 125; tar -xf -'],
  [
    'transport receiveStream',
    () => receiveStream('/img/m1/dst', UNPACK_TAR),
    'set -e; mkdir -p /img/m1/dst; cd /img/m1/dst; rx=.spotlift-rx.$$; rm -f $rx.fifo; mkfifo $rx.fifo; sha256sum < $rx.fifo > $rx.sha256 & tee $rx.fifo | tar -xf -; wait; cut -c1-64 $rx.sha256; rm -f $rx.fifo $rx.sha256',
  ],
  [
    'transport receiveStream (with after)',
    () => receiveStream("/srv/it's", UNPACK_TAR, armed(UNPACK_TAR)),
    "set -e; mkdir -p '/srv/it'\\''s'; cd '/srv/it'\\''s'; rx=.spotlift-rx.$$; rm -f $rx.fifo; mkfifo $rx.fifo; sha256sum < $rx.fifo > $rx.sha256 & tee $rx.fifo | tar -xf -; wait; read spotlift_go; [ \"$spotlift_go\" = go ] || exit 125; tar -xf -; cut -c1-64 $rx.sha256; rm -f $rx.fifo $rx.sha256",
  ],
  [
    'transport authorizeTunnelKeyCommand',
    () =>
      authorizeTunnelKeyCommand(
        '.ssh/authorized_keys',
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBTQ',
        'spotlift-tunnel-0a1b',
        7001,
      ),
    'f="$HOME"/.ssh/authorized_keys\n[ -f "$f" ] || { echo "no authorized_keys file at $f" >&2; exit 3; }\nlock="$(dirname "$f")/.spotlift-tunnel.lock"\nif command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock -w 10 9; fi\nexp=$(date -d "@$(( $(date +%s) + 600 ))" +%Y%m%d%H%M)\nprintf \'%s,expiry-time="%s" %s\\n\' \'restrict,port-forwarding,permitopen="127.0.0.1:7001",command="/bin/false"\' "$exp" \'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBTQ spotlift-tunnel-0a1b\' >>"$f"',
  ],
  [
    'transport revokeTunnelKeyCommand',
    () => revokeTunnelKeyCommand('/root/.ssh/authorized_keys', 'spotlift-tunnel-0a1b'),
    'f=/root/.ssh/authorized_keys\n[ -f "$f" ] || { echo "no authorized_keys file at $f" >&2; exit 3; }\nlock="$(dirname "$f")/.spotlift-tunnel.lock"\nif command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock -w 10 9; fi\ngrep -qF spotlift-tunnel-0a1b "$f" || exit 0\ntmp=$(mktemp "$f.XXXXXX")\ngrep -vF spotlift-tunnel-0a1b "$f" >"$tmp" || [ $? -eq 1 ]\nchown --reference="$f" "$tmp" 2>/dev/null; chmod --reference="$f" "$tmp" 2>/dev/null\nmv -f "$tmp" "$f"',
  ],
  [
    'transport tunnelKeyCommand',
    () => tunnelKeyCommand('spotlift-tunnel-0a1b', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBTQ'),
    "set -e\ncommand -v ssh >/dev/null 2>&1 || { echo 'no OpenSSH client (ssh) on the PATH' >&2; exit 3; }\nd=$(mktemp -d /tmp/spotlift-tunnel.XXXXXX)\nssh-keygen -q -t ed25519 -N '' -C spotlift-tunnel-0a1b -f \"$d/key\"\nprintf 'spotlift-destination %s\\n' 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBTQ' >\"$d/known_hosts\"\nprintf '%s\\n' \"$d\"\ncat \"$d/key.pub\"",
  ],
  [
    'transport tunnelCommand',
    () => tunnelCommand('/tmp/spotlift-tunnel.abc123', { user: 'root', address: '10.77.0.3', port: 22 }, 7002, 7001, 5),
    'd=/tmp/spotlift-tunnel.abc123\nexec 3<&0\nssh -F /dev/null -N -i "$d/key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$d/known_hosts" -o GlobalKnownHostsFile=/dev/null -o HostKeyAlias=spotlift-destination -o ExitOnForwardFailure=yes -o ConnectTimeout=5 -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr -o PermitLocalCommand=yes -o "LocalCommand=rm -f $d/key; echo spotlift-tunnel-ready" -p 22 -l root -L 127.0.0.1:7002:127.0.0.1:7001 10.77.0.3 </dev/null 2>"$d/err" &\np=$!\n( cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null ) &\nwait $p; rc=$?\nerr=$(tr \'\\n\' \' \' <"$d/err" | cut -c1-400)\nrm -rf "$d"\necho "spotlift-tunnel-exit $rc $err"',
  ],
  [
    'transport removeTunnelKeyDirCommand',
    () => removeTunnelKeyDirCommand('/tmp/spotlift-tunnel.abc123'),
    'rm -rf /tmp/spotlift-tunnel.abc123',
  ],
  [
    'transport readNodeTlsCommand',
    () => readNodeTlsCommand('/var/lib/spotlift/tls/node-a'),
    'g=$(readlink /var/lib/spotlift/tls/node-a/current 2>/dev/null) && [ -s /var/lib/spotlift/tls/node-a/"$g"/key.pem ] && echo "GEN $g" && echo "CA $(base64 -w0 /var/lib/spotlift/tls/node-a/"$g"/ca.pem)" && echo "CERT $(base64 -w0 /var/lib/spotlift/tls/node-a/"$g"/cert.pem)"; true',
  ],
  [
    'transport installNodeTlsCommand',
    () => installNodeTlsCommand('/var/lib/spotlift/tls/node-a', 'gen-0123abcd'),
    'set -e; umask 077\nmkdir -p -m 0700 /var/lib/spotlift/tls/node-a; cd /var/lib/spotlift/tls/node-a; rm -rf gen-0123abcd.tmp; mkdir -m 0700 gen-0123abcd.tmp\nIFS= read -r ca; IFS= read -r cert; IFS= read -r key\nprintf %s "$ca" | base64 -d > gen-0123abcd.tmp/ca.pem\nprintf %s "$cert" | base64 -d > gen-0123abcd.tmp/cert.pem\nprintf %s "$key" | base64 -d > gen-0123abcd.tmp/key.pem\nchmod 0600 gen-0123abcd.tmp/*; rm -rf gen-0123abcd; mv gen-0123abcd.tmp gen-0123abcd\nprev=$(readlink current 2>/dev/null || true)\nln -sfn gen-0123abcd current.tmp; mv -Tf current.tmp current\nfor o in gen-*; do [ "$o" = gen-0123abcd ] || [ "$o" = "$prev" ] || rm -rf "$o"; done',
  ],
  ['podman inspect', () => pc.inspect('web'), 'podman container inspect -- web'],
  ['podman imageExists', () => pc.imageExists('sha256abc'), 'podman image exists -- sha256abc'],
  [
    'podman imageSave',
    () => pc.imageSave('localhost/app:1'),
    'podman image save --format docker-archive -- localhost/app:1',
  ],
  [
    'podman imageLoad',
    () => pc.imageLoad('/img/m1/dst/image-load.out'),
    'podman image load >/img/m1/dst/image-load.out',
  ],
  [
    'podman checkpointToStdout (bounded FIFO reader)',
    () => pc.checkpointToStdout('0123abcd', '/img/m1/src', 600),
    'now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }\ncd /img/m1/src || exit 1\nrm -f export.fifo checkpoint.rc; mkfifo -m 600 export.fifo || exit 1\nnow_ns > checkpoint.start\n( timeout 600 podman container checkpoint --export /img/m1/src/export.fifo --compress none --tcp-established --file-locks --print-stats -- 0123abcd >checkpoint-stats.json 2>checkpoint.log; echo $? >checkpoint.rc ) &\nck=$!\ntimeout 600 cat export.fifo & rd=$!\nwait $ck\nrc=$(cat checkpoint.rc 2>/dev/null); rc=${rc:-1}\n[ "$rc" = 0 ] || kill $rd 2>/dev/null\nwait $rd; rrc=$?\nrm -f export.fifo\n[ "$rc" = 0 ] || { tail -c 4000 checkpoint.log >&2; exit $rc; }\n[ "$rrc" = 0 ] || { echo "reading the export FIFO failed ($rrc)" >&2; exit 1; }',
  ],
  [
    'podman checkpointToStdout --leave-running (a forensic copy to storage)',
    () => pc.checkpointToStdout('0123abcd', '/img/cp-1/src', 600, 'leave-running').split('\n')[4]!,
    '( timeout 600 podman container checkpoint --export /img/cp-1/src/export.fifo --compress none --tcp-established --file-locks --print-stats --leave-running -- 0123abcd >checkpoint-stats.json 2>checkpoint.log; echo $? >checkpoint.rc ) &',
  ],
  [
    'podman sendStoredFile',
    () => pc.sendStoredFile('/var/lib/spotlift/checkpoints/wl 1/cp-1/checkpoint.tar'),
    "cat '/var/lib/spotlift/checkpoints/wl 1/cp-1/checkpoint.tar'",
  ],
  [
    'podman checkpointToStdout, a pre-checkpoint round (container pre-copy)',
    () => pc.checkpointToStdout('0123abcd', '/img/m1/src/pre-1', 600, 'pre'),
    'now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }\ncd /img/m1/src/pre-1 || exit 1\nrm -f export.fifo checkpoint.rc; mkfifo -m 600 export.fifo || exit 1\nnow_ns > checkpoint.start\n( timeout 600 podman container checkpoint --export /img/m1/src/pre-1/export.fifo --compress none --tcp-established --file-locks --print-stats --pre-checkpoint -- 0123abcd >checkpoint-stats.json 2>checkpoint.log; echo $? >checkpoint.rc ) &\nck=$!\ntimeout 600 cat export.fifo & rd=$!\nwait $ck\nrc=$(cat checkpoint.rc 2>/dev/null); rc=${rc:-1}\n[ "$rc" = 0 ] || kill $rd 2>/dev/null\nwait $rd; rrc=$?\nrm -f export.fifo\n[ "$rc" = 0 ] || { tail -c 4000 checkpoint.log >&2; exit $rc; }\n[ "$rrc" = 0 ] || { echo "reading the export FIFO failed ($rrc)" >&2; exit 1; }',
  ],
  [
    'podman checkpointToStdout, the final checkpoint after a pre-checkpoint',
    () => pc.checkpointToStdout('0123abcd', '/img/m1/src', 600, 'with-previous'),
    'now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in \'\'|*[!0-9]*) _t=$(adjtimex 2>/dev/null | awk \'/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}\'); [ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }\ncd /img/m1/src || exit 1\nrm -f export.fifo checkpoint.rc; mkfifo -m 600 export.fifo || exit 1\nnow_ns > checkpoint.start\n( timeout 600 podman container checkpoint --export /img/m1/src/export.fifo --compress none --tcp-established --file-locks --print-stats --with-previous -- 0123abcd >checkpoint-stats.json 2>checkpoint.log; echo $? >checkpoint.rc ) &\nck=$!\ntimeout 600 cat export.fifo & rd=$!\nwait $ck\nrc=$(cat checkpoint.rc 2>/dev/null); rc=${rc:-1}\n[ "$rc" = 0 ] || kill $rd 2>/dev/null\nwait $rd; rrc=$?\nrm -f export.fifo\n[ "$rc" = 0 ] || { tail -c 4000 checkpoint.log >&2; exit $rc; }\n[ "$rrc" = 0 ] || { echo "reading the export FIFO failed ($rrc)" >&2; exit 1; }',
  ],
  ['podman receiveArchive', () => pc.receiveArchive('/img/m1/dst/checkpoint.tar'), 'cat >/img/m1/dst/checkpoint.tar'],
  [
    'podman restoreImport',
    () => pc.restoreImport('/img/m1/dst/checkpoint.tar', 600),
    'timeout 600 podman container restore --import /img/m1/dst/checkpoint.tar --tcp-established --file-locks --print-stats',
  ],
  [
    'podman restoreImport with its pre-checkpoint',
    () => pc.restoreImport('/img/m1/dst/checkpoint.tar', 600, '/img/m1/dst/pre-checkpoint.tar'),
    'timeout 600 podman container restore --import /img/m1/dst/checkpoint.tar --import-previous /img/m1/dst/pre-checkpoint.tar --tcp-established --file-locks --print-stats',
  ],
  [
    'podman restoreLocal',
    () => pc.restoreLocal('0123abcd', 600),
    'timeout 600 podman container restore --tcp-established --file-locks --print-stats -- 0123abcd',
  ],
  ['podman remove', () => pc.remove('0123abcd'), 'podman container rm --force --ignore --time 0 -- 0123abcd'],
  [
    'podman RUNTIME_CHECK',
    () => pc.RUNTIME_CHECK,
    'for b in podman runc criu; do command -v $b >/dev/null || { echo "$b is not installed" >&2; exit 3; }; done\necho "RUNTIME $(podman info --format \'{{.Host.OCIRuntime.Name}}\' 2>/dev/null)"\nif criu check >/dev/null 2>&1; then echo "CRIU_OK yes"; else echo "CRIU_OK no"; fi',
  ],
  [
    'podman portsInUse',
    () => pc.portsInUse([8080, 53]),
    'for p in 8080 53; do ss -Htuln "sport = :$p" 2>/dev/null | grep -q . && echo "LISTEN $p"; done; true',
  ],
  [
    'podman volumesPresent',
    () => pc.volumesPresent(['data', 'logs']),
    "podman volume exists -- data && echo 'VOLUME data'; podman volume exists -- logs && echo 'VOLUME logs'; true",
  ],
  ['podman removeVolumes', () => pc.removeVolumes(['data']), 'podman volume rm --force -- data'],
  [
    'podman waitPodmanIdle',
    () => pc.waitPodmanIdle('/var/lib/spotlift/images/mig-1.a/src', 2),
    'i=0; while pgrep -f -- \'podman container (checkpoint|restore) .*/var/lib/spotlift/images/mig-1\\.a/src\' >/dev/null; do [ $i -ge 10 ] && { echo "PODMAN_IDLE no"; exit 1; }; i=$((i + 1)); sleep 0.2; done; echo "PODMAN_IDLE yes"',
  ],
  [
    'directStreamProbe receive tcp',
    () => directStreamProbe('receive', false),
    'command -v ss >/dev/null 2>&1 || echo "DIRECT_MISSING ss"\ncommand -v sha256sum >/dev/null 2>&1 || echo "DIRECT_MISSING sha256sum"\ncommand -v timeout >/dev/null 2>&1 || echo "DIRECT_MISSING timeout"\nbusybox nc --help >/dev/null 2>&1 || echo "DIRECT_MISSING busybox nc"\ntrue',
  ],
  [
    'directStreamProbe send tls',
    () => directStreamProbe('send', true),
    'command -v bash >/dev/null 2>&1 || echo "DIRECT_MISSING bash"\ncommand -v sha256sum >/dev/null 2>&1 || echo "DIRECT_MISSING sha256sum"\ncommand -v openssl >/dev/null 2>&1 || echo "DIRECT_MISSING openssl"\ntrue',
  ],
  [
    'directReceive tcp',
    () =>
      directReceive({
        dir: '/img/m1/dst',
        listen: { address: '127.0.0.1', port: 27100 },
        unpack: pc.receiveArchive('/img/m1/dst/checkpoint.tar'),
        timeoutS: 120,
      }),
    'mkdir -p /img/m1/dst && cd /img/m1/dst || exit 1\nexec 3<&0\nrx=.spotlift-direct.$$\nrm -f $rx.*; mkfifo $rx.data $rx.h $rx.n $rx.in || exit 1\nif ss -Htln "sport = :27100" | grep -q .; then echo "port 27100 is in use on this node" >&2; rm -f $rx.*; exit 97; fi\nsha256sum <$rx.h >$rx.sha & wc -c <$rx.n >$rx.bytes &\n{ tee $rx.h $rx.n <$rx.data | cat >/img/m1/dst/checkpoint.tar; echo $? >$rx.urc; } & cons=$!\ntimeout 120 busybox nc -l -p 27100 0<>$rx.in >$rx.data 2>$rx.err & ls=$!\n( cat <&3 >/dev/null 2>&1; kill $ls 2>/dev/null ) & w=$!\ni=0\nuntil ss -Htln "sport = :27100" | grep -q .; do\n  kill -0 $ls 2>/dev/null || break\n  i=$((i + 1)); [ $i -ge 200 ] && { kill $ls 2>/dev/null; break; }\n  sleep 0.05\ndone\nkill -0 $ls 2>/dev/null && echo SPOTLIFT_LISTENING\nwait $ls; lrc=$?\nwait $cons\nkill $w 2>/dev/null\nwait\nurc=$(cat $rx.urc 2>/dev/null); urc=${urc:-1}\n[ "$lrc" = 0 ] || { echo "the listener on port 27100 failed ($lrc): $(tail -c 400 $rx.err)" >&2; rm -f $rx.*; exit 1; }\n[ "$urc" = 0 ] || { echo "unpacking what arrived failed ($urc)" >&2; rm -f $rx.*; exit 1; }\necho "SPOTLIFT_RECEIVED $(tr -d \' \' <$rx.bytes) $(cut -c1-64 $rx.sha)"\nrm -f $rx.*',
  ],
  [
    'directReceive tls',
    () =>
      directReceive({
        dir: '/img/m1/dst',
        listen: to,
        unpack: pc.receiveArchive('/img/m1/dst/checkpoint.tar'),
        timeoutS: 120,
        tls,
      }),
    'mkdir -p /img/m1/dst && cd /img/m1/dst || exit 1\nexec 3<&0\nrx=.spotlift-direct.$$\nrm -f $rx.*; mkfifo $rx.data $rx.h $rx.n $rx.in || exit 1\nif ss -Htln "sport = :27100" | grep -q .; then echo "port 27100 is in use on this node" >&2; rm -f $rx.*; exit 97; fi\nsha256sum <$rx.h >$rx.sha & wc -c <$rx.n >$rx.bytes &\n{ tee $rx.h $rx.n <$rx.data | cat >/img/m1/dst/checkpoint.tar; echo $? >$rx.urc; } & cons=$!\ntimeout 120 openssl s_server -quiet -naccept 1 -accept 10.0.0.2:27100 -cert /t/node.pem -key /t/node.key -CAfile /t/ca.pem -Verify 1 -verify_return_error 0<>$rx.in >$rx.data 2>$rx.err & ls=$!\n( cat <&3 >/dev/null 2>&1; kill $ls 2>/dev/null ) & w=$!\ni=0\nuntil ss -Htln "sport = :27100" | grep -q .; do\n  kill -0 $ls 2>/dev/null || break\n  i=$((i + 1)); [ $i -ge 200 ] && { kill $ls 2>/dev/null; break; }\n  sleep 0.05\ndone\nkill -0 $ls 2>/dev/null && echo SPOTLIFT_LISTENING\nwait $ls; lrc=$?\nwait $cons\nkill $w 2>/dev/null\nwait\nurc=$(cat $rx.urc 2>/dev/null); urc=${urc:-1}\n[ "$lrc" = 0 ] || { echo "the listener on port 27100 failed ($lrc): $(tail -c 400 $rx.err)" >&2; rm -f $rx.*; exit 1; }\n[ "$urc" = 0 ] || { echo "unpacking what arrived failed ($urc)" >&2; rm -f $rx.*; exit 1; }\necho "SPOTLIFT_RECEIVED $(tr -d \' \' <$rx.bytes) $(cut -c1-64 $rx.sha)"\nrm -f $rx.*',
  ],
  [
    'directSend tcp',
    () => directSend({ send: pc.imageSave('x'), connect: to, timeoutS: 120 }),
    'bash -c \'tx=$(mktemp -d /tmp/spotlift-direct.XXXXXX) || exit 1\nmkfifo $tx/h || exit 1\nsha256sum <$tx/h >$tx/sha &\n{ ( podman image save --format docker-archive -- x ); echo $? >$tx/rc; } | tee $tx/h | cat >/dev/tcp/10.0.0.2/27100 2>>$tx/net.err\nnet=${PIPESTATUS[2]}\nwait\nrc=$(cat $tx/rc 2>/dev/null); rc=${rc:-1}\nerr=$(tail -c 400 $tx/net.err 2>/dev/null)\nsha=$(cut -c1-64 $tx/sha)\nrm -rf $tx\n[ "$rc" = 0 ] || exit $rc\n[ "$net" = 0 ] || { echo "the connection to 10.0.0.2:27100 broke ($net) $err" >&2; exit 112; }\necho "SPOTLIFT_SENT $sha"\'',
  ],
  [
    'directSend tls',
    () => directSend({ send: pc.imageSave('x'), connect: to, timeoutS: 120, tls }),
    'bash -c \'tx=$(mktemp -d /tmp/spotlift-direct.XXXXXX) || exit 1\nmkfifo $tx/h || exit 1\nsha256sum <$tx/h >$tx/sha &\n{ ( podman image save --format docker-archive -- x ); echo $? >$tx/rc; } | tee $tx/h | timeout 120 openssl s_client -quiet -no_ign_eof -nocommands -connect 10.0.0.2:27100 -cert /t/node.pem -key /t/node.key -CAfile /t/ca.pem -verify_return_error -verify_ip 10.0.0.2 >/dev/null 2>>$tx/net.err\nnet=${PIPESTATUS[2]}\nwait\nrc=$(cat $tx/rc 2>/dev/null); rc=${rc:-1}\nerr=$(tail -c 400 $tx/net.err 2>/dev/null)\nsha=$(cut -c1-64 $tx/sha)\nrm -rf $tx\n[ "$rc" = 0 ] || exit $rc\n[ "$net" = 0 ] || { echo "the connection to 10.0.0.2:27100 broke ($net) $err" >&2; exit 112; }\necho "SPOTLIFT_SENT $sha"\'',
  ],
];

describe('node commands (golden table)', () => {
  it.each(GOLDEN)('%s', (_name, build, expected) => {
    expect(build()).toBe(expected);
  });

  it('names each case once', () => {
    expect(new Set(GOLDEN.map(([name]) => name)).size).toBe(GOLDEN.length);
  });
});
