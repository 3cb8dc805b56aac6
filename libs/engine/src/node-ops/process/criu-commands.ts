import {
  classifyCriuFailure,
  cpuinfoCheckArgv,
  cpuinfoDumpArgv,
  dumpArgv,
  pageServerArgv,
  restoreArgv,
  type CriuEndpoint,
  type CriuTlsOptions,
} from '@spotlift/criu';
import { shellJoin, shq } from '@spotlift/transport';
import { MigrationStepError } from '../../engine.types.js';
import { readFileBase64, writeFileFromBase64 } from '../node-scripts.js';
import { type NodeCommand, nodeCommand } from '../node-command.js';

/**
 * The shell commands the engine's steps run around CRIU. Argv comes from libs/criu (pure, table-tested);
 * this file only adds what the shell on the node must do around it (pidfile reading, memory figures).
 */

const MEM_AVAILABLE = `awk '/^MemAvailable:/{print "MEM_AVAILABLE_KB", $2}' /proc/meminfo`;

export function checkAndMemory(): NodeCommand {
  return nodeCommand(`criu check 2>&1 | tail -n 3; ${MEM_AVAILABLE}`);
}

/**
 * `criu check`, available memory, and free bytes where the images will go (created if missing). POSIX `df -P`
 * (busybox has no `--output`): 1024-byte blocks, 'Available' is the 4th field of the second line.
 */
export function checkMemoryAndDisk(imageRoot: string): NodeCommand {
  return nodeCommand(`${checkAndMemory()}; ${diskFree(imageRoot)}`);
}

/** Available memory and free image space without `criu check` (a recent probe already vouched for CRIU). */
export function memoryAndDisk(imageRoot: string): NodeCommand {
  return nodeCommand(`${MEM_AVAILABLE}; ${diskFree(imageRoot)}`);
}

function diskFree(imageRoot: string): string {
  return `mkdir -p ${shq(imageRoot)} && df -P -k ${shq(imageRoot)} | awk 'NR == 2 {printf "DISK_AVAIL_BYTES %.0f\\n", $4 * 1024}'`;
}

/**
 * `criu cpuinfo dump` / `check` with `--cpu-cap=cpu`: without it CRIU compares only FPU/xsave features and
 * passes a destination that lacks CPU capability bits the source has (libs/criu's CpuinfoOptions).
 */
export function cpuinfoDump(dir: string): NodeCommand {
  return nodeCommand(
    `mkdir -p -m 0700 ${shq(dir)} && ${shellJoin(cpuinfoDumpArgv({ imagesDir: dir, cpuCap: ['cpu'], log: { file: `${dir}/cpuinfo-dump.log` } }))}`,
  );
}

export function cpuinfoCheck(dir: string): NodeCommand {
  return nodeCommand(
    shellJoin(cpuinfoCheckArgv({ imagesDir: dir, cpuCap: ['cpu'], log: { file: `${dir}/cpuinfo-check.log` } })),
  );
}

/** `criu cpuinfo dump`, then the image as base64 on stdout: one round trip. */
export function cpuinfoDumpAndRead(dir: string): NodeCommand {
  return nodeCommand(`${cpuinfoDump(dir)} && ${readFileBase64(`${dir}/cpuinfo.img`)}`);
}

/** The source's cpuinfo.img (base64 on stdin) written into `dir`, then `criu cpuinfo check`: one round trip. */
export function cpuinfoWriteAndCheck(dir: string): NodeCommand {
  return nodeCommand(
    `mkdir -p -m 0700 ${shq(dir)} && ${writeFileFromBase64(`${dir}/cpuinfo.img`)} && ${cpuinfoCheck(dir)}`,
  );
}

export function pageServer(dir: string, address: string, port: number, tls?: CriuTlsOptions): NodeCommand {
  return nodeCommand(
    shellJoin(
      pageServerArgv({
        imagesDir: dir,
        address,
        port,
        daemon: true,
        pidfile: `${dir}/page-server.pid`,
        log: { file: `${dir}/page-server.log` },
        ...(tls ? { tls } : {}),
      }),
    ),
  );
}

/**
 * Waits, bounded, for the page-server in `dir` to exit by itself once its dump has disconnected. CRIU's page server
 * acknowledges the dump's final close *before* it closes its image files (`page_server_serve`: the ack, then
 * `page_server_close()`; the pagemap goes through a write buffer), so the dump returns while the destination's
 * images may still be short. Killing the server then, or restoring at once, reads a truncated image (`Unexpected
 * EOF`, seen in a CI run of the qemu pre-copy). Exits 0 once the server is gone (a zombie counts as gone), 1 if it
 * still runs after `timeoutMs`.
 */
export function awaitPageServerExit(dir: string, timeoutMs: number): NodeCommand {
  const pidfile = shq(`${dir}/page-server.pid`);
  const tries = Math.max(1, Math.ceil(timeoutMs / 50));
  const alive = `[ "$(cat /proc/$p/comm 2>/dev/null)" = criu ] && ! grep -q '^State:[[:space:]]*Z' /proc/$p/status 2>/dev/null`;
  return nodeCommand(
    `p=$(cat ${pidfile} 2>/dev/null); [ -n "$p" ] || exit 0; i=0; while ${alive}; do [ $i -ge ${tries} ] && exit 1; i=$((i + 1)); sleep 0.05; done; exit 0`,
  );
}

/**
 * The freezing dump (`--leave-stopped`) to a page-server: stop-and-copy's, and pre-copy's final one with `prev`,
 * the last round (only pages dirtied since then go). `ghostLimitBytes`: files the tree holds open but were
 * deleted are carried in the images up to this size each (CRIU's default, 1 MiB, fails on bigger ones).
 * `trackMem` without `prev`: a guard checkpoint's full dump that resets the soft-dirty bits, so the next guard
 * dump can name it as its parent (libs/domain guard-chain.ts); with `leaveRunning` and `prev`, that incremental one.
 */
export function dump(
  pid: number,
  dir: string,
  to: CriuEndpoint,
  opts: {
    tls?: CriuTlsOptions;
    ghostLimitBytes?: number;
    prev?: string;
    leaveRunning?: boolean;
    trackMem?: boolean;
  } = {},
): NodeCommand {
  return nodeCommand(
    shellJoin(
      dumpArgv({
        pid,
        imagesDir: dir,
        // A forensic copy resumes the tree itself; everything else stays frozen until its commit point.
        ...(opts.leaveRunning ? { leaveRunning: true } : { leaveStopped: true }),
        pageServer: to,
        log: { file: `${dir}/dump.log` },
        ...(opts.prev ? { prevImagesDir: opts.prev } : {}),
        ...(opts.prev || opts.trackMem ? { trackMem: true } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
        ...(opts.ghostLimitBytes !== undefined ? { ghostLimitBytes: opts.ghostLimitBytes } : {}),
      }),
    ),
  );
}

/**
 * The freezing dump with its pages written into `dir` on the source itself (no page-server): an encrypted
 * checkpoint's, whose pages must not reach the storage node in clear (encryptImages runs on them next).
 */
export function dumpLocal(
  pid: number,
  dir: string,
  opts: { ghostLimitBytes?: number; leaveRunning?: boolean } = {},
): NodeCommand {
  return nodeCommand(
    shellJoin(
      dumpArgv({
        pid,
        imagesDir: dir,
        ...(opts.leaveRunning ? { leaveRunning: true } : { leaveStopped: true }),
        log: { file: `${dir}/dump.log` },
        ...(opts.ghostLimitBytes !== undefined ? { ghostLimitBytes: opts.ghostLimitBytes } : {}),
      }),
    ),
  );
}

/**
 * `criu restore --restore-detached`, printing `RESTORED_PID <pid>`. `daemonFirst`: a command started just before
 * it in the same shell (pre-copy's local lazy-pages daemon, which needs the image files to be there); when it
 * fails the restore does not run and `LAZY_DAEMON_FAILED` is printed.
 */
export function restore(dir: string, opts: { lazyPages?: boolean; daemonFirst?: string } = {}): NodeCommand {
  const pidfile = `${dir}/restored.pid`;
  const argv = restoreArgv({
    imagesDir: dir,
    detached: true,
    pidfile,
    log: { file: `${dir}/restore.log` },
    ...(opts.lazyPages ? { lazyPages: true } : {}),
  });
  const run = `${shellJoin(argv)} && echo RESTORED_PID $(cat ${shq(pidfile)})`;
  return nodeCommand(
    opts.daemonFirst ? `if ${opts.daemonFirst}; then ${run}; else echo LAZY_DAEMON_FAILED; false; fi` : run,
  );
}

/** A person-readable account of a failed CRIU command from its log. */
export function explainFailure(command: string, nodeId: string, log: string, exitCode: number | null): string {
  const f = classifyCriuFailure(log, exitCode ?? undefined);
  const lines = f.lines.length ? ` [${f.lines.join(' | ')}]` : '';
  return `criu ${command} failed on ${nodeId} (${f.kind}): ${f.summary}${lines}`.slice(0, 1200);
}

/**
 * A failed dump as a step error. Whether the workload may be frozen comes from CRIU's log: a dump that could
 * not seize the tree because another tracer holds it (another job's dump) froze nothing, and the job must
 * not roll back, since the rollback's SIGCONT would resume a tree another job froze.
 */
export function dumpFailure(command: string, nodeId: string, log: string, exitCode: number | null): MigrationStepError {
  const held = classifyCriuFailure(log, exitCode ?? undefined).kind === 'tree_held';
  return new MigrationStepError('dump', explainFailure(command, nodeId, log, exitCode), held);
}

export { parseDumpStats as parseDump, parseRestoreStats as parseRestore } from '@spotlift/criu';
