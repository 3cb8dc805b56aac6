import { z } from 'zod';

/** The sweeper's environment (see README "The sweeper"), kept here so app-config.ts only spreads it. */
export const SweeperEnv = z.object({
  /** How often worker replicas sweep the nodes (and once at boot); 0 turns the sweeper off. */
  SPOTLIFT_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).max(86_400_000).default(60_000),
  /** Images a job kept on purpose (`keepImages`) are removed once they are this old (they hold process memory). */
  SPOTLIFT_KEEP_IMAGES_MAX_AGE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(90 * 86_400_000)
    .default(24 * 3_600_000),
  /**
   * A directory no record of this installation knows is left alone until it is this old (another installation
   * on the same nodes may be between its freeze and its restore; see README).
   */
  SPOTLIFT_SWEEP_ORPHAN_GRACE_MS: z.coerce.number().int().min(0).max(86_400_000).default(600_000),
});

export interface SweeperSettings {
  intervalMs: number;
  keepImagesMaxAgeMs: number;
  orphanGraceMs: number;
}

export function sweeperSettings(e: z.infer<typeof SweeperEnv>): SweeperSettings {
  return {
    intervalMs: e.SPOTLIFT_SWEEP_INTERVAL_MS,
    keepImagesMaxAgeMs: e.SPOTLIFT_KEEP_IMAGES_MAX_AGE_MS,
    orphanGraceMs: e.SPOTLIFT_SWEEP_ORPHAN_GRACE_MS,
  };
}
