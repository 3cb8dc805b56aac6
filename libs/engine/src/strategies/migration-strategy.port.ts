import type { Strategy } from '@spotlift/domain';
import type { MigrationContext } from '../engine.types.js';

/**
 * One way of moving memory. `run` goes from preflight to the commit point (inclusive) and throws a
 * MigrationStepError on failure; the engine rolls back, cleans up and records the outcome.
 */
export interface MigrationStrategy {
  readonly name: Strategy;
  run(ctx: MigrationContext): Promise<void>;
  /**
   * Recovery after a dead worker, for strategies that keep working after the restore (post-copy's pages):
   * waits for that work and says whether the restored tree may be adopted; otherwise stops it so the source
   * can be resumed.
   */
  settle?(ctx: MigrationContext): Promise<boolean>;
}
