import { criuErrorLines } from '@spotlift/criu';
import type { PhaseRecord } from '@spotlift/domain';
import type { DirectoryStreamer } from '@spotlift/transport';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import * as live from '../node-ops/process/live-commands.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import { type PageChannel, reversed } from '../transports/page-transport.port.js';
import type { PageTransports } from '../transports/page-transports.js';
import { LazyTransfer, type PagesOutcome, asStepError, endsOf, pagesProgress } from './lazy-transfer.js';
import type { LiveConfig } from './live-config.js';
import { FILE_SYNC_STATE_DIR } from '../node-ops/file-sync-commands.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import type { StrategyDeps } from './strategy-deps.js';
import type { WorkloadFiles } from '../files/workload-files.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import { OWNER_MARKER_FILE } from '../sweeper/owner-marker.js';

/**
 * Post-copy: the source is frozen and dumped without its memory (`dump --lazy-pages --leave-stopped`, serving
 * pages), the destination restores with `--lazy-pages` while a `lazy-pages` daemon pulls every page, and the
 * restored tree runs at once: downtime ends there. The job completes, and the source dies, only when the
 * destination has every page. Until then the source stays frozen (never resumed, so its memory is the
 * complete, consistent one): if the page transfer fails after the restored tree ran, that tree is incomplete
 * and is killed, the source is resumed, and the record says what was lost (the restored tree's work since
 * resume). Pages flow destination <- source over the job's transport, opened the other way round.
 */
export class PostCopy implements MigrationStrategy {
  readonly name: 'post-copy' | 'hybrid' = 'post-copy';
  protected readonly lazy: LazyTransfer;
  protected readonly ops: NodeOps;
  protected readonly phases: PhaseRecorder;
  protected readonly config: EngineConfig;
  protected readonly steps: MigrationSteps;
  protected readonly streamer: DirectoryStreamer;
  private readonly transports: PageTransports;
  protected readonly files: WorkloadFiles | undefined;

  constructor(
    deps: StrategyDeps,
    protected readonly live: LiveConfig,
  ) {
    this.ops = deps.ops;
    this.phases = deps.phases;
    this.config = deps.config;
    this.steps = deps.steps;
    this.streamer = deps.streamer;
    this.transports = deps.transports;
    this.files = deps.files;
    this.lazy = new LazyTransfer(deps.ops, deps.config.criuTimeoutMs, deps.config.ghostLimitBytes);
  }

  /** Hybrid runs pre-copy rounds here; returns the final dump's parent (none for plain post-copy). */
  protected beforeFinal(_ctx: MigrationContext): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  async run(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const phases = this.phases;
    const tree = await phases.run(migration, 'preflight', (phase) => this.steps.preflight(ctx, phase));
    const channel = await phases.run(migration, 'prepare', (phase) => this.prepare(ctx, phase));
    try {
      await this.transferAndCommit(ctx, channel, tree.length);
    } finally {
      await channel.close();
    }
  }

  /** From the rounds (hybrid) on: the lazy dump, image and declared files, lazy restore, all pages, commit. */
  private async transferAndCommit(ctx: MigrationContext, channel: PageChannel, tasks: number): Promise<void> {
    const { migration, source, destination } = ctx;
    const phases = this.phases;
    const serve = channel.listen;
    const prev = await this.beforeFinal(ctx);
    await this.files?.presync(ctx);
    const filesArmed = await this.files?.armFinal(ctx);
    await this.steps.markMigrating(ctx);
    const ends = endsOf(ctx);
    try {
      const frozen = await phases.run(migration, 'dump', async (phase) => {
        const r = await this.lazy
          .startDump(ends, ctx.workload.pid, serve, prev, channel.tls?.server)
          .catch(asStepError);
        phase.detail = `frozen; state without memory dumped${prev ? ` (parent ${prev})` : ''}; pages served from ${serve.address}:${serve.port} over ${migration.transport}`;
        return r;
      });
      await this.steps.transfer(
        ctx,
        () =>
          this.streamer.copy(source, ctx.sourceDir, destination, ctx.destinationDir, {
            exclude: [
              './*.log',
              './round-*',
              `./${FILE_SYNC_STATE_DIR}`,
              `./${OWNER_MARKER_FILE}`,
              ...live.LAZY_WRAPPER_FILES,
            ],
          }),
        filesArmed,
      );
      const resumedNs = await phases.run(migration, 'restore', async () => {
        await this.lazy.startDaemon(ends, channel.connect, channel.tls?.client).catch(asStepError);
        return this.steps.restore(ctx, { lazyPages: true });
      });
      await phases.run(migration, 'verify', () => this.steps.verify(ctx, tasks));
      // Downtime is over once the restored tree runs; recorded now so a failed page transfer still shows it.
      migration.frozenAt = new Date(Number(frozen.frozenNs / 1_000_000n)).toISOString();
      migration.resumedAt = new Date(Number(resumedNs / 1_000_000n)).toISOString();
      migration.downtimeMs = Number(resumedNs - frozen.frozenNs) / 1e6;
      await phases.run(migration, 'pages', (phase) => this.awaitPages(ctx, resumedNs, phase));
      await this.steps.commit(ctx);
      await this.recordRestoreStats(ctx);
    } catch (error) {
      await this.lazy.abort(ctx);
      throw await this.withSourceAccount(ctx, error);
    } finally {
      await filesArmed?.cancel();
    }
  }

  /** A failed lazy restore or page transfer is often explained only in the source's dump log (fs.pipe-max-size). */
  private async withSourceAccount(ctx: MigrationContext, error: unknown): Promise<unknown> {
    if (!(error instanceof MigrationStepError) || !['restore', 'pages'].includes(error.phase)) return error;
    const log = await this.ops.tail(ctx.source, `${ctx.sourceDir}/dump.log`, 60).catch(() => '');
    if (criuErrorLines(log).length)
      error.message += ` | the source says: ${criu.explainFailure('dump --lazy-pages', ctx.source.id, log, null)}`;
    return error;
  }

  /**
   * Recovery after a dead worker: a lazy transfer may still be running. Waits for it and says whether every
   * page arrived (then the restored tree may be adopted). Otherwise stops it, killing an incomplete restored
   * tree, so that the rollback can resume the source.
   */
  async settle(ctx: MigrationContext): Promise<boolean> {
    return (await this.lazy.started(endsOf(ctx))) ? this.lazy.settle(ctx) : true;
  }

  /**
   * Image directories, and the page channel opened the other way round (the source serves, the destination's
   * daemon pulls; see `reversed`) over the job's transport: tcp, CRIU's TLS, or an SSH tunnel.
   */
  private async prepare(ctx: MigrationContext, phase: PhaseRecord): Promise<PageChannel> {
    await this.steps.makeDirs(ctx);
    const transport = this.transports.pick(ctx.migration.transport);
    // CRIU binds its page server only after the whole freeze-and-dump: a taken port would waste a freeze.
    for (let attempt = 0; attempt < 5; attempt++) {
      const channel = await transport.open(reversed(ctx), this.steps.pickPort());
      ctx.migration.transport = transport.name;
      const res = await this.ops.portFree(ctx.source, channel.listen.port);
      if (/PORT_FREE/.test(res.stdout)) {
        phase.detail = `lazy pages will be served on ${ctx.source.id} at ${channel.listen.address}:${channel.listen.port} over ${transport.name}`;
        return channel;
      }
      await channel.close();
    }
    throw new MigrationStepError('prepare', `no free port for CRIU's lazy page server on ${ctx.source.id}`, true);
  }

  private async awaitPages(ctx: MigrationContext, resumedNs: bigint, phase: PhaseRecord): Promise<PagesOutcome> {
    const { migration, source, destination } = ctx;
    const outcome = await this.lazy.waitAllPages(endsOf(ctx), this.config.criuTimeoutMs);
    migration.postCopy = pagesProgress(outcome, resumedNs);
    const after = outcome.endNs !== undefined ? Number(outcome.endNs - resumedNs) / 1e6 : undefined;
    if (!outcome.complete) {
      const ran = after !== undefined ? ` for ${Math.round(after)} ms` : '';
      throw new MigrationStepError(
        'pages',
        `post-copy could not finish: ${outcome.reason ?? 'unknown'}. The restored tree on ${destination.id} ran${ran} ` +
          `without all of its memory, so it is incomplete and is killed; the source on ${source.id}, frozen since the ` +
          `dump and never resumed, still holds the complete memory and is resumed. What the restored tree did since ` +
          `resume is lost.`,
        false,
      );
    }
    // Hybrid's rounds are counted already; lazily pulled pages come on top.
    migration.bytes.pages += outcome.lazyPages * 4096;
    phase.detail = `all ${outcome.lazyPages} lazy pages on ${destination.id} ${Math.round(after ?? 0)} ms after resume (${outcome.transferred.join(', ')})`;
    return outcome;
  }

  /** The lazy dump's stats-dump is garbage in CRIU 4.2.1 (libs/criu fixtures): only the restore's is kept. */
  private async recordRestoreStats(ctx: MigrationContext): Promise<void> {
    const img = await this.ops.readFile(ctx.destination, `${ctx.destinationDir}/stats-restore`);
    if (img) {
      try {
        ctx.migration.criu = { ...ctx.migration.criu, restore: criu.parseRestore(img) };
      } catch {
        // Stats are figures, not a reason to fail a committed migration.
      }
    }
    await this.phases.save(ctx.migration);
  }
}
