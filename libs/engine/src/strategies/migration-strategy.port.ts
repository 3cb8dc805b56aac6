import type { Strategy } from '@spotlift/domain';
import type { MigrationContext } from '../engine.types.js';

/**
 * One way of moving memory. `run` goes from preflight to the commit point (inclusive) and throws a
 * MigrationStepError on failure; the engine rolls back, cleans up and records the outcome.
 */
export interface MigrationStrategy {
  readonly name: Strategy;
  run(ctx: MigrationContext): Promise<void>;
}
