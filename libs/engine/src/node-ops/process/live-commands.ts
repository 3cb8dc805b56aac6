import {
  dumpArgv,
  lazyPagesArgv,
  pageServerArgv,
  preDumpArgv,
  type CriuEndpoint,
  type CriuTlsOptions,
} from '@spotlift/criu';
import { shellJoin, shq } from '@spotlift/transport';
import { NOW_NS_FN } from '../node-scripts.js';
import { type NodeCommand, nodeCommand } from '../node-command.js';

/**
 * Shell commands of the live strategies (pre-copy rounds, post-copy's lazy dump and daemon, the post-copy
 * trial's probe process). Argv comes from libs/criu; this file adds only what the node's shell must do around
 * it. Like node-scripts.ts, each command prints machine-readable lines and is safe to run twice.
 */

/** `tree ROOT`: ROOT and every descendant, one pid a line (same walk as node-scripts.ts). */
const TREE_FN = `tree() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done; }`;

/** Files the lazy dump wrapper leaves next to CRIU's images: never copied to the destination. */
export const LAZY_WRAPPER_FILES = ['./lazy-dump.pid', './lazy-dump.done'];

/** Round directories live inside the migration's image directory: `<dir>/round-N`. */
export const roundDir = (dir: string, n: number): string => `${dir}/round-${n}`;
/** Parent link of round N (N > 1) relative to its own directory, as CRIU documents `--prev-images-dir`. */
export const roundParent = (n: number): string | undefined => (n > 1 ? `../round-${n - 1}` : undefined);
/** Parent link of the final images (the migration's directory itself) to the last round. */
export const finalParent = (rounds: number): string | undefined => (rounds > 0 ? `round-${rounds}` : undefined);

/** `criu page-server --daemon` that links its images to a parent round, so only dirty pages cross. */
export function pageServerWithParent(
  dir: string,
  listen: CriuEndpoint,
  prev?: string,
  tls?: CriuTlsOptions,
): NodeCommand {
  return nodeCommand(
    shellJoin(
      pageServerArgv({
        imagesDir: dir,
        address: listen.address,
        port: listen.port,
        daemon: true,
        pidfile: `${dir}/page-server.pid`,
        log: { file: `${dir}/page-server.log` },
        ...(prev ? { prevImagesDir: prev } : {}),
        ...(tls ? { tls } : {}),
      }),
    ),
  );
}

/** Kills a page-server left over from a failed round (it would hold its port forever). */
export function stopPageServer(dir: string): NodeCommand {
  const pidfile = shq(`${dir}/page-server.pid`);
  return nodeCommand(
    `p=$(cat ${pidfile} 2>/dev/null); [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ] && kill -KILL "$p" 2>/dev/null; true`,
  );
}

/** One pre-copy round: `pre-dump --track-mem`, to a page-server or (hybrid) into local files. */
export function preDump(
  pid: number,
  dir: string,
  prev: string | undefined,
  to?: CriuEndpoint,
  tls?: CriuTlsOptions,
): NodeCommand {
  return nodeCommand(
    shellJoin(
      preDumpArgv({
        pid,
        imagesDir: dir,
        trackMem: true,
        log: { file: `${dir}/pre-dump.log` },
        ...(prev ? { prevImagesDir: prev } : {}),
        ...(to ? { pageServer: to } : {}),
        ...(to && tls ? { tls } : {}),
      }),
    ),
  );
}

/**
 * Starts the post-copy dump detached from the SSH session (it runs until every page was served, longer
 * than any one channel should have to live), waits until its page server listens, then queues SIGSTOP
 * for every task of the tree. Why the SIGSTOP: when the lazy transfer fails or CRIU dies, CRIU resumes
 * the source by itself (seen here), while the restored copy may still be running; the queued stop keeps
 * the source frozen until the engine has killed that copy and resumes the source itself with SIGCONT.
 * The tasks are ptrace-stopped by CRIU at that point and their images are written, so the signal is
 * neither in the images nor delivered before CRIU lets go.
 * Prints `LAZY_READY <start-ns> <seized-us>` (seized: CRIU's log time of the first seized task), or
 * `LAZY_FAILED <rc> <end-ns>` / `LAZY_TIMEOUT`.
 */
export function lazyDumpStart(
  pid: number,
  dir: string,
  serve: CriuEndpoint,
  prev: string | undefined,
  timeoutS: number,
  ghostLimitBytes?: number,
  tls?: CriuTlsOptions,
): NodeCommand {
  const argv = dumpArgv({
    pid,
    imagesDir: dir,
    leaveStopped: true,
    lazyPages: { address: serve.address, port: serve.port },
    ...(tls ? { tls } : {}),
    log: { file: `${dir}/dump.log` },
    ...(prev ? { prevImagesDir: prev, trackMem: true } : {}),
    ...(ghostLimitBytes !== undefined ? { ghostLimitBytes } : {}),
  });
  // $1 is the image dir; the done file appears atomically (rename) so a reader never sees half a line.
  const inner = `${NOW_NS_FN}; ${shellJoin(argv)} & echo $! > "$1/lazy-dump.pid"; wait $!; rc=$?; echo "$rc $(now_ns)" > "$1/lazy-dump.done.tmp"; mv "$1/lazy-dump.done.tmp" "$1/lazy-dump.done"`;
  const d = shq(dir);
  return nodeCommand(
    [
      TREE_FN,
      NOW_NS_FN,
      `rm -f ${d}/lazy-dump.done ${d}/lazy-dump.pid`,
      `t0=$(now_ns)`,
      `(cd / && setsid sh -c ${shq(inner)} sh ${d} </dev/null >/dev/null 2>&1 &)`,
      `n=0; while ! grep -q 'Starting lazy pages server' ${d}/dump.log 2>/dev/null; do`,
      `  [ -f ${d}/lazy-dump.done ] && { echo "LAZY_FAILED $(cat ${d}/lazy-dump.done)"; exit 1; }`,
      `  n=$((n+1)); [ $n -lt ${Math.ceil(timeoutS * 100)} ] || { echo LAZY_TIMEOUT; exit 2; }; sleep 0.01`,
      `done`,
      `for p in $(tree ${pid}); do kill -STOP "$p" 2>/dev/null; done`,
      `s=$(sed -n 's/^(\\([0-9]*\\)\\.\\([0-9]*\\)) Seized task.*/\\1\\2/p' ${d}/dump.log | head -n 1)`,
      `echo "LAZY_READY $t0 $(expr "\${s:-0}" + 0)"`,
    ].join('\n'),
  );
}

/** Waits for the lazy dump to end. Prints `LAZY_DONE <rc> <end-ns>`, `LAZY_RUNNING` after the timeout, or `LAZY_NONE`. */
export function lazyDumpWait(dir: string, timeoutS: number): NodeCommand {
  const d = shq(dir);
  return nodeCommand(
    [
      `[ -f ${d}/lazy-dump.pid ] || [ -f ${d}/lazy-dump.done ] || { echo LAZY_NONE; exit 0; }`,
      `n=0; while [ ! -f ${d}/lazy-dump.done ]; do n=$((n+1)); [ $n -lt ${Math.ceil(timeoutS * 20)} ] || { echo LAZY_RUNNING; exit 0; }; sleep 0.05; done`,
      `echo "LAZY_DONE $(cat ${d}/lazy-dump.done)"`,
    ].join('\n'),
  );
}

/** Ends the source's lazy dump (its tasks stay stopped: the queued SIGSTOP). Prints `LAZY_STOPPED`. */
export function lazyDumpStop(dir: string): NodeCommand {
  const d = shq(dir);
  return nodeCommand(
    [
      `p=$(cat ${d}/lazy-dump.pid 2>/dev/null)`,
      `if [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ]; then kill -KILL "$p" 2>/dev/null;`,
      `  for i in $(seq 1 300); do [ -d /proc/$p ] || break; sleep 0.01; done; fi`,
      `echo LAZY_STOPPED`,
    ].join('\n'),
  );
}

/**
 * `criu lazy-pages --daemon` on the destination: returns once its socket for `restore --lazy-pages` is ready.
 * `from` omitted: a local daemon filling the restored tree from the images in `dir` (pre-copy's lazy restore).
 */
export function lazyPagesDaemon(dir: string, from?: CriuEndpoint, tls?: CriuTlsOptions): NodeCommand {
  return nodeCommand(
    shellJoin(
      lazyPagesArgv({
        imagesDir: dir,
        ...(from ? { pageServer: from } : {}),
        ...(tls ? { tls } : {}),
        daemon: true,
        pidfile: `${dir}/lazy-pages.pid`,
        // -v4: the per-process "UFFD transferred pages: (copied/total)" lines are debug-level, and they are
        // the only proof that every page arrived (the source's dump exits 0 even when the daemon died).
        log: { file: `${dir}/lazy-pages.log`, verbosity: 4 },
      }),
    ),
  );
}

/**
 * Waits for the lazy-pages daemon to exit, then reports what its log says. Prints `PAGES_END <ns>` (or
 * `PAGES_RUNNING` after the timeout, `PAGES_NONE` without a daemon), one `TRANSFERRED copied/total` a
 * process, and `ERR <line>` for error lines.
 */
export function lazyPagesWait(dir: string, timeoutS: number): NodeCommand {
  const d = shq(dir);
  return nodeCommand(
    [
      NOW_NS_FN,
      `p=$(cat ${d}/lazy-pages.pid 2>/dev/null); [ -n "$p" ] || { echo PAGES_NONE; exit 0; }`,
      `n=0; while [ -d /proc/$p ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ]; do`,
      `  n=$((n+1)); [ $n -lt ${Math.ceil(timeoutS * 50)} ] || { echo PAGES_RUNNING; exit 0; }; sleep 0.02`,
      `done`,
      `echo "PAGES_END $(now_ns)"`,
      `sed -n 's/.*UFFD transferred pages: (\\([0-9]*\\/[0-9]*\\)).*/TRANSFERRED \\1/p' ${d}/lazy-pages.log 2>/dev/null`,
      `grep -E '(Error \\(|BUG at)' ${d}/lazy-pages.log 2>/dev/null | grep -v 'RLIMIT_NOFILE' | tail -n 5 | sed 's/^/ERR /'`,
      `true`,
    ].join('\n'),
  );
}

/** Prints `DAEMON_STARTED` when a lazy-pages daemon was started for `dir` (its pidfile exists). */
export function lazyPagesStarted(dir: string): NodeCommand {
  return nodeCommand(`[ -s ${shq(`${dir}/lazy-pages.pid`)} ] && echo DAEMON_STARTED; true`);
}

/** Kills the lazy-pages daemon (the restored tree it served must already be dead). */
export function lazyPagesStop(dir: string): NodeCommand {
  const pidfile = shq(`${dir}/lazy-pages.pid`);
  return nodeCommand(
    `p=$(cat ${pidfile} 2>/dev/null); [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = criu ] && kill -KILL "$p" 2>/dev/null; true`,
  );
}

/** Is a TCP port free for CRIU's lazy page server on this node? Prints `PORT_BUSY` or `PORT_FREE`. */
export function portFree(port: number): NodeCommand {
  return nodeCommand(
    `if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn "sport = :${port}" 2>/dev/null)" ]; then echo PORT_BUSY; else echo PORT_FREE; fi`,
  );
}

/**
 * The post-copy trial's probe: a shell holding ~8 MiB of random data (a page pipe that size is what trips
 * fs.pipe-max-size; a bare `sleep` has too few pages to prove anything) and a sleeping child, as the init
 * of its own pid namespace and session (like every workload on a shared kernel). It ends by itself after
 * `lifeS` seconds even if nobody cleans up. Prints `PROBE_PID <host pid of the namespace's init>`.
 * It takes `name` (the trial's directory name) as its comm, so that the sweeper finds it, and only it, after an
 * orchestrator died mid-trial (sweeper/trial-leftovers.ts); CRIU restores the comm with the task.
 */
export function startProbeProcess(lifeS: number, name: string): NodeCommand {
  if (!/^trial-[0-9a-f]{8}$/.test(name)) throw new Error(`not a trial name: ${name}`);
  const body = `printf %s ${name} > /proc/self/comm; v=$(head -c 6291456 /dev/urandom | base64 -w0); sleep ${lifeS} & wait`;
  return nodeCommand(
    [
      `(cd / && exec setsid unshare -p -f setsid sh -c ${shq(body)} </dev/null >/dev/null 2>&1) & u=$!`,
      // Ready once the probe's own child (the sleep) exists: its memory is filled by then.
      // (`$(...)` forks a child too: only a `sleep` child says the data is in place.)
      `for i in $(seq 1 500); do c=$(cat /proc/$u/task/*/children 2>/dev/null | awk '{print $1}');`,
      `  for k in $(cat /proc/$c/task/*/children 2>/dev/null); do`,
      `    [ "$(cat /proc/$k/comm 2>/dev/null)" = sleep ] && { echo "PROBE_PID $c"; exit 0; }; done; sleep 0.02; done`,
      `echo 'the probe process did not start' >&2; exit 1`,
    ].join('\n'),
  );
}

/**
 * Dirty rate of a running tree from soft-dirty bits: clear them (`clear_refs` 4), wait, then count the
 * pages of its writable private mappings whose pagemap entry has bit 55 set. Only meaningful where
 * mem_dirty_track works; prints `DIRTY_PAGES <n> <window-ms>` or `DIRTY_UNKNOWN`.
 */
export function sampleDirtyPages(pid: number, windowMs: number): NodeCommand {
  return nodeCommand(
    [
      TREE_FN,
      NOW_NS_FN,
      `pids=$(tree ${pid}); for p in $pids; do echo 4 > /proc/$p/clear_refs 2>/dev/null || { echo DIRTY_UNKNOWN; exit 0; }; done`,
      `t0=$(now_ns); sleep ${(windowMs / 1000).toFixed(3)}; t1=$(now_ns)`,
      `n=0; for p in $pids; do`,
      `  c=$(awk '$2 ~ /^rw.p$/ {split($1, a, "-"); print a[1], a[2]}' /proc/$p/maps 2>/dev/null | while read lo hi; do`,
      // Byte offsets into pagemap: 8 bytes per 4 KiB page. Third hex digit >= 8 is bit 55 (soft-dirty).
      `    s=$(( 0x$lo / 4096 * 8 )); l=$(( (0x$hi - 0x$lo) / 4096 * 8 ));`,
      `    dd if=/proc/$p/pagemap bs=1M iflag=skip_bytes,count_bytes skip=$s count=$l 2>/dev/null | od -An -v -tx8;`,
      `  done | awk '{for (i = 1; i <= NF; i++) if (substr($i, 3, 1) ~ /[89a-f]/) c++} END {print c + 0}')`,
      `  n=$((n + c)); done`,
      `echo "DIRTY_PAGES $n $(( (t1 - t0) / 1000000 ))"`,
    ].join('\n'),
  );
}
