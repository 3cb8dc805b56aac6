import type { ArmedStream, DirectoryStreamer } from '@spotlift/transport';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import type { PageChannel } from '../transports/page-transport.port.js';
import type { PageTransports } from '../transports/page-transports.js';
import { measureThroughput } from '../transports/throughput.js';
import { FILE_SYNC_STATE_DIR } from '../node-ops/file-sync-commands.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import type { StrategyDeps } from './strategy-deps.js';
import type { WorkloadFiles } from '../files/workload-files.js';
import { OWNER_MARKER_FILE } from '../sweeper/owner-marker.js';

/**
 * Stop-and-copy: the page-server waits on the destination, the source is dumped with --leave-stopped while
 * its pages stream to that page-server, the remaining image files follow as one tar stream, the destination
 * restores detached, and only a verified running tree lets the source be killed (the commit point).
 */
export class StopAndCopy implements MigrationStrategy {
  readonly name = 'stop-and-copy' as const;

  private readonly ops: NodeOps;
  private readonly phases: PhaseRecorder;
  private readonly config: EngineConfig;
  private readonly steps: MigrationSteps;
  private readonly streamer: DirectoryStreamer;
  private readonly transports: PageTransports;
  private readonly files: WorkloadFiles | undefined;

  constructor(deps: StrategyDeps) {
    this.ops = deps.ops;
    this.phases = deps.phases;
    this.config = deps.config;
    this.steps = deps.steps;
    this.streamer = deps.streamer;
    this.transports = deps.transports;
    this.files = deps.files;
  }

  async run(ctx: MigrationContext): Promise<void> {
    const { migration, source, destination } = ctx;
    const phases = this.phases;
    const tree = await phases.run(migration, 'preflight', (phase) => this.steps.preflight(ctx, phase));
    const { channel, transferArmed, restoreArmed } = await phases.run(migration, 'prepare', async () => {
      const channel = await this.prepare(ctx);
      // Every channel the freeze window needs is opened now: the image stream and the restore command
      // wait on the nodes for a go line instead of paying channel opens while the workload is frozen.
      const transferArmed = await this.streamer.arm(source, ctx.sourceDir, destination, ctx.destinationDir, {
        exclude: ['./*.log', `./${FILE_SYNC_STATE_DIR}`, `./${OWNER_MARKER_FILE}`],
      });
      const restoreArmed = await this.steps.armRestore(ctx);
      return { channel, transferArmed, restoreArmed };
    });
    let filesArmed: ArmedStream | undefined;
    try {
      await this.files?.presync(ctx);
      filesArmed = await this.files?.armFinal(ctx);
      await this.steps.markMigrating(ctx);
      const dumped = await phases.run(migration, 'dump', () => this.dump(ctx, channel));
      // the workload's files (the changes since the last copy) travel next to the image files
      const transfer = await this.steps.transfer(ctx, () => transferArmed.start(), filesArmed);
      const resumedNs = await phases.run(migration, 'restore', () => this.steps.restore(ctx, { armed: restoreArmed }));
      await phases.run(migration, 'verify', () => this.steps.verify(ctx, tree.length));
      await this.steps.commit(ctx);
      await this.steps.recordStats(
        ctx,
        (stats) => this.steps.frozenAtFromDump(dumped.endNs, stats),
        resumedNs,
        dumped.startNs,
      );
      const dumpMs = migration.phases.findLast((p) => p.name === 'dump')?.durationMs;
      migration.throughput = measureThroughput(migration, { dumpMs, imagesMs: transfer.durationMs });
      await phases.save(migration);
    } finally {
      // armed commands that were used ignore the cancel
      await Promise.allSettled([transferArmed.cancel(), restoreArmed.cancel(), filesArmed?.cancel()]);
      await channel.close();
    }
  }

  /**
   * Image directories on both nodes and a page-server listening on the destination, before any freeze.
   * Also the checkpoint flow's (libs/engine checkpoint/), whose destination is the storage node.
   */
  async prepare(ctx: MigrationContext, parent?: string): Promise<PageChannel> {
    const { destination } = ctx;
    await this.steps.makeDirs(ctx);
    // The transport the migration asked for (tcp, tls, ssh); an unconfigured one fails before any freeze.
    const transport = this.transports.pick(ctx.migration.transport);
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const channel = await transport.open(ctx, this.steps.pickPort());
      ctx.migration.transport = transport.name;
      // `parent`: an incremental guard checkpoint's page-server links its images to the parent's (`../<id>`),
      // which is what tells the dump side that only pages dirtied since then need to go.
      const res = parent
        ? await this.ops.startPageServerWithParent(
            destination,
            ctx.destinationDir,
            channel.listen,
            parent,
            channel.tls?.server,
          )
        : await this.ops.startPageServer(destination, ctx.destinationDir, channel.listen, channel.tls?.server);
      if (res.code === 0) return channel;
      await channel.close();
      lastError = (await this.ops.tail(destination, `${ctx.destinationDir}/page-server.log`, 200)) || res.stderr;
      if (!/Address already in use/.test(lastError)) break;
    }
    throw new MigrationStepError('prepare', criu.explainFailure('page-server', destination.id, lastError, null), true);
  }

  /** Node-side times of the dump command: the end anchors CRIU's frozen time, the start is the fallback. */
  async dump(
    ctx: MigrationContext,
    channel: PageChannel,
    opts: { leaveRunning?: boolean; trackMem?: boolean; prev?: string } = {},
  ): Promise<{ startNs?: bigint; endNs: bigint }> {
    const { source, workload } = ctx;
    const res = await this.ops.dump(
      source,
      workload.pid,
      ctx.sourceDir,
      channel.connect,
      {
        ...(channel.tls ? { tls: channel.tls.client } : {}),
        ...(opts.leaveRunning ? { leaveRunning: true } : {}),
        ...(opts.trackMem ? { trackMem: true } : {}),
        ...(opts.prev ? { prev: opts.prev } : {}),
        ghostLimitBytes: this.config.ghostLimitBytes,
      },
      this.config.criuTimeoutMs,
    );
    const relayed = channel.bytesRelayed?.();
    if (relayed !== undefined) ctx.migration.bytes.relayed = relayed;
    if (res.code !== 0 || res.endNs === undefined) {
      const log = await this.ops.tail(source, `${ctx.sourceDir}/dump.log`, 200);
      const error = criu.dumpFailure('dump', source.id, log || res.stderr, res.code);
      channel.failed?.(error);
      throw error;
    }
    await this.steps.pageServerFinished(ctx, ctx.destinationDir, 'dump');
    return { ...(res.startNs === undefined ? {} : { startNs: res.startNs }), endNs: res.endNs };
  }
}
