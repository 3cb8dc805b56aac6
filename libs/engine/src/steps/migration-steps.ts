import type { DumpStats, FileSyncRound, PhaseRecord } from '@spotlift/domain';
import type { WorkloadRepository } from '@spotlift/store';
import type { ArmedStream, StreamResult } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { ArmedCommand, NodeOps } from '../node-ops/node-ops.js';
import type { WorkloadFiles } from '../files/workload-files.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import { setIdentity } from '../process-inspection.js';
import { refuseStaleRun, saveWorkloadFields } from '../workload-writes.js';
import { ownerMarker } from '../sweeper/owner-marker.js';
import {
  checkCpuCompatible,
  checkCriuVersions,
  checkDestinationResources,
  checkDestinationState,
  runningTree,
} from './preflight-checks.js';

const RUNNING_STATES = new Set(['R', 'S', 'D']);

/** The final file copy, for a transfer phase's detail (empty without declared files). */
function describeFiles(files: FileSyncRound | undefined): string {
  return files ? `; files: ${files.sent} entries, ${files.bytes} bytes, ${files.deleted} removed` : '';
}

/** A lazy restore's local lazy-pages daemon did not start; nothing was restored, the images are intact. */
export class LazyDaemonFailed extends MigrationStepError {
  constructor(message: string) {
    super('restore', message, false);
  }
}

/**
 * The steps every strategy shares: preflight before any freeze, restore, verification, the commit point,
 * and CRIU's stats. Strategies differ only in how memory gets to the destination.
 */
/** How long a page-server may take to close its images after its dump disconnected (normally a few ms). */
const PAGE_SERVER_EXIT_MS = 10_000;

export class MigrationSteps {
  constructor(
    private readonly ops: NodeOps,
    private readonly phases: PhaseRecorder,
    private readonly workloads: WorkloadRepository,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
    /** The workload's declared files (absent where nothing streams them, e.g. a bare engine in a unit test). */
    private readonly files?: WorkloadFiles,
  ) {}

  /**
   * Everything checkable without touching the workload: the destination's state, CRIU version order, the
   * workload still there, `criu check`, memory and disk on the destination, CPU compatibility, the declared
   * files. Cheap checks from the records come first. Returns the source tree's pids; says on `phase` whether `criu check` ran.
   */
  async preflight(ctx: MigrationContext, phase?: PhaseRecord): Promise<number[]> {
    const { workload, source, destination } = ctx;
    checkDestinationState(destination);
    checkCriuVersions(source, destination);
    const tree = await runningTree(this.ops, ctx);
    // Independent checks on the two nodes, at once: each is a few SSH round trips, and preflight is part of
    // every evacuation's notice-to-freeze time.
    const [criuCheck, files] = await Promise.all([
      checkDestinationResources(this.ops, ctx, tree, this.config, this.clock.now()),
      this.files?.check(ctx),
      checkCpuCompatible(this.ops, ctx, this.migrationDir(ctx)),
    ]);
    if (phase) phase.detail = files ? `${criuCheck}; ${files}` : criuCheck;
    workload.tree = tree.pids;
    workload.rssBytes = tree.rssBytes;
    return tree.pids;
  }

  /** `<imageRoot>/<migration id>` on every node: everything the migration writes lives below it. */
  migrationDir(ctx: MigrationContext): string {
    return `${this.config.imageRoot}/${ctx.migration.id}`;
  }

  async makeDirs(ctx: MigrationContext): Promise<void> {
    await Promise.all([
      this.ops.makeDir(ctx.source, ctx.sourceDir, JSON.stringify(ownerMarker(ctx, 'source', this.clock.now()))),
      this.ops.makeDir(
        ctx.destination,
        ctx.destinationDir,
        JSON.stringify(ownerMarker(ctx, 'destination', this.clock.now())),
      ),
    ]);
  }

  /**
   * The 'transfer' phase inside the freeze: the image files (`images` starts their stream) and the last
   * changes of the workload's declared files (armed before the freeze), side by side. A failure of either
   * is a transfer failure: the source is resumed.
   */
  async transfer(
    ctx: MigrationContext,
    images: () => Promise<StreamResult>,
    filesArmed: ArmedStream | undefined,
  ): Promise<StreamResult> {
    const r = await this.phases.run(ctx.migration, 'transfer', async (phase) => {
      const [r, files] = await Promise.all([
        images().catch((e: Error) => {
          throw new MigrationStepError('transfer', e.message, false);
        }),
        filesArmed ? this.files?.final(ctx, filesArmed) : undefined,
      ]);
      phase.detail = `${r.bytes} bytes of image files, sha256 verified on ${ctx.destination.id}${describeFiles(files)}`;
      return r;
    });
    ctx.migration.bytes.images = r.bytes;
    return r;
  }

  /** Marks the workload as migrating: from here on a failure means rollback. */
  async markMigrating(ctx: MigrationContext): Promise<void> {
    ctx.workload.state = 'migrating';
    await saveWorkloadFields(this.workloads, ctx.workload, ['state', 'tree', 'rssBytes']);
  }

  /** Restores detached on the destination; returns the node-side time the tree was running. */
  async restore(ctx: MigrationContext, opts: { lazyPages?: boolean; armed?: ArmedCommand } = {}): Promise<bigint> {
    const { destination, migration } = ctx;
    const res = opts.armed
      ? await opts.armed.fire()
      : await this.ops.restore(destination, ctx.destinationDir, opts, this.config.criuTimeoutMs);
    const pid = Number(/RESTORED_PID (\d+)/.exec(res.stdout)?.[1] ?? NaN);
    if (/^LAZY_DAEMON_FAILED/m.test(res.stdout)) {
      const log = await this.ops.tail(destination, `${ctx.destinationDir}/lazy-pages.log`, 200);
      throw new LazyDaemonFailed(criu.explainFailure('lazy-pages', destination.id, log || res.stderr, res.code));
    }
    if (res.code !== 0 || !Number.isInteger(pid) || res.endNs === undefined) {
      const log = await this.ops.tail(destination, `${ctx.destinationDir}/restore.log`, 200);
      throw new MigrationStepError(
        'restore',
        criu.explainFailure('restore', destination.id, log || res.stderr, res.code),
        false,
      );
    }
    migration.restoredPid = pid;
    return res.endNs;
  }

  /**
   * The restore command with its channel already open on the destination (see NodeOps.armRestore). `lazy`: with
   * `--lazy-pages`, after starting a local lazy-pages daemon on the destination's own images (pre-copy's lazy
   * restore); a daemon that does not start makes `restore` throw {@link LazyDaemonFailed}.
   */
  armRestore(ctx: MigrationContext, opts: { lazy?: boolean } = {}): Promise<ArmedCommand> {
    return this.ops.armRestore(ctx.destination, ctx.destinationDir, opts, this.config.criuTimeoutMs);
  }

  async verify(ctx: MigrationContext, expectedTasks: number): Promise<void> {
    const pid = ctx.migration.restoredPid;
    const fail = (msg: string) => new MigrationStepError('verify', msg, false);
    if (!pid) throw fail('no restored pid was recorded');
    const tree = await this.ops.inspectTree(ctx.destination, pid);
    const state = await this.ops.processState(ctx.destination, pid);
    if (!tree || !RUNNING_STATES.has(state)) {
      throw fail(`restored pid ${pid} on ${ctx.destination.id} is not running (state ${state})`);
    }
    if (tree.pids.length !== expectedTasks) {
      throw fail(`restored tree has ${tree.pids.length} processes, the source had ${expectedTasks}`);
    }
    ctx.restoredIdentity = tree.root?.identity;
  }

  /** The commit point: the destination runs verified, so the frozen source is killed and the workload moves. */
  async commit(ctx: MigrationContext): Promise<void> {
    const { migration, workload, source, destination } = ctx;
    await this.phases.run(migration, 'commit', async (phase) => {
      // A commit that already happened (a job run again from a stale copy of its migration, e.g. a journal
      // written back after Redis came back empty): the workload record names the restored pid on the
      // destination. Killing "the source pid" then would kill that pid on the source node, which is not the
      // workload any more (in the lab, where nodes share a pid namespace, it was the restored copy itself).
      if (
        workload.nodeId === destination.id &&
        migration.restoredPid !== undefined &&
        workload.pid === migration.restoredPid
      ) {
        phase.detail = `already committed: the workload runs as pid ${workload.pid} on ${destination.id}; nothing killed`;
        return;
      }
      await refuseStaleRun(this.workloads, ctx, `kills nothing (pid ${workload.pid} on ${source.id} is not killed)`);
      const state = await this.ops.killTree(source, workload.pid);
      if (state !== 'gone')
        throw new Error(`the frozen source pid ${workload.pid} on ${source.id} did not die (state ${state})`);
      workload.nodeId = destination.id;
      workload.pid = migration.restoredPid ?? workload.pid;
      // A new process: its own identity (the registration index follows the save), none if unread.
      setIdentity(workload, ctx.restoredIdentity);
      workload.state = 'running';
      workload.updatedAt = this.clock.now().toISOString();
      await saveWorkloadFields(this.workloads, workload, ['nodeId', 'pid', 'state', 'updatedAt', 'identity']);
      phase.detail = `source pid killed on ${source.id}; workload runs as pid ${workload.pid} on ${destination.id}`;
    });
  }

  /**
   * Recovery after a dead worker: when the destination already runs a verified restored tree, finish the
   * commit instead of rolling back. Returns false when there is no such tree (the caller rolls back); an
   * unreachable node throws, since nothing can be decided without it.
   */
  async adoptRestored(ctx: MigrationContext): Promise<boolean> {
    const pid = await this.ops.readPidfile(ctx.destination, `${ctx.destinationDir}/restored.pid`);
    if (pid === undefined) return false;
    ctx.migration.restoredPid = pid;
    try {
      await this.phases.run(ctx.migration, 'verify', () => this.verify(ctx, ctx.workload.tree?.length ?? 1));
    } catch (error) {
      if (error instanceof MigrationStepError) return false;
      throw error;
    }
    await this.commit(ctx);
    return true;
  }

  /**
   * CRIU's own stats, and downtime from node-side timestamps: `frozenAt` gives when the source stopped
   * running (on its clock, possibly from the dump's stats), `resumedNs` when the restored tree ran. Runs
   * after the commit point, so it never throws: a missing, truncated or corrupt stats image is recorded in
   * `statsProblem` and the freeze start falls back to `dumpStartNs`, the dump command's start on the source
   * (an upper bound of the downtime, since CRIU freezes a moment after it starts).
   */
  async recordStats(
    ctx: MigrationContext,
    frozenAt: (dump: DumpStats | undefined) => bigint,
    resumedNs: bigint,
    dumpStartNs?: bigint,
  ): Promise<void> {
    const { migration } = ctx;
    const problems: string[] = [];
    const [dump, restore] = await Promise.all([
      this.readStats(ctx.source, `${ctx.sourceDir}/stats-dump`, criu.parseDump, problems),
      this.readStats(ctx.destination, `${ctx.destinationDir}/stats-restore`, criu.parseRestore, problems),
    ]);
    migration.criu = { ...migration.criu, ...(dump ? { dump } : {}), ...(restore ? { restore } : {}) };
    if (dump) migration.bytes.pages = dump.pagesWritten * 4096;
    let frozenNs = frozenAt(dump);
    if (dump && dumpStartNs !== undefined && frozenNs < dumpStartNs) {
      // CRIU's figures say the freeze began before the dump command did: the image cannot be right.
      problems.push(
        `stats-dump claims a freeze of ${dump.frozenTimeUs + dump.freezingTimeUs} µs, longer than the dump command ran`,
      );
      frozenNs = dumpStartNs;
    } else if (!dump && dumpStartNs !== undefined) {
      frozenNs = dumpStartNs;
    }
    if (problems.length) {
      const fallback =
        dumpStartNs !== undefined
          ? 'downtime counts from the dump command start on the source node'
          : 'downtime excludes the freeze during the dump';
      migration.statsProblem = `${problems.join('; ')}; ${fallback}`;
    }
    migration.frozenAt = new Date(Number(frozenNs / 1_000_000n)).toISOString();
    migration.resumedAt = new Date(Number(resumedNs / 1_000_000n)).toISOString();
    migration.downtimeMs = Number(resumedNs - frozenNs) / 1e6;
    await this.phases.save(migration);
  }

  /**
   * Stats for a migration finished by recovery: the worker that ran dump and restore died with their node-side
   * timestamps, so the stats images' own modification times stand in (CRIU writes each as its command ends).
   */
  async recordStatsFromFiles(ctx: MigrationContext): Promise<void> {
    const mtime = (node: MigrationContext['source'], path: string) =>
      this.ops.fileMtimeNs(node, path).catch(() => undefined);
    const [dumpEnd, restoreEnd] = await Promise.all([
      mtime(ctx.source, `${ctx.sourceDir}/stats-dump`),
      mtime(ctx.destination, `${ctx.destinationDir}/stats-restore`),
    ]);
    if (dumpEnd === undefined || restoreEnd === undefined) {
      ctx.migration.statsProblem = 'the stats images of the recovered migration are missing: no downtime figure';
      return;
    }
    await this.recordStats(ctx, (stats) => this.frozenAtFromDump(dumpEnd, stats), restoreEnd);
  }

  private async readStats<T>(
    node: MigrationContext['source'],
    path: string,
    parse: (buf: Uint8Array) => T,
    problems: string[],
  ): Promise<T | undefined> {
    const name = path.split('/').pop();
    try {
      const img = await this.ops.readFile(node, path);
      if (!img) {
        problems.push(`${name} is missing on ${node.id}`);
        return undefined;
      }
      return parse(img);
    } catch (error) {
      problems.push(`${name} on ${node.id} is unreadable: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** Freeze start of a `--leave-stopped` dump: CRIU's frozen time runs until the dump ends. */
  frozenAtFromDump(dumpEndNs: bigint, stats: DumpStats | undefined): bigint {
    const frozenUs = stats ? BigInt(stats.frozenTimeUs + stats.freezingTimeUs) : 0n;
    return dumpEndNs - frozenUs * 1000n;
  }

  /**
   * After a dump or pre-dump to a page-server returned 0: the server's images are complete only once it exited
   * (see `criu.awaitPageServerExit`). A server that does not exit leaves images nothing may restore from.
   */
  async pageServerFinished(ctx: MigrationContext, dir: string, phase: 'dump' | 'precopy'): Promise<void> {
    const res = await this.ops.awaitPageServerExit(ctx.destination, dir, PAGE_SERVER_EXIT_MS);
    if (res.code !== 0) {
      throw new MigrationStepError(
        phase,
        `the page-server on ${ctx.destination.id} did not finish writing the images in ${dir} within ${PAGE_SERVER_EXIT_MS} ms after the dump; they cannot be restored from`,
        false,
      );
    }
  }

  pickPort(): number {
    const { pageServerPortMin: lo, pageServerPortMax: hi } = this.config;
    return lo + Math.floor(Math.random() * (hi - lo + 1));
  }
}
