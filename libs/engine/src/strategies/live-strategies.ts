import type { PairLinks, PostCopyTrials } from '@spotlift/store';
import type { Clock } from '../clock.js';
import type { MigrationContext } from '../engine.types.js';
import { Hybrid } from './hybrid.js';
import type { LiveConfig } from './live-config.js';
import type { MigrationStrategy } from './migration-strategy.port.js';
import { PostCopyTrialRunner } from './post-copy-trial.js';
import { PostCopy } from './post-copy.js';
import { PreCopy } from './pre-copy.js';
import { StrategyChain } from './strategy-chain.js';
import { StrategySelector } from './strategy-selector.js';
import type { StrategyDeps } from './strategy-deps.js';

/**
 * Wires the live strategies (pre-copy, post-copy, hybrid), `auto` and the fallbacks into an engine that
 * already has its stop-and-copy: one call from the engine's constructor, so the engine stays small.
 */
export function withLiveStrategies(
  strategies: Map<string, MigrationStrategy>,
  deps: StrategyDeps & {
    trials: PostCopyTrials;
    /** Page throughput measured per node pair: completed jobs feed it, `auto` reads it. */
    links: PairLinks;
    clock: Clock;
    live: LiveConfig;
  },
): { chain: StrategyChain; settle: (ctx: MigrationContext) => Promise<boolean> } {
  const { ops, phases, config, streamer, trials, links, clock, live } = deps;
  strategies.set('pre-copy', new PreCopy(deps, live, clock));
  strategies.set('post-copy', new PostCopy(deps, live));
  strategies.set('hybrid', new Hybrid(deps, live, clock));
  const runner = new PostCopyTrialRunner(ops, streamer, trials, clock, config, live);
  const selector = new StrategySelector(ops, runner, phases, live, clock, links);
  return {
    chain: new StrategyChain(strategies, selector, phases, links, clock),
    // A dead worker may have left a lazy transfer running: only a complete one lets recovery adopt the tree.
    settle: async (ctx) => (await strategies.get(ctx.migration.strategy)?.settle?.(ctx)) ?? true,
  };
}
