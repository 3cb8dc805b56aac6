import type { CriuEndpoint, CriuTlsOptions } from '@spotlift/criu';
import type { NodeRecord } from '@spotlift/domain';
import type { CommandResult, RemoteProcess } from '@spotlift/transport';
import type { NodeCommand } from '../node-command.js';
import type { ArmedCommand, TimedResult } from '../op-results.js';
import { freeSpaceFor, inspectPaths } from '../file-sync-commands.js';
import * as criu from './criu-commands.js';
import * as store from './image-store-commands.js';
import * as live from './live-commands.js';

/** Options of the freezing dump to a page-server (criu-commands `dump`). */
export type DumpOptions = NonNullable<Parameters<typeof criu.dump>[3]>;

/**
 * The `process` kind's node operations, by name: everything the process strategies, steps, rollback and the
 * checkpoint flow run on a node. Each method writes its command (criu-commands, live-commands,
 * image-store-commands, file-sync-commands) and its timeout, and returns the node's answer as it came, so the
 * caller decides what an answer means; nobody outside node-ops composes a command or calls the runners (ESLint
 * `no-restricted-syntax`, shown firing in ../../layering.spec.ts). NodeOps implements the runners over
 * NodeShell; FakeProcessOps (libs/testing) answers the same names in unit tests.
 */
export abstract class ProcessNodeOps {
  /** `stdin`: text the command reads (e.g. a small file as base64), in the same round trip. */
  abstract run(node: NodeRecord, command: NodeCommand, timeoutMs: number, stdin?: string): Promise<CommandResult>;
  abstract runTimed(node: NodeRecord, command: NodeCommand, timeoutMs: number): Promise<TimedResult>;
  abstract armTimed(node: NodeRecord, command: NodeCommand, timeoutMs: number): Promise<ArmedCommand>;
  abstract stream(node: NodeRecord, command: NodeCommand, stdin: string): Promise<RemoteProcess>;
  /** Like stream, but stdin is left open for the caller to write and end. */
  abstract streamIn(node: NodeRecord, command: NodeCommand): Promise<RemoteProcess>;

  // --- preflight: CRIU, memory, disk, CPU ---

  /** MemAvailable and free disk under `imageRoot`, after `criu check` unless `criuCheck` is false (a recent probe said). */
  memoryAndDisk(node: NodeRecord, imageRoot: string, opts: { criuCheck: boolean }): Promise<CommandResult> {
    const command = opts.criuCheck ? criu.checkMemoryAndDisk(imageRoot) : criu.memoryAndDisk(imageRoot);
    return this.run(node, command, 60_000);
  }

  /** `criu cpuinfo dump` into `dir`; the image comes back as base64 on stdout. */
  cpuinfoDumpAndRead(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, criu.cpuinfoDumpAndRead(dir), 60_000);
  }

  /** Writes the source's cpuinfo image (base64) into `dir` and runs `criu cpuinfo check` on it. */
  cpuinfoWriteAndCheck(node: NodeRecord, dir: string, imageBase64: string): Promise<CommandResult> {
    return this.run(node, criu.cpuinfoWriteAndCheck(dir), 60_000, imageBase64);
  }

  /** `criu cpuinfo dump` into `dir` (a checkpoint's images carry it). */
  cpuinfoDump(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, criu.cpuinfoDump(dir), 60_000);
  }

  /** `criu cpuinfo check` against the cpuinfo.img already in `dir`. */
  cpuinfoCheck(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, criu.cpuinfoCheck(dir), 60_000);
  }

  // --- page-servers and dumps ---

  /** `criu page-server --daemon` in `dir` (stop-and-copy's). */
  startPageServer(node: NodeRecord, dir: string, listen: CriuEndpoint, tls?: CriuTlsOptions): Promise<CommandResult> {
    return this.run(node, criu.pageServer(dir, listen.address, listen.port, tls), 30_000);
  }

  /** A page-server whose images link to the parent round `prev` (pre-copy's rounds and final dump). */
  startPageServerWithParent(
    node: NodeRecord,
    dir: string,
    listen: CriuEndpoint,
    prev: string | undefined,
    tls?: CriuTlsOptions,
  ): Promise<CommandResult> {
    return this.run(node, live.pageServerWithParent(dir, listen, prev, tls), 30_000);
  }

  /** Kills the page-server of `dir` if one is left (it would hold its port forever). */
  stopPageServer(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, live.stopPageServer(dir), 15_000);
  }

  /** Exit 0 once the page-server of `dir` exited (its images are whole), within `waitMs`. */
  awaitPageServerExit(node: NodeRecord, dir: string, waitMs: number): Promise<CommandResult> {
    return this.run(node, criu.awaitPageServerExit(dir, waitMs), waitMs + 15_000);
  }

  /** The freezing dump of `pid`'s tree into `dir`, its pages to the page-server at `to`; timed on the node. */
  dump(
    node: NodeRecord,
    pid: number,
    dir: string,
    to: CriuEndpoint,
    opts: DumpOptions,
    timeoutMs: number,
  ): Promise<TimedResult> {
    return this.runTimed(node, criu.dump(pid, dir, to, opts), timeoutMs);
  }

  /** The freezing dump of `pid`'s tree with its pages into `dir` on the node itself (encrypted checkpoints); timed. */
  dumpLocal(
    node: NodeRecord,
    pid: number,
    dir: string,
    opts: Pick<DumpOptions, 'ghostLimitBytes' | 'leaveRunning'>,
    timeoutMs: number,
  ): Promise<TimedResult> {
    return this.runTimed(node, criu.dumpLocal(pid, dir, opts), timeoutMs);
  }

  /** One pre-copy round into `dir` (linked to `prev`), to a page-server at `to` or into local files; timed. */
  preDump(
    node: NodeRecord,
    pid: number,
    dir: string,
    prev: string | undefined,
    timeoutMs: number,
    to?: CriuEndpoint,
    tls?: CriuTlsOptions,
  ): Promise<TimedResult> {
    return this.runTimed(node, live.preDump(pid, dir, prev, to, tls), timeoutMs);
  }

  /** Dirty pages of `pid`'s tree over `windowMs` (soft-dirty bits): `DIRTY_PAGES <pages> <ms>`. */
  sampleDirtyPages(node: NodeRecord, pid: number, windowMs: number): Promise<CommandResult> {
    return this.run(node, live.sampleDirtyPages(pid, windowMs), 60_000);
  }

  // --- restore ---

  /** `criu restore --restore-detached` from `dir`, timed on the node (`RESTORED_PID <pid>`). */
  restore(node: NodeRecord, dir: string, opts: { lazyPages?: boolean }, timeoutMs: number): Promise<TimedResult> {
    return this.runTimed(node, criu.restore(dir, opts), timeoutMs);
  }

  /**
   * The restore with its channel open now, run on fire(). `lazy`: `--lazy-pages` after a local lazy-pages
   * daemon on the destination's own images (`LAZY_DAEMON_FAILED` when that daemon does not start).
   */
  armRestore(node: NodeRecord, dir: string, opts: { lazy?: boolean }, timeoutMs: number): Promise<ArmedCommand> {
    const command = opts.lazy
      ? criu.restore(dir, { lazyPages: true, daemonFirst: live.lazyPagesDaemon(dir) })
      : criu.restore(dir);
    return this.armTimed(node, command, timeoutMs);
  }

  /** The post-copy trial's lazy restore of its probe (untimed: the trial measures pages, not the freeze). */
  restoreProbe(node: NodeRecord, dir: string, timeoutMs: number): Promise<CommandResult> {
    return this.run(node, criu.restore(dir, { lazyPages: true }), timeoutMs);
  }

  // --- post-copy: the lazy dump, the lazy-pages daemon ---

  /** `PORT_FREE` when nothing listens on `port` (CRIU binds its lazy page server only after the freeze). */
  portFree(node: NodeRecord, port: number): Promise<CommandResult> {
    return this.run(node, live.portFree(port), 15_000);
  }

  /** Starts the lazy dump detached; `LAZY_READY <start-ns> <seized-us>`, `LAZY_FAILED` or `LAZY_TIMEOUT`. */
  lazyDumpStart(
    node: NodeRecord,
    pid: number,
    dir: string,
    serve: CriuEndpoint,
    prev: string | undefined,
    timeoutMs: number,
    ghostLimitBytes?: number,
    tls?: CriuTlsOptions,
  ): Promise<CommandResult> {
    const command = live.lazyDumpStart(pid, dir, serve, prev, timeoutMs / 1000, ghostLimitBytes, tls);
    return this.run(node, command, timeoutMs + 30_000);
  }

  /** The lazy dump's end (`LAZY_DONE <rc>`, `LAZY_NONE` when none started), waiting up to `waitS`. */
  lazyDumpWait(node: NodeRecord, dir: string, waitS: number): Promise<CommandResult> {
    return this.run(node, live.lazyDumpWait(dir, waitS), waitS > 0 ? 60_000 : 15_000);
  }

  lazyDumpStop(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, live.lazyDumpStop(dir), 30_000);
  }

  /** The destination's lazy-pages daemon, from the page server at `from` or (without) its own images. */
  lazyPagesDaemon(node: NodeRecord, dir: string, from?: CriuEndpoint, tls?: CriuTlsOptions): Promise<CommandResult> {
    return this.run(node, live.lazyPagesDaemon(dir, from, tls), 60_000);
  }

  /** Waits for the daemon's end: `TRANSFERRED a/b`, `PAGES_END <ns>`, `PAGES_RUNNING`, `ERR` lines. */
  lazyPagesWait(node: NodeRecord, dir: string, timeoutMs: number): Promise<CommandResult> {
    return this.run(node, live.lazyPagesWait(dir, timeoutMs / 1000), timeoutMs + 30_000);
  }

  /** `DAEMON_STARTED` when a lazy-pages daemon was started in `dir`. */
  lazyPagesStarted(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, live.lazyPagesStarted(dir), 15_000);
  }

  lazyPagesStop(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, live.lazyPagesStop(dir), 15_000);
  }

  /** The post-copy trial's probe process, living `lifeS` at most, named `name` (its comm): `PROBE_PID <pid>`. */
  startProbeProcess(node: NodeRecord, lifeS: number, name: string): Promise<CommandResult> {
    return this.run(node, live.startProbeProcess(lifeS, name), 30_000);
  }

  // --- stored checkpoints (image-store-commands) ---

  /** Checks the required files, writes the checksum list, syncs: `MISSING <f>` lines or `STORED_KB <kb>`. */
  sealImages(node: NodeRecord, dir: string, required: readonly string[], checksums: string): Promise<CommandResult> {
    return this.run(node, store.sealImages(dir, required, checksums), 120_000);
  }

  /** Exit 0 when the images still match their checksum list. */
  checkImages(node: NodeRecord, dir: string, checksums: string): Promise<CommandResult> {
    return this.run(node, store.checkImages(dir, checksums), 120_000);
  }

  /** `FILE <bytes> <name>` per regular file of `dir`. */
  listImageFiles(node: NodeRecord, dir: string): Promise<CommandResult> {
    return this.run(node, store.listImageFiles(dir), 30_000);
  }

  /** `IMG <name> <base64>` per named file of `dir`. */
  readImageFiles(node: NodeRecord, dir: string, names: readonly string[]): Promise<CommandResult> {
    return this.run(node, store.readImageFiles(dir, names), 60_000);
  }

  /** `length` bytes of `dir/name` from `offset`, base64. */
  readImageRange(node: NodeRecord, dir: string, name: string, offset: number, length: number): Promise<CommandResult> {
    return this.run(node, store.readImageRange(dir, name, offset, length), 60_000);
  }

  /** Encrypts `dir`'s images in place with `dataKey` (stdin, never argv); prints their `sha256sum` lines. */
  encryptImages(node: NodeRecord, dir: string, dataKey: string): Promise<CommandResult> {
    return this.run(node, store.encryptImages(dir), 10 * 60_000, `${dataKey}\n`);
  }

  /** Checks `dir` against `sums`, then decrypts it in place with `dataKey` (both on stdin). */
  decryptImages(node: NodeRecord, dir: string, dataKey: string, sums: string): Promise<CommandResult> {
    return this.run(node, store.decryptImages(dir), 10 * 60_000, `${dataKey}\n${sums.trim()}\n`);
  }

  /** The stored checkpoint as a Podman-layout tar on stdout; `stdin`: the metadata files, `name base64` lines. */
  exportArchive(
    node: NodeRecord,
    dir: string,
    stageDir: string,
    names: readonly string[],
    stdin: string,
  ): Promise<RemoteProcess> {
    return this.stream(node, store.exportArchive(dir, stageDir, names), stdin);
  }

  /** A stored file of `dir` on stdout (a container checkpoint's archive). */
  sendImageFile(node: NodeRecord, dir: string, name: string): Promise<RemoteProcess> {
    return this.stream(node, store.sendImageFile(dir, name), '');
  }

  /** Unpacks the named members of `dir/archive` into `dir/into`, with `archive.sha256` written last. */
  extractArchiveMembers(
    node: NodeRecord,
    dir: string,
    archive: { name: string; sha256: string },
    into: string,
    names: readonly string[],
    timeoutMs: number,
  ): Promise<CommandResult> {
    return this.run(node, store.extractArchiveMembers(dir, archive.name, into, names, archive.sha256), timeoutMs);
  }

  /**
   * Unpacks the ciphertext tar the caller writes to stdin into `dir/part`, renamed to `dir/into` once `sums` came
   * last (an encrypted container checkpoint's images for inspection; the caller ends stdin, `done` says how).
   */
  receiveArchiveMembers(
    node: NodeRecord,
    dir: string,
    part: string,
    into: string,
    sums: string,
  ): Promise<RemoteProcess> {
    return this.streamIn(node, store.receiveArchiveMembers(dir, part, into, sums));
  }

  // --- declared files (file-sync-commands) ---

  /** On the source: `MISSING` or `SIZE <KiB>` per declared path, and the login's home. */
  inspectPaths(node: NodeRecord, paths: readonly string[]): Promise<CommandResult> {
    return this.run(node, inspectPaths(paths), 60_000);
  }

  /** On the destination: the free and held KiB for each declared path, and the login's home. */
  freeSpace(node: NodeRecord, paths: readonly string[]): Promise<CommandResult> {
    return this.run(node, freeSpaceFor(paths), 60_000);
  }
}
