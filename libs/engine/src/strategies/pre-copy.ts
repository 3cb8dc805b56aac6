import type { PhaseRecord } from '@spotlift/domain';
import type { ArmedStream, DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import * as live from '../node-ops/process/live-commands.js';
import { LazyDaemonFailed, type MigrationSteps } from '../steps/migration-steps.js';
import type { PageTransports } from '../transports/page-transports.js';
import type { LiveConfig } from './live-config.js';
import { FILE_SYNC_STATE_DIR } from '../node-ops/file-sync-commands.js';
import { LazyTransfer, endsOf, pagesProgress } from './lazy-transfer.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import type { StrategyDeps } from './strategy-deps.js';
import type { WorkloadFiles } from '../files/workload-files.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import { PreCopyRounds } from './precopy-rounds.js';
import { OWNER_MARKER_FILE } from '../sweeper/owner-marker.js';

/** What `criu check --feature` names the patched CRIU's lazy restore of parent-image pages (scripts/lab/criu). */
export const LAZY_PARENT_FEATURE = 'lazy_parent_pages';

interface RestorePlan {
  lazy: boolean;
  reason: string;
}

/**
 * Pre-copy: `criu pre-dump` rounds while the workload runs, each streamed to a page-server on the destination
 * with parent links on both sides, until the predicted final freeze fits the budget (or rounds stop
 * shrinking, the round limit, the deadline). Then the stop-and-copy sequence with only the remaining dirty
 * pages: final dump `--prev-images-dir round-N --track-mem` to a page-server linked the same way, the other
 * image files, restore, verify, commit. Needs mem_dirty_track on the source; a failed round falls back.
 *
 * The restore copies every page of the chain into the new process, so with an eager restore the downtime still
 * grows with the whole memory (qemu lab: 256 MiB, restore 3-9 s of a 6-13 s freeze). Where both nodes' CRIU
 * restore parent-image pages lazily (`lazy_parent_pages`, the lab's patched build), the restore runs with
 * `--lazy-pages` and a local lazy-pages daemon fills the memory from the destination's images after resume;
 * the source stays frozen until every page is in (as post-copy's does), so a failed fill still rolls back.
 */
export class PreCopy implements MigrationStrategy {
  readonly name = 'pre-copy' as const;
  private readonly rounds: PreCopyRounds;
  private readonly lazy: LazyTransfer;
  private readonly ops: NodeOps;
  private readonly phases: PhaseRecorder;
  private readonly config: EngineConfig;
  private readonly steps: MigrationSteps;
  private readonly streamer: DirectoryStreamer;
  private readonly transports: PageTransports;
  private readonly files: WorkloadFiles | undefined;

  constructor(
    deps: StrategyDeps,
    private readonly liveConfig: LiveConfig,
    clock: Clock,
  ) {
    this.ops = deps.ops;
    this.phases = deps.phases;
    this.config = deps.config;
    this.steps = deps.steps;
    this.streamer = deps.streamer;
    this.transports = deps.transports;
    this.files = deps.files;
    this.rounds = new PreCopyRounds(deps, liveConfig, clock);
    this.lazy = new LazyTransfer(deps.ops, deps.config.criuTimeoutMs);
  }

  async run(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const phases = this.phases;
    const tree = await phases.run(migration, 'preflight', (phase) => this.steps.preflight(ctx, phase));
    const restore = await phases.run(migration, 'prepare', async (phase) => {
      await this.steps.makeDirs(ctx);
      // The transport must exist before any round; an unconfigured one fails here, before any freeze.
      migration.transport = this.transports.pick(migration.transport).name;
      const plan = await this.planRestore(ctx);
      phase.detail = `image directories ready; pages go over ${migration.transport}; ${plan.lazy ? 'lazy' : 'eager'} restore: ${plan.reason}`;
      return plan;
    });
    const n = await this.rounds.run(ctx, 'page-server');
    const prev = live.finalParent(n);
    this.recordRestore(ctx, restore.lazy, restore.reason);
    await this.files?.presync(ctx);
    const filesArmed = await this.files?.armFinal(ctx);
    try {
      await this.finish(ctx, { prev, n, tasks: tree.length, filesArmed, lazyRestore: restore.lazy });
    } finally {
      await filesArmed?.cancel();
    }
  }

  /**
   * Lazy restore only when the config allows it and both ends answer `criu check --feature lazy_parent_pages`
   * now (a probe record may be stale): the source's dump must mark parent holes lazy, the destination's restore
   * and daemon must handle them (and have userfaultfd; the patched check includes uffd-noncoop).
   */
  private async planRestore(ctx: MigrationContext): Promise<RestorePlan> {
    if (!this.liveConfig.lazyRestore) return { lazy: false, reason: 'lazyRestore is off in the live config' };
    const ask = async (node: MigrationContext['source']) => ({
      node: node.id,
      check: await this.ops.checkFeature(node, LAZY_PARENT_FEATURE),
    });
    const answers = await Promise.all([ask(ctx.source), ask(ctx.destination)]);
    const missing = answers.filter((a) => !a.check.supported);
    if (missing.length === 0)
      return { lazy: true, reason: `CRIU on ${ctx.source.id} and ${ctx.destination.id} restores parent pages lazily` };
    const why = missing
      .map(
        (a) =>
          `${a.node}: ${a.check.known ? (a.check.reason ?? 'not supported') : 'stock CRIU (no lazy_parent_pages)'}`,
      )
      .join('; ');
    return { lazy: false, reason: `every page is copied before resume (${why})` };
  }

  /** From the freeze on: final dump, image files and the last file changes, restore, verify, commit. */
  private async finish(
    ctx: MigrationContext,
    opts: {
      prev: string | undefined;
      n: number;
      tasks: number;
      filesArmed: ArmedStream | undefined;
      lazyRestore: boolean;
    },
  ): Promise<void> {
    const { migration, source, destination } = ctx;
    const phases = this.phases;
    const { prev, n, filesArmed } = opts;
    let lazyRestore = opts.lazyRestore;
    // Like stop-and-copy's, the image stream and the restore command wait on the nodes before the freeze. The lazy
    // restore starts the local daemon first, in the same command: the daemon reads inventory.img and pstree.img
    // at start-up, so it cannot start before the image files are there.
    // Rounds already sit on the destination (their page-servers wrote them); the source's own `parent` link is
    // dropped: the destination's page-server made the right one.
    const transferArmed = await this.streamer.arm(source, ctx.sourceDir, destination, ctx.destinationDir, {
      exclude: ['./*.log', './round-*', './parent', `./${FILE_SYNC_STATE_DIR}`, `./${OWNER_MARKER_FILE}`],
    });
    const restoreArmed = await this.steps.armRestore(ctx, { lazy: lazyRestore });
    let dumpEndNs: bigint;
    let resumedNs: bigint;
    try {
      await this.steps.markMigrating(ctx);
      dumpEndNs = await phases.run(migration, 'dump', async (phase) => {
        const end = await this.finalDump(ctx, prev);
        phase.detail = `final dump with parent ${prev ?? '(none)'}: only pages dirtied since round ${n}`;
        return end;
      });
      await this.steps.transfer(ctx, () => transferArmed.start(), filesArmed);
      resumedNs = await phases.run(migration, 'restore', async (phase) => {
        if (!lazyRestore) return this.steps.restore(ctx, { armed: restoreArmed });
        try {
          const ns = await this.steps.restore(ctx, { armed: restoreArmed });
          phase.detail = `restore --lazy-pages: the memory comes from ${destination.id}'s images after resume`;
          return ns;
        } catch (error) {
          if (!(error instanceof LazyDaemonFailed)) throw error;
          // Frozen already: restoring eagerly costs a little downtime, a rollback would waste the freeze.
          lazyRestore = false;
          await this.lazy.stop(endsOf(ctx));
          this.recordRestore(
            ctx,
            false,
            `the lazy-pages daemon did not start, so every page was copied before resume: ${error.message}`,
          );
          phase.detail = `eager restore: ${error.message}`;
          return this.steps.restore(ctx);
        }
      });
      await phases.run(migration, 'verify', () => this.steps.verify(ctx, opts.tasks));
      if (lazyRestore) await phases.run(migration, 'pages', (phase) => this.awaitFill(ctx, resumedNs, phase));
    } catch (error) {
      if (lazyRestore) await this.lazy.abort(ctx);
      throw error;
    } finally {
      // armed commands that were used ignore the cancel
      await Promise.allSettled([transferArmed.cancel(), restoreArmed.cancel()]);
    }
    await this.steps.commit(ctx);
    await this.steps.recordStats(ctx, (stats) => this.steps.frozenAtFromDump(dumpEndNs, stats), resumedNs);
    // Every page that crossed: the rounds', then the final dump's (recordStats counted only the latter).
    const final = migration.bytes.pages;
    migration.bytes.pages = final + (migration.rounds ?? []).reduce((sum, r) => sum + r.bytes, 0);
    if (migration.precopy && migration.criu.dump)
      migration.precopy.finalPagesWritten = migration.criu.dump.pagesWritten;
    await phases.save(migration);
  }

  private recordRestore(ctx: MigrationContext, lazy: boolean, reason: string): void {
    if (ctx.migration.precopy)
      Object.assign(ctx.migration.precopy, { restore: lazy ? 'lazy' : 'eager', restoreReason: reason });
  }

  /**
   * Waits until the local daemon put every page into the restored tree. Incomplete: the tree ran without all
   * its memory, so it is killed and the source (frozen, never resumed) is resumed by the rollback.
   */
  private async awaitFill(ctx: MigrationContext, resumedNs: bigint, phase: PhaseRecord): Promise<void> {
    const { migration, source, destination } = ctx;
    const outcome = await this.lazy.waitAllPages(endsOf(ctx), this.config.criuTimeoutMs);
    const fill = pagesProgress(outcome, resumedNs);
    if (migration.precopy) migration.precopy.lazyFill = fill;
    if (!outcome.complete) {
      throw new MigrationStepError(
        'pages',
        `the lazy restore could not fill the memory from ${destination.id}'s images: ${outcome.reason ?? 'unknown'}. ` +
          `The restored tree ran without all of its memory, so it is killed; the source on ${source.id}, frozen ` +
          `since the dump and never resumed, is resumed. What the restored tree did since resume is lost.`,
        false,
      );
    }
    phase.detail = `all ${outcome.lazyPages} pages in on ${destination.id} ${Math.round(fill.pagesAfterResumeMs ?? 0)} ms after resume (${outcome.transferred.join(', ')})`;
  }

  /**
   * Recovery after a dead worker: a lazy restore's daemon may still be filling. Waits for it; complete means
   * the restored tree may be adopted, otherwise it is stopped so that the rollback can resume the source.
   */
  async settle(ctx: MigrationContext): Promise<boolean> {
    return (await this.lazy.daemonStarted(endsOf(ctx))) ? this.lazy.settle(ctx) : true;
  }

  /** The freezing dump: page-server in the destination's final dir linked to the last round, dump linked the same. */
  private async finalDump(ctx: MigrationContext, prev: string | undefined): Promise<bigint> {
    const { source, destination, workload } = ctx;
    const ops = this.ops;
    const transport = this.transports.pick(ctx.migration.transport);
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const channel = await transport.open(ctx, this.steps.pickPort());
      try {
        const ps = await ops.startPageServerWithParent(
          destination,
          ctx.destinationDir,
          channel.listen,
          prev,
          channel.tls?.server,
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
        const res = await ops.dump(
          source,
          workload.pid,
          ctx.sourceDir,
          channel.connect,
          {
            ...(channel.tls ? { tls: channel.tls.client } : {}),
            ghostLimitBytes: this.config.ghostLimitBytes,
            ...(prev ? { prev } : {}),
          },
          this.config.criuTimeoutMs,
        );
        const relayed = channel.bytesRelayed?.();
        if (relayed !== undefined) ctx.migration.bytes.relayed = (ctx.migration.bytes.relayed ?? 0) + relayed;
        if (res.code !== 0 || res.endNs === undefined) {
          const log = await ops.tail(source, `${ctx.sourceDir}/dump.log`, 200);
          throw criu.dumpFailure('dump', source.id, log || res.stderr, res.code);
        }
        await this.steps.pageServerFinished(ctx, ctx.destinationDir, 'dump');
        return res.endNs;
      } finally {
        await channel.close();
        await ops.stopPageServer(destination, ctx.destinationDir).catch(() => undefined);
      }
    }
    throw new MigrationStepError('dump', criu.explainFailure('page-server', destination.id, lastError, null), false);
  }
}
