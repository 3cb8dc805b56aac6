import type { DumpStats, RestoreStats } from '@spotlift/domain';
import type { WorkloadRepository } from '@spotlift/store';
import type { Clock } from '../clock.js';
import * as criu from '../criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';

const RUNNING_STATES = new Set(['R', 'S', 'D']);

/**
 * The steps every strategy shares: preflight before any freeze, restore, verification, the commit point,
 * and CRIU's stats. Strategies differ only in how memory gets to the destination.
 */
export class MigrationSteps {
  constructor(
    readonly ops: NodeOps,
    readonly phases: PhaseRecorder,
    private readonly workloads: WorkloadRepository,
    private readonly clock: Clock,
    readonly config: EngineConfig,
  ) {}

  /** Everything checkable without touching the workload. Returns the source tree's pids. */
  async preflight(ctx: MigrationContext): Promise<number[]> {
    const { workload, source, destination } = ctx;
    const fail = (msg: string) => new MigrationStepError('preflight', msg, true);
    if (destination.state === 'terminating' || destination.state === 'gone') {
      throw fail(`destination ${destination.id} is ${destination.state}`);
    }
    const tree = await this.ops.inspectTree(source, workload.pid);
    if (!tree) throw fail(`workload '${workload.name}' (pid ${workload.pid}) no longer runs on ${source.id}`);
    const check = await this.ops.run(destination, criu.checkAndMemory(), 60_000);
    if (!/Looks good/.test(check.stdout + check.stderr)) {
      throw fail(`CRIU does not work on ${destination.id}: ${(check.stderr || check.stdout).trim().slice(0, 300)}`);
    }
    const availableKb = Number(/MEM_AVAILABLE_KB (\d+)/.exec(check.stdout)?.[1] ?? '0');
    const needed = tree.rssBytes * (1 + this.config.memoryHeadroom);
    if (availableKb * 1024 < needed) {
      throw fail(
        `${destination.id} has ${Math.round(availableKb / 1024)} MiB available, the workload needs ${Math.round(needed / 2 ** 20)} MiB`,
      );
    }
    workload.tree = tree.pids;
    workload.rssBytes = tree.rssBytes;
    return tree.pids;
  }

  async makeDirs(ctx: MigrationContext): Promise<void> {
    await Promise.all([
      this.ops.makeDir(ctx.source, ctx.sourceDir),
      this.ops.makeDir(ctx.destination, ctx.destinationDir),
    ]);
  }

  /** Marks the workload as migrating: from here on a failure means rollback. */
  async markMigrating(ctx: MigrationContext): Promise<void> {
    ctx.workload.state = 'migrating';
    await this.workloads.save(ctx.workload);
  }

  /** Restores detached on the destination; returns the node-side time the tree was running. */
  async restore(ctx: MigrationContext, opts: { lazyPages?: boolean } = {}): Promise<bigint> {
    const { destination, migration } = ctx;
    const res = await this.ops.runTimed(destination, criu.restore(ctx.destinationDir, opts), this.config.criuTimeoutMs);
    const pid = Number(/RESTORED_PID (\d+)/.exec(res.stdout)?.[1] ?? NaN);
    if (res.code !== 0 || !Number.isInteger(pid) || res.endNs === undefined) {
      const log = await this.ops.tail(destination, `${ctx.destinationDir}/restore.log`, 200);
      throw new MigrationStepError('restore', criu.explainFailure('restore', destination.id, log || res.stderr, res.code), false);
    }
    migration.restoredPid = pid;
    return res.endNs;
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
  }

  /** The commit point: the destination runs verified, so the frozen source is killed and the workload moves. */
  async commit(ctx: MigrationContext): Promise<void> {
    const { migration, workload, source, destination } = ctx;
    await this.phases.run(migration, 'commit', async (phase) => {
      const state = await this.ops.killTree(source, workload.pid);
      if (state !== 'gone') throw new Error(`the frozen source pid ${workload.pid} on ${source.id} did not die (state ${state})`);
      workload.nodeId = destination.id;
      workload.pid = migration.restoredPid ?? workload.pid;
      workload.state = 'running';
      workload.updatedAt = this.clock.now().toISOString();
      await this.workloads.save(workload);
      phase.detail = `source pid killed on ${source.id}; workload runs as pid ${workload.pid} on ${destination.id}`;
    });
  }

  /**
   * Recovery after a dead worker: when the destination already runs a verified restored tree, finish the
   * commit instead of rolling back. Returns false otherwise (the caller rolls back).
   */
  async adoptRestored(ctx: MigrationContext): Promise<boolean> {
    const pidText = (
      await this.ops.run(ctx.destination, `cat ${ctx.destinationDir}/restored.pid 2>/dev/null; true`, 15_000)
    ).stdout.trim();
    const pid = Number(pidText);
    if (!pidText || !Number.isInteger(pid)) return false;
    ctx.migration.restoredPid = pid;
    try {
      await this.phases.run(ctx.migration, 'verify', () => this.verify(ctx, ctx.workload.tree?.length ?? 1));
    } catch {
      return false;
    }
    await this.commit(ctx);
    return true;
  }

  /**
   * CRIU's own stats, and downtime from node-side timestamps: `frozenAt` gives when the source stopped
   * running (on its clock, possibly from the dump's stats), `resumedNs` when the restored tree ran.
   */
  async recordStats(
    ctx: MigrationContext,
    frozenAt: (dump: DumpStats | undefined) => bigint,
    resumedNs: bigint,
  ): Promise<void> {
    const { migration } = ctx;
    const [dumpImg, restoreImg] = await Promise.all([
      this.ops.readFile(ctx.source, `${ctx.sourceDir}/stats-dump`),
      this.ops.readFile(ctx.destination, `${ctx.destinationDir}/stats-restore`),
    ]);
    const dump: DumpStats | undefined = dumpImg ? criu.parseDump(dumpImg) : undefined;
    const restore: RestoreStats | undefined = restoreImg ? criu.parseRestore(restoreImg) : undefined;
    migration.criu = { ...migration.criu, ...(dump ? { dump } : {}), ...(restore ? { restore } : {}) };
    migration.bytes.pages = (dump?.pagesWritten ?? 0) * 4096;
    const frozenNs = frozenAt(dump);
    migration.frozenAt = new Date(Number(frozenNs / 1_000_000n)).toISOString();
    migration.resumedAt = new Date(Number(resumedNs / 1_000_000n)).toISOString();
    migration.downtimeMs = Number(resumedNs - frozenNs) / 1e6;
    await this.phases.save(migration);
  }

  /** Freeze start of a `--leave-stopped` dump: CRIU's frozen time runs until the dump ends. */
  frozenAtFromDump(dumpEndNs: bigint, stats: DumpStats | undefined): bigint {
    const frozenUs = stats ? BigInt(stats.frozenTimeUs + stats.freezingTimeUs) : 0n;
    return dumpEndNs - frozenUs * 1000n;
  }

  pickPort(): number {
    const { pageServerPortMin: lo, pageServerPortMax: hi } = this.config;
    return lo + Math.floor(Math.random() * (hi - lo + 1));
  }
}
