import type { PairLinks, PostCopyTrials } from '@spotlift/store';
import type { DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import type { MigrationContext } from '../engine.types.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import type { PageTransports } from '../transports/page-transports.js';
import { Hybrid } from './hybrid.js';
import type { LiveConfig } from './live-config.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import { PostCopyTrialRunner } from './post-copy-trial.js';
import { PostCopy } from './post-copy.js';
import { PreCopy } from './pre-copy.js';
import { StrategyChain } from './strategy-chain.js';
import { StrategySelector } from './strategy-selector.js';

/**
 * Wires the live strategies (pre-copy, post-copy, hybrid), `auto` and the fallbacks into an engine that
 * already has its stop-and-copy: one call from the engine's constructor, so the engine stays small.
 */
export function withLiveStrategies(
  strategies: Map<string, MigrationStrategy>,
  deps: {
    steps: MigrationSteps;
    streamer: DirectoryStreamer;
    transports: PageTransports;
    trials: PostCopyTrials;
    /** Page throughput measured per node pair: completed jobs feed it, `auto` reads it. */
    links: PairLinks;
    clock: Clock;
    live: LiveConfig;
  },
): { chain: StrategyChain; settle: (ctx: MigrationContext) => Promise<boolean> } {
  const { steps, streamer, transports, trials, links, clock, live } = deps;
  strategies.set('pre-copy', new PreCopy(steps, streamer, transports, live, clock));
  strategies.set('post-copy', new PostCopy(steps, streamer, transports, live));
  strategies.set('hybrid', new Hybrid(steps, streamer, transports, live, clock));
  const runner = new PostCopyTrialRunner(steps.ops, streamer, trials, clock, steps.config, live);
  const selector = new StrategySelector(steps.ops, runner, steps.phases, live, clock, links);
  return {
    chain: new StrategyChain(strategies, selector, steps.phases, links, clock),
    // A dead worker may have left a lazy transfer running: only a complete one lets recovery adopt the tree.
    settle: async (ctx) => (await strategies.get(ctx.migration.strategy)?.settle?.(ctx)) ?? true,
  };
}
