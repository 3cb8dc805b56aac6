import { shq } from '@spotlift/transport';
import { type NodeCommand, nodeCommand } from './node-command.js';
import { identityLines } from './identity-script.js';

/**
 * Small POSIX shell snippets the engine runs on nodes. Each prints one machine-readable line so the engine
 * never parses prose, and each is safe to run twice.
 */

/** `tree ROOT` prints ROOT and every descendant (all threads' children), one PID a line. */
const TREE_FN = `tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }`;

/**
 * `now_ns` prints the wall clock in ns. GNU date has `%N`; busybox date prints it literally (qemu lab guests),
 * so there the time comes from adjtimex(2) (µs resolution), and as a last resort from whole seconds.
 */
export const NOW_NS_FN =
  `now_ns() { _t=$(date +%s%N 2>/dev/null); case "$_t" in ''|*[!0-9]*) ` +
  `_t=$(adjtimex 2>/dev/null | awk '/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {if (s != "") printf "%s%06d000", s, u}'); ` +
  `[ -n "$_t" ] || _t="$(date +%s)000000000" ;; esac; echo "$_t"; }`;

/** Prints `STATE <letter>` for a live process, `STATE gone` otherwise. */
export function processState(pid: number): NodeCommand {
  return nodeCommand(`s=$(awk '/^State:/{print $2}' /proc/${pid}/status 2>/dev/null); echo "STATE \${s:-gone}"`);
}

/**
 * Prints `TREE pid pid ...` and `RSS_KB total` for a process tree, and before them what identifies the root
 * and where this SSH session stands (process-inspection.ts parses them): the root's identity lines (`BOOT`,
 * `PROC`: identity-script.ts, the same the sweeper reads), `NET_NS` of the root, `SESSION_NET_NS` of this
 * shell, `EXE yes|no`, `SESSION` (this shell and its ancestors up to pid 1, the node's sshd among them, from
 * the `PPid:` lines, which the kernel escapes). Exit 3 when the root does not exist.
 */
export function inspectTree(pid: number): NodeCommand {
  return nodeCommand(
    [
      TREE_FN,
      `[ -d /proc/${pid} ] || { echo "no process with pid ${pid}" >&2; exit 3; }`,
      ...identityLines([pid]),
      `echo "NET_NS $(readlink /proc/${pid}/ns/net 2>/dev/null)"`,
      `echo "SESSION_NET_NS $(readlink /proc/$$/ns/net 2>/dev/null)"`,
      `if readlink /proc/${pid}/exe >/dev/null 2>&1; then echo "EXE yes"; else echo "EXE no"; fi`,
      // Builtins only (no fork per ancestor): preflight runs this too, inside every notice-to-freeze time.
      `a=$$; s=; while [ -n "$a" ] && [ "$a" -gt 0 ] 2>/dev/null; do s="$s $a"; [ "$a" -eq 1 ] && break; n=; ` +
        `while read -r k v; do [ "$k" = PPid: ] && { n=$v; break; }; done 2>/dev/null < /proc/$a/status; a=$n; done; ` +
        `echo "SESSION$s"`,
      `pids=$(tree ${pid})`,
      `echo TREE $pids`,
      `rss=0; for p in $pids; do r=$(awk '/^VmRSS:/{print $2}' /proc/$p/status 2>/dev/null); rss=$((rss + \${r:-0})); done`,
      `echo RSS_KB $rss`,
    ].join('\n'),
  );
}

/** Sends SIGCONT to every task of a stopped tree, then prints the root's state. */
export function resumeTree(pid: number): NodeCommand {
  return nodeCommand(
    [TREE_FN, `for p in $(tree ${pid}); do kill -CONT "$p" 2>/dev/null; done`, processState(pid)].join('\n'),
  );
}

/** Kills every task of a tree (a stopped tree too). Prints `STATE gone` once the root is gone. */
export function killTree(pid: number): NodeCommand {
  return nodeCommand(
    [
      TREE_FN,
      `[ -d /proc/${pid} ] && kill -KILL $(tree ${pid}) 2>/dev/null`,
      `for i in $(seq 1 200); do [ -d /proc/${pid} ] || break; sleep 0.01; done`,
      processState(pid),
    ].join('\n'),
  );
}

/**
 * Runs a command with node-side timestamps around it: prints `SPOTLIFT_TIMES <start-ns> <end-ns> <rc>` on
 * stdout and exits with the command's code. Downtime comes from these, not from the orchestrator's clock.
 */
export function timed(command: string): NodeCommand {
  return nodeCommand(
    `${NOW_NS_FN}; t0=$(now_ns); ${command}; rc=$?; t1=$(now_ns); echo "SPOTLIFT_TIMES $t0 $t1 $rc"; exit $rc`,
  );
}

export function parseTimes(stdout: string): { startNs: bigint; endNs: bigint } | undefined {
  const m = /SPOTLIFT_TIMES (\d+) (\d+) -?\d+/.exec(stdout);
  return m?.[1] && m[2] ? { startNs: BigInt(m[1]), endNs: BigInt(m[2]) } : undefined;
}

/** Prints the file base64-encoded on one line, or nothing when it does not exist. */
export function readFileBase64(path: string): NodeCommand {
  return nodeCommand(`[ -f ${shq(path)} ] && base64 -w0 ${shq(path)}; true`);
}

/** The last lines of a CRIU log, for error messages. */
export function tailLog(path: string, lines = 30): NodeCommand {
  return nodeCommand(`tail -n ${lines} ${shq(path)} 2>/dev/null; true`);
}

/**
 * Waits until no CRIU process of one migration runs on the node any more (a dump or restore whose SSH
 * channel died with the orchestrator keeps running and would change the world after we looked). Page-servers
 * and lazy-pages daemons of that directory are killed first: nothing will use them any more, and a dump still
 * streaming to one then fails fast and resumes its tree. Exits 0 once idle, 1 with `CRIU_IDLE no <pids>` when
 * the time is up.
 */
export function waitCriuIdle(dir: string, timeoutS: number): NodeCommand {
  return nodeCommand(
    [
      `d=${shq(dir)}`,
      // `read` is a builtin: no fork per process on a busy node, only for the few named criu.
      `busy() { for p in /proc/[0-9]*; do n=; read -r n 2>/dev/null < "$p/comm"; [ "$n" = criu ] || continue; ` +
        `c=$(tr '\\0' ' ' < "$p/cmdline" 2>/dev/null); case "$c" in *"$d"*) ;; *) continue ;; esac; ` +
        `case "$c" in *" page-server "*|*" lazy-pages "*) kill -s KILL "\${p#/proc/}" 2>/dev/null ;; *) echo "\${p#/proc/}" ;; esac; done; }`,
      `end=$(( $(date +%s) + ${Math.max(1, Math.ceil(timeoutS))} ))`,
      `while :; do b=$(busy); [ -z "$b" ] && { echo "CRIU_IDLE yes"; exit 0; }; ` +
        `[ "$(date +%s)" -ge "$end" ] && { echo "CRIU_IDLE no" $b; exit 1; }; sleep 0.1; done`,
    ].join('\n'),
  );
}

/**
 * Copies the last `maxBytes` of every `*.log` under a job's image directory to `logsDir` (same relative
 * paths, 0700: logs name files and addresses), before cleanup removes the images, and removes job log
 * directories next to it older than `maxAgeMin` minutes. Prints `KEPT <count>`; never fails the caller.
 */
export function keepLogs(imageDir: string, logsDir: string, maxBytes: number, maxAgeMin: number): NodeCommand {
  const root = logsDir.replace(/\/+[^/]+\/*$/, '') || '/';
  return nodeCommand(
    [
      `src=${shq(imageDir)}; dst=${shq(logsDir)}; n=0`,
      `if [ -d "$src" ]; then for f in $(cd "$src" && find . -type f -name '*.log' | sort); do ` +
        `mkdir -p -m 0700 "$dst/$(dirname "$f")" && tail -c ${Math.floor(maxBytes)} "$src/$f" > "$dst/$f" && n=$((n + 1)); done; fi`,
      `find ${shq(root)} -mindepth 1 -maxdepth 1 -type d -mmin +${Math.floor(maxAgeMin)} -exec rm -rf {} + 2>/dev/null`,
      `echo "KEPT $n"`,
    ].join('\n'),
  );
}

/** Prints the pid a CRIU pidfile names, or nothing (no file, or not a number). */
export function readPidfile(path: string): NodeCommand {
  return nodeCommand(`p=$(cat ${shq(path)} 2>/dev/null); case "$p" in ''|*[!0-9]*) ;; *) echo "PID $p" ;; esac; true`);
}

/** Writes stdin (base64) to a file, for small images like cpuinfo.img. */
export function writeFileFromBase64(path: string): NodeCommand {
  return nodeCommand(`base64 -d > ${shq(path)}`);
}

/**
 * A file's modification time in ns since the epoch, on GNU and busybox nodes alike. GNU `date -r FILE +%s%N`
 * prints digits; busybox date prints `%N` literally, so there `stat -c '%Y %y'` answers (whole seconds, then the
 * human time whose fraction holds the ns: `1795832760 2026-11-28 02:26:00.764000668 +0000`; busybox `%.9Y`
 * drops the fraction). Prints nothing when the file is missing.
 */
export function fileMtimeCommand(path: string): NodeCommand {
  const f = shq(path);
  return nodeCommand(
    `t=$(date -r ${f} +%s%N 2>/dev/null); case "$t" in ''|*[!0-9]*) stat -c '%Y %y' ${f} 2>/dev/null;; ` +
      `*) echo "$t";; esac; true`,
  );
}

/** Parses what fileMtimeCommand printed: ns digits, or `SECONDS DATE TIME[.FRACTION] ZONE`. */
export function parseFileMtime(out: string): bigint | undefined {
  const text = out.trim();
  if (/^\d+$/.test(text)) return BigInt(text);
  const m = /^(\d+) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.(\d{1,9}))?\b/.exec(text);
  if (!m?.[1]) return undefined;
  return BigInt(m[1]) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** Removes a directory only when it is empty (rmdir refuses otherwise); never fails. */
export function removeEmptyDir(path: string): NodeCommand {
  return nodeCommand(`rmdir ${shq(path)} 2>/dev/null; true`);
}

/** The SSH login's home directory, printed as is. */
export const PRINT_LOGIN_HOME: NodeCommand = nodeCommand('printf %s "$HOME"');

/** MemAvailable of /proc/meminfo, in KiB. */
export const MEM_AVAILABLE_KB: NodeCommand = nodeCommand("awk '/^MemAvailable:/ {print $2}' /proc/meminfo");

/** Where node-side locks live: tmpfs, so a reboot (which ends every process they guard) clears them. */
export const NODE_LOCK_DIR = '/run/spotlift/locks';

/**
 * The lock file of a key (a processKey), on every node: the job's freeze lock, and what the sweeper tests. Its
 * holder and lease: node-lock.ts.
 */
export function nodeLockPath(key: string): string {
  return `${NODE_LOCK_DIR}/${key.replace(/[^A-Za-z0-9._-]/g, '_')}.lock`;
}
