import type { PairLinks } from '@spotlift/store';
import type { Clock } from '../clock.js';
import type { MigrationContext } from '../engine.types.js';
import { MigrationStepError } from '../engine.types.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import { StrategyUnavailableError } from './live-config.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import type { StrategySelector } from './strategy-selector.js';

/**
 * Runs a job's strategy: asks the selector which strategies to try, then runs the first; when it reports
 * that it cannot run here (StrategyUnavailableError, always before the workload was frozen), the next one
 * runs and the record says why (`fallbacks`). `strategy` on the record is what actually ran (the recovery of
 * a dead worker reads it), `requestedStrategy` what was asked.
 */
export class StrategyChain {
  constructor(
    private readonly strategies: ReadonlyMap<string, MigrationStrategy>,
    private readonly selector: StrategySelector,
    private readonly phases: PhaseRecorder,
    private readonly links: PairLinks,
    private readonly clock: Clock,
  ) {}

  async run(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const requested = migration.requestedStrategy ?? migration.strategy;
    if (!this.strategies.has(requested) && requested !== 'auto') {
      throw new MigrationStepError('preflight', `strategy '${requested}' is not available`, true);
    }
    const plan = await this.selector.plan(ctx);
    if (requested !== 'stop-and-copy') migration.requestedStrategy = requested;
    migration.strategyReason = plan.reason;
    if (plan.fallbacks.length) migration.fallbacks = [...(migration.fallbacks ?? []), ...plan.fallbacks];
    for (let i = 0; i < plan.chain.length; i++) {
      const name = plan.chain[i]!;
      const strategy = this.strategies.get(name);
      if (!strategy) throw new MigrationStepError('preflight', `strategy '${name}' is not available`, true);
      migration.strategy = name;
      await this.phases.save(migration);
      try {
        await strategy.run(ctx);
        await this.recordLink(ctx);
        return;
      } catch (error) {
        const next = plan.chain[i + 1];
        if (!(error instanceof StrategyUnavailableError) || !next) throw error;
        migration.fallbacks = [...(migration.fallbacks ?? []), `${name} -> ${next}: ${error.message}`];
        migration.strategyReason = `${plan.reason}; ${name} could not run (${error.phase}), fell back to ${next}`;
      }
    }
  }

  /** The page throughput this job measured, for `auto`'s next choice on the pair. Figures never fail a job. */
  private async recordLink(ctx: MigrationContext): Promise<void> {
    const bytesPerSec = ctx.migration.throughput?.pagesBytesPerSec;
    if (!bytesPerSec || !Number.isFinite(bytesPerSec)) return;
    const now = this.clock.now();
    // When the pages began to flow, from their size and rate: lets the source's outbound figure see which of its
    // transfers overlapped (ending now overstates the end by the restore, alike for every transfer).
    const startedAt = new Date(now.getTime() - (ctx.migration.bytes.pages / bytesPerSec) * 1000);
    await this.links
      .record({
        sourceNodeId: ctx.source.id,
        destinationNodeId: ctx.destination.id,
        transport: ctx.migration.transport ?? 'tcp',
        bytesPerSec,
        at: now.toISOString(),
        startedAt: startedAt.toISOString(),
      })
      .catch(() => undefined);
  }
}
