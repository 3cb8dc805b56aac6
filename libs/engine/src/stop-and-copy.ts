import type { DumpStats, RestoreStats } from '@spotlift/domain';
import type { WorkloadRepository } from '@spotlift/store';
import type { DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from './clock.js';
import * as criu from './criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from './engine.types.js';
import type { NodeOps } from './node-ops.js';
import type { PhaseRecorder } from './phase-recorder.js';

const RUNNING_STATES = new Set(['R', 'S', 'D']);

/**
 * Stop-and-copy: the page-server waits on the destination, the source is dumped with --leave-stopped while
 * its pages stream to that page-server, the remaining image files follow as one tar stream, the destination
 * restores detached, and only a verified running tree lets the source be killed (the commit point).
 */
export class StopAndCopy {
  constructor(
    private readonly ops: NodeOps,
    private readonly streamer: DirectoryStreamer,
    private readonly phases: PhaseRecorder,
    private readonly workloads: WorkloadRepository,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
  ) {}

  async run(ctx: MigrationContext): Promise<void> {
    const { migration, source, destination } = ctx;
    const tree = await this.phases.run(migration, 'preflight', () => this.preflight(ctx));
    const port = await this.phases.run(migration, 'prepare', () => this.prepare(ctx));

    ctx.workload.state = 'migrating';
    await this.workloads.save(ctx.workload);
    const dumpEndNs = await this.phases.run(migration, 'dump', () => this.dump(ctx, port));
    const transfer = await this.phases.run(migration, 'transfer', (phase) => this.streamer
      .copy(source, ctx.sourceDir, destination, ctx.destinationDir, { exclude: ['./*.log'] })
      .then((r) => {
        phase.detail = `${r.bytes} bytes of image files, sha256 verified on ${destination.id}`;
        return r;
      })
      .catch((e: Error) => {
        throw new MigrationStepError('transfer', e.message, false);
      }));
    migration.bytes.images = transfer.bytes;
    const resumedNs = await this.phases.run(migration, 'restore', () => this.restore(ctx));
    await this.phases.run(migration, 'verify', () => this.verify(ctx, tree.length));
    await this.commit(ctx);
    await this.recordStats(ctx, dumpEndNs, resumedNs);
  }

  private async preflight(ctx: MigrationContext): Promise<number[]> {
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
      throw fail(`${destination.id} has ${Math.round(availableKb / 1024)} MiB available, the workload needs ${Math.round(needed / 2 ** 20)} MiB`);
    }
    workload.tree = tree.pids;
    workload.rssBytes = tree.rssBytes;
    return tree.pids;
  }

  /** Image directories on both nodes and a page-server listening on the destination, before any freeze. */
  private async prepare(ctx: MigrationContext): Promise<number> {
    const { source, destination } = ctx;
    await Promise.all([this.ops.makeDir(source, ctx.sourceDir), this.ops.makeDir(destination, ctx.destinationDir)]);
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = this.pickPort();
      const res = await this.ops.run(destination, criu.pageServer(ctx.destinationDir, dataAddress(destination), port), 30_000);
      if (res.code === 0) return port;
      lastError = (await this.ops.tail(destination, `${ctx.destinationDir}/page-server.log`, 200)) || res.stderr;
      if (!/Address already in use/.test(lastError)) break;
    }
    throw new MigrationStepError('prepare', criu.explainFailure('page-server', destination.id, lastError, null), true);
  }

  private async dump(ctx: MigrationContext, port: number): Promise<bigint> {
    const { source, destination, workload } = ctx;
    const res = await this.ops.runTimed(
      source,
      criu.dump(workload.pid, ctx.sourceDir, dataAddress(destination), port),
      this.config.criuTimeoutMs,
    );
    if (res.code !== 0 || res.endNs === undefined) {
      const log = await this.ops.tail(source, `${ctx.sourceDir}/dump.log`, 200);
      throw new MigrationStepError('dump', criu.explainFailure('dump', source.id, log || res.stderr, res.code), false);
    }
    return res.endNs;
  }

  private async restore(ctx: MigrationContext): Promise<bigint> {
    const { destination, migration } = ctx;
    const res = await this.ops.runTimed(destination, criu.restore(ctx.destinationDir), this.config.criuTimeoutMs);
    const pid = Number(/RESTORED_PID (\d+)/.exec(res.stdout)?.[1] ?? NaN);
    if (res.code !== 0 || !Number.isInteger(pid) || res.endNs === undefined) {
      const log = await this.ops.tail(destination, `${ctx.destinationDir}/restore.log`, 200);
      throw new MigrationStepError('restore', criu.explainFailure('restore', destination.id, log || res.stderr, res.code), false);
    }
    migration.restoredPid = pid;
    return res.endNs;
  }

  private async verify(ctx: MigrationContext, expectedTasks: number): Promise<void> {
    const pid = ctx.migration.restoredPid;
    const fail = (msg: string) => new MigrationStepError('verify', msg, false);
    if (!pid) throw fail('no restored pid was recorded');
    const tree = await this.ops.inspectTree(ctx.destination, pid);
    const state = await this.ops.processState(ctx.destination, pid);
    if (!tree || !RUNNING_STATES.has(state)) throw fail(`restored pid ${pid} on ${ctx.destination.id} is not running (state ${state})`);
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
   * commit instead of rolling back. Returns false (after killing any half-restored tree) otherwise.
   */
  async adoptRestored(ctx: MigrationContext): Promise<boolean> {
    const pidText = (await this.ops.run(ctx.destination, `cat ${ctx.destinationDir}/restored.pid 2>/dev/null; true`, 15_000)).stdout.trim();
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

  /** CRIU's own stats, and downtime from node-side timestamps: freeze start to the restored tree running. */
  private async recordStats(ctx: MigrationContext, dumpEndNs: bigint, resumedNs: bigint): Promise<void> {
    const { migration } = ctx;
    const [dumpImg, restoreImg] = await Promise.all([
      this.ops.readFile(ctx.source, `${ctx.sourceDir}/stats-dump`),
      this.ops.readFile(ctx.destination, `${ctx.destinationDir}/stats-restore`),
    ]);
    const dump: DumpStats | undefined = dumpImg ? criu.parseDump(dumpImg) : undefined;
    const restore: RestoreStats | undefined = restoreImg ? criu.parseRestore(restoreImg) : undefined;
    migration.criu = { ...(dump ? { dump } : {}), ...(restore ? { restore } : {}) };
    migration.bytes.pages = (dump?.pagesWritten ?? 0) * 4096;
    // With --leave-stopped CRIU's frozen time runs until the dump ends, so the freeze began that long (plus
    // the freezing ramp) before the dump's end, on the source's clock.
    const frozenUs = dump ? BigInt(dump.frozenTimeUs + dump.freezingTimeUs) : 0n;
    const frozenNs = dumpEndNs - frozenUs * 1000n;
    migration.frozenAt = new Date(Number(frozenNs / 1_000_000n)).toISOString();
    migration.resumedAt = new Date(Number(resumedNs / 1_000_000n)).toISOString();
    migration.downtimeMs = Number(resumedNs - frozenNs) / 1e6;
    await this.phases.save(migration);
  }

  private pickPort(): number {
    const { pageServerPortMin: lo, pageServerPortMax: hi } = this.config;
    return lo + Math.floor(Math.random() * (hi - lo + 1));
  }
}

function dataAddress(node: { host: string; dataAddress?: string }): string {
  return node.dataAddress ?? node.host;
}
