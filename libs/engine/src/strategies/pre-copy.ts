import type { ArmedStream, DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../criu-commands.js';
import { type MigrationContext, MigrationStepError } from '../engine.types.js';
import * as live from '../live-commands.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import type { PageTransports } from '../transports/page-transports.js';
import type { LiveConfig } from './live-config.js';
import { FILE_SYNC_STATE_DIR } from '../files/file-sync-commands.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import { PreCopyRounds } from './precopy-rounds.js';

/**
 * Pre-copy: `criu pre-dump` rounds while the workload runs, each streamed to a page-server on the destination
 * with parent links on both sides, until the predicted final freeze fits the budget (or rounds stop
 * shrinking, the round limit, the deadline). Then the stop-and-copy sequence with only the remaining dirty
 * pages: final dump `--prev-images-dir round-N --track-mem` to a page-server linked the same way, the other
 * image files, restore, verify, commit. Needs mem_dirty_track on the source; a failed round falls back.
 */
export class PreCopy implements MigrationStrategy {
  readonly name = 'pre-copy' as const;
  private readonly rounds: PreCopyRounds;

  constructor(
    private readonly steps: MigrationSteps,
    private readonly streamer: DirectoryStreamer,
    private readonly transports: PageTransports,
    live: LiveConfig,
    clock: Clock,
  ) {
    this.rounds = new PreCopyRounds(steps, streamer, transports, live, clock);
  }

  async run(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const { phases } = this.steps;
    const tree = await phases.run(migration, 'preflight', (phase) => this.steps.preflight(ctx, phase));
    await phases.run(migration, 'prepare', async (phase) => {
      await this.steps.makeDirs(ctx);
      // The transport must exist before any round; an unconfigured one fails here, before any freeze.
      migration.transport = this.transports.pick(migration.transport).name;
      phase.detail = `image directories ready; pages go over ${migration.transport}`;
    });
    const n = await this.rounds.run(ctx, 'page-server');
    const prev = live.finalParent(n);
    await this.steps.files?.presync(ctx);
    const filesArmed = await this.steps.files?.armFinal(ctx);
    try {
      await this.finish(ctx, { prev, n, tasks: tree.length, filesArmed });
    } finally {
      await filesArmed?.cancel();
    }
  }

  /** From the freeze on: final dump, image files and the last file changes, restore, verify, commit. */
  private async finish(
    ctx: MigrationContext,
    opts: { prev: string | undefined; n: number; tasks: number; filesArmed: ArmedStream | undefined },
  ): Promise<void> {
    const { migration, source, destination } = ctx;
    const { phases } = this.steps;
    const { prev, n, filesArmed } = opts;
    await this.steps.markMigrating(ctx);
    const dumpEndNs = await phases.run(migration, 'dump', async (phase) => {
      const end = await this.finalDump(ctx, prev);
      phase.detail = `final dump with parent ${prev ?? '(none)'}: only pages dirtied since round ${n}`;
      return end;
    });
    // Rounds already sit on the destination (their page-servers wrote them); the source's own `parent` link is
    // dropped: the destination's page-server made the right one.
    await this.steps.transfer(
      ctx,
      () =>
        this.streamer.copy(source, ctx.sourceDir, destination, ctx.destinationDir, {
          exclude: ['./*.log', './round-*', './parent', `./${FILE_SYNC_STATE_DIR}`],
        }),
      filesArmed,
    );
    const resumedNs = await phases.run(migration, 'restore', () => this.steps.restore(ctx));
    await phases.run(migration, 'verify', () => this.steps.verify(ctx, opts.tasks));
    await this.steps.commit(ctx);
    await this.steps.recordStats(ctx, (stats) => this.steps.frozenAtFromDump(dumpEndNs, stats), resumedNs);
    // Every page that crossed: the rounds', then the final dump's (recordStats counted only the latter).
    const final = migration.bytes.pages;
    migration.bytes.pages = final + (migration.rounds ?? []).reduce((sum, r) => sum + r.bytes, 0);
    if (migration.precopy && migration.criu.dump)
      migration.precopy.finalPagesWritten = migration.criu.dump.pagesWritten;
    await phases.save(migration);
  }

  /** The freezing dump: page-server in the destination's final dir linked to the last round, dump linked the same. */
  private async finalDump(ctx: MigrationContext, prev: string | undefined): Promise<bigint> {
    const { source, destination, workload } = ctx;
    const ops = this.steps.ops;
    const transport = this.transports.pick(ctx.migration.transport);
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const channel = await transport.open(ctx, this.steps.pickPort());
      try {
        const ps = await ops.run(
          destination,
          live.pageServerWithParent(ctx.destinationDir, channel.listen, prev, channel.tls?.server),
          30_000,
        );
        if (ps.code !== 0) {
          lastError = (await ops.tail(destination, `${ctx.destinationDir}/page-server.log`, 200)) || ps.stderr;
          if (/Address already in use/.test(lastError)) continue;
          // Nothing was frozen yet: the job fails (or, with rollback, simply resumes a running tree).
          throw new MigrationStepError(
            'dump',
            criu.explainFailure('page-server', destination.id, lastError, null),
            false,
          );
        }
        const res = await ops.runTimed(
          source,
          criu.dump(workload.pid, ctx.sourceDir, channel.connect, {
            ...(channel.tls ? { tls: channel.tls.client } : {}),
            ghostLimitBytes: this.steps.config.ghostLimitBytes,
            ...(prev ? { prev } : {}),
          }),
          this.steps.config.criuTimeoutMs,
        );
        const relayed = channel.bytesRelayed?.();
        if (relayed !== undefined) ctx.migration.bytes.relayed = (ctx.migration.bytes.relayed ?? 0) + relayed;
        if (res.code !== 0 || res.endNs === undefined) {
          const log = await ops.tail(source, `${ctx.sourceDir}/dump.log`, 200);
          throw new MigrationStepError(
            'dump',
            criu.explainFailure('dump', source.id, log || res.stderr, res.code),
            false,
          );
        }
        return res.endNs;
      } finally {
        await channel.close();
        await ops.run(destination, live.stopPageServer(ctx.destinationDir), 15_000).catch(() => undefined);
      }
    }
    throw new MigrationStepError('dump', criu.explainFailure('page-server', destination.id, lastError, null), false);
  }
}
