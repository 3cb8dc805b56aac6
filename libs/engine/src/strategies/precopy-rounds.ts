import type { DumpStats, PreCopyRound } from '@spotlift/domain';
import type { DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../node-ops/process/criu-commands.js';
import type { EngineConfig, MigrationContext } from '../engine.types.js';
import * as live from '../node-ops/process/live-commands.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import type { PageChannel } from '../transports/page-transport.port.js';
import type { PageTransports } from '../transports/page-transports.js';
import { decideAfterRound } from './convergence.js';
import { type LiveConfig, StrategyUnavailableError } from './live-config.js';
import type { StrategyDeps } from './strategy-deps.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';

const PAGE = 4096;

/**
 * Where round N's pages go. `page-server`: streamed to a page-server in the destination's round-N directory
 * (pre-copy). `local`: written into the source's round-N directory, then copied as files (hybrid: a lazy
 * final dump only finds its parents when their pagemaps are on the source, qemu lab finding).
 */
export type RoundsMode = 'page-server' | 'local';

/**
 * Iterative `criu pre-dump --track-mem` while the workload runs. Every round N > 1 names round N-1 as its
 * parent on both sides (the dump's `--prev-images-dir` and, in page-server mode, the page-server's), or
 * CRIU silently sends every page again. Layout on both nodes: `<dir>/round-N`, the final images in `<dir>`
 * itself with `parent -> round-<last>`. Returns the number of rounds run.
 */
export class PreCopyRounds {
  private readonly ops: NodeOps;
  private readonly phases: PhaseRecorder;
  private readonly config: EngineConfig;
  private readonly steps: MigrationSteps;
  private readonly streamer: DirectoryStreamer;
  private readonly transports: PageTransports;

  constructor(
    deps: StrategyDeps,
    private readonly live: LiveConfig,
    private readonly clock: Clock,
  ) {
    this.ops = deps.ops;
    this.phases = deps.phases;
    this.config = deps.config;
    this.steps = deps.steps;
    this.streamer = deps.streamer;
    this.transports = deps.transports;
  }

  async run(ctx: MigrationContext, mode: RoundsMode): Promise<number> {
    const { migration } = ctx;
    return this.phases.run(migration, 'precopy', async (phase) => {
      const budgetMs = migration.downtimeBudgetMs ?? this.live.defaultDowntimeBudgetMs;
      const deadline = migration.deadline ? Date.parse(migration.deadline) : undefined;
      migration.rounds = [];
      for (let n = 1; ; n++) {
        const round = mode === 'page-server' ? await this.toPageServer(ctx, n) : await this.toLocalFiles(ctx, n);
        migration.rounds.push(round);
        const d = decideAfterRound(migration.rounds, {
          budgetMs,
          fixedFreezeMs: this.live.fixedFreezeMs,
          maxRounds: migration.maxRounds ?? this.live.maxRounds,
          minShrink: this.live.minShrink,
          lazyFinal: mode === 'local',
          ...(deadline !== undefined ? { timeLeftMs: deadline - this.clock.now().getTime() } : {}),
        });
        phase.detail = d.reason;
        await this.phases.save(migration);
        if (d.stop) {
          migration.precopy = { stopReason: d.reason, predictedFinalFreezeMs: Math.round(d.predictedFreezeMs) };
          return n;
        }
      }
    });
  }

  private async toPageServer(ctx: MigrationContext, n: number): Promise<PreCopyRound> {
    const { source, destination, workload } = ctx;
    const ops = this.ops;
    const dir = live.roundDir(ctx.sourceDir, n);
    const peerDir = live.roundDir(ctx.destinationDir, n);
    await Promise.all([ops.makeDir(source, dir), ops.makeDir(destination, peerDir)]);
    const channel = await this.openPageServer(ctx, peerDir, live.roundParent(n));
    try {
      const res = await ops.preDump(
        source,
        workload.pid,
        dir,
        live.roundParent(n),
        this.config.criuTimeoutMs,
        channel.connect,
        channel.tls?.client,
      );
      const round = await this.roundResult(ctx, n, dir, res);
      // the next round and the final dump link to this round's images: they must be whole
      await this.steps.pageServerFinished(ctx, peerDir, 'precopy').catch((e: Error) => {
        throw new StrategyUnavailableError('precopy', e.message);
      });
      return round;
    } finally {
      await channel.close();
      await ops.stopPageServer(destination, peerDir).catch(() => undefined);
    }
  }

  private async toLocalFiles(ctx: MigrationContext, n: number): Promise<PreCopyRound> {
    const { source, destination, workload } = ctx;
    const ops = this.ops;
    const dir = live.roundDir(ctx.sourceDir, n);
    await ops.makeDir(source, dir);
    const res = await ops.preDump(source, workload.pid, dir, live.roundParent(n), this.config.criuTimeoutMs);
    const round = await this.roundResult(ctx, n, dir, res);
    // The round's files, its `parent` link included (the destination's chain must match the source's).
    const copy = await this.streamer
      .copy(source, dir, destination, live.roundDir(ctx.destinationDir, n), { exclude: ['./*.log'] })
      .catch((e: Error) => {
        throw new StrategyUnavailableError(
          'precopy',
          `copying pre-copy round ${n} to ${destination.id} failed: ${e.message}`,
        );
      });
    round.durationMs = Math.round(round.durationMs + copy.durationMs);
    // Lazy pages move no faster than the slower of CRIU reading them and the link carrying them (the copy
    // is mostly this round's pages, so pages over copy time is the link's page rate).
    const link = copy.durationMs > 0 ? round.bytes / (copy.durationMs / 1000) : Infinity;
    const rate = Math.min(link, round.bandwidthBytesPerSec || Infinity);
    round.bandwidthBytesPerSec = Number.isFinite(rate) ? Math.round(rate) : 0;
    return round;
  }

  /** A page-server in `dir` on the destination, linked to `prev`; retried on a port clash. */
  private async openPageServer(ctx: MigrationContext, dir: string, prev: string | undefined): Promise<PageChannel> {
    const transport = this.transports.pick(ctx.migration.transport);
    let lastError = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const channel = await transport.open(ctx, this.steps.pickPort());
      const res = await this.ops.startPageServerWithParent(
        ctx.destination,
        dir,
        channel.listen,
        prev,
        channel.tls?.server,
      );
      if (res.code === 0) return channel;
      await channel.close();
      lastError = (await this.ops.tail(ctx.destination, `${dir}/page-server.log`, 200)) || res.stderr;
      if (!/Address already in use/.test(lastError)) break;
    }
    throw new StrategyUnavailableError(
      'precopy',
      criu.explainFailure('page-server', ctx.destination.id, lastError, null),
    );
  }

  /**
   * A failed pre-dump leaves the workload running (CRIU resumes it; its BUG on kernels without soft-dirty
   * aborts after resuming), so the job can fall back to another strategy; the tree is checked and resumed
   * anyway in case CRIU died while holding it.
   */
  private async roundResult(
    ctx: MigrationContext,
    n: number,
    dir: string,
    res: { code: number | null; stderr: string; startNs?: bigint; endNs?: bigint },
  ): Promise<PreCopyRound> {
    const ops = this.ops;
    if (res.code !== 0 || res.startNs === undefined || res.endNs === undefined) {
      const log = await ops.tail(ctx.source, `${dir}/pre-dump.log`, 200);
      if ((await ops.processState(ctx.source, ctx.workload.pid)) === 'T')
        await ops.resumeTree(ctx.source, ctx.workload.pid);
      throw new StrategyUnavailableError(
        'precopy',
        criu.explainFailure(`pre-dump (round ${n})`, ctx.source.id, log || res.stderr, res.code),
      );
    }
    const img = await ops.readFile(ctx.source, `${dir}/stats-dump`);
    let stats: DumpStats | undefined;
    try {
      stats = img ? criu.parseDump(img) : undefined;
    } catch (e) {
      throw new StrategyUnavailableError('precopy', `pre-copy round ${n}: ${(e as Error).message}`);
    }
    if (!stats)
      throw new StrategyUnavailableError('precopy', `pre-copy round ${n} left no stats-dump on ${ctx.source.id}`);
    const durationMs = Number(res.endNs - res.startNs) / 1e6;
    const bytes = stats.pagesWritten * PAGE;
    const moveUs = stats.memdumpTimeUs + stats.memwriteTimeUs;
    const seconds = moveUs > 0 ? moveUs / 1e6 : durationMs / 1000;
    return {
      round: n,
      pagesScanned: stats.pagesScanned,
      pagesWritten: stats.pagesWritten,
      pagesSkippedParent: stats.pagesSkippedParent,
      bytes,
      durationMs: Math.round(durationMs * 1000) / 1000,
      frozenMs: (stats.frozenTimeUs + stats.freezingTimeUs) / 1000,
      bandwidthBytesPerSec: seconds > 0 ? Math.round(bytes / seconds) : 0,
    };
  }
}
