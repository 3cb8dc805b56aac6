import { MigrationStepError } from '../engine.types.js';

/** Settings of the live strategies, strategy choice and capability trials. */
export interface LiveConfig {
  /** Pre-copy rounds at most, the first (full) round included. LXD's default is 10. */
  maxRounds: number;
  /** Rounds stop when one writes more than this fraction of the previous round's pages. */
  minShrink: number;
  /**
   * Freeze cost beyond the dirty pages (seize, parasite, non-memory images, restore of tasks). 300 ms: post-copy,
   * which pays only this, froze 335-511 ms for 128-256 MiB in the lab (bare CRIU: 350-390 ms), and the qemu
   * lab's final pre-copy dump froze 1.36 s where 300 ms + its dirty pages at the rounds' rate predict 1.38 s.
   */
  fixedFreezeMs: number;
  /** Downtime budget when the job gives none. */
  defaultDowntimeBudgetMs: number;
  /** Page throughput `auto` assumes before a pair has been measured. */
  assumedBandwidthBytesPerSec: number;
  /** How long `auto` watches soft-dirty bits to measure the dirty rate. */
  dirtySampleMs: number;
  /** How long a post-copy trial result stays valid: a success, and a failure (shorter: the fix may be a sysctl). */
  trialTtlOkMs: number;
  trialTtlFailedMs: number;
  /** Longest a post-copy trial may take. */
  trialTimeoutMs: number;
  /**
   * Pre-copy restores with `--lazy-pages` and a local lazy-pages daemon when both nodes' CRIU can restore
   * parent-image pages lazily (`criu check --feature lazy_parent_pages`, scripts/lab/criu): the restore then
   * no longer copies all memory inside the freeze. False: always the eager restore.
   */
  lazyRestore: boolean;
}

export const DEFAULT_LIVE_CONFIG: LiveConfig = {
  maxRounds: 8,
  minShrink: 0.7,
  fixedFreezeMs: 300,
  defaultDowntimeBudgetMs: 1000,
  assumedBandwidthBytesPerSec: 400 * 2 ** 20,
  dirtySampleMs: 500,
  trialTtlOkMs: 6 * 3600_000,
  trialTtlFailedMs: 10 * 60_000,
  trialTimeoutMs: 60_000,
  lazyRestore: true,
};

/**
 * This strategy cannot run for this job (a missing kernel feature, a failed trial, an unsupported transport)
 * and the workload was not frozen: the engine falls back to the next strategy and records why.
 */
export class StrategyUnavailableError extends MigrationStepError {
  readonly unavailable = true;
  constructor(phase: string, message: string) {
    super(phase, message, true);
  }
}
