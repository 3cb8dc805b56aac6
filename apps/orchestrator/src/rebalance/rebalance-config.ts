import { z } from 'zod';
import { cronProblem, REBALANCE_POLICIES } from '@spotlift/placement';

/**
 * The config file's `rebalance` section (README "Capacity rebalancing"), strict: a typo is an error, and every
 * problem is listed at once with the rest of the file's.
 */
export const RebalancePolicyName = z.enum(REBALANCE_POLICIES as [string, ...string[]], {
  error: `a policy is one of ${REBALANCE_POLICIES.join(', ')}`,
});

const Window = z
  .object({
    /** Five-field cron (or six with seconds), UTC: when each window opens. */
    cron: z
      .string()
      .min(1)
      .max(120)
      .superRefine((c, ctx) => {
        const problem = cronProblem(c);
        if (problem) ctx.addIssue({ code: 'custom', message: `not a cron expression: ${problem}` });
      }),
    durationSeconds: z
      .number()
      .int()
      .min(60)
      .max(7 * 86_400),
    kind: z.enum(['allow', 'forbid']).default('allow'),
  })
  .strict();

export const RebalanceBudgetSettings = z
  .object({
    maxConcurrentMoves: z.number().int().min(1).max(64).default(1),
    maxMovesPerHour: z.number().int().min(1).max(10_000).default(12),
    // The moves started are kept a week: a longer interval could not be enforced.
    minMoveIntervalSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(3_600),
    windows: z.array(Window).max(32).default([]),
  })
  .strict()
  .refine((b) => b.maxConcurrentMoves <= b.maxMovesPerHour, {
    message: 'maxConcurrentMoves cannot exceed maxMovesPerHour (the hour would stop the moves first)',
    path: ['maxConcurrentMoves'],
  });

const fraction = z.number().gt(0).max(1);

export const RebalanceSettings = z
  .object({
    /** `off`: nothing; `plan`: plans on the schedule and on demand, applied by a person; `auto`: applied within budgets. */
    mode: z.enum(['off', 'plan', 'auto']).default('off'),
    /** How often one replica of the installation evaluates (at most one evaluation per tick, whatever the replicas). */
    intervalMs: z.number().int().min(10_000).max(86_400_000).default(300_000),
    policies: z.array(RebalancePolicyName).max(3).default(['consolidate', 'spread', 'de-risk']),
    /** A move (a node's moves, for consolidate) is proposed only when gain / disruption reaches this. */
    scoreThreshold: z.number().min(0).max(1_000_000).default(1),
    budgets: RebalanceBudgetSettings.default(RebalanceBudgetSettings.parse({})),
    consolidate: z
      .object({ maxNodesPerPlan: z.number().int().min(1).max(100).default(1), targetFraction: fraction.default(0.8) })
      .strict()
      .default({ maxNodesPerPlan: 1, targetFraction: 0.8 }),
    spread: z
      .object({ overfullFraction: fraction.default(0.9), targetFraction: fraction.default(0.8) })
      .strict()
      .refine((s) => s.targetFraction < s.overfullFraction, {
        message: 'targetFraction must be below overfullFraction',
        path: ['targetFraction'],
      })
      .default({ overfullFraction: 0.9, targetFraction: 0.8 }),
    deRisk: z
      .object({
        /** Notice weight (interruption 1, recommendation 0.5; the pool's, plus the node's own again) from which a node is left. */
        minRisk: z.number().gt(0).max(1000).default(1),
        minPriority: z.number().int().min(1).max(10).default(1),
        windowSeconds: z
          .number()
          .int()
          .min(60)
          .max(90 * 86_400)
          .default(7 * 86_400),
      })
      .strict()
      .default({ minRisk: 1, minPriority: 1, windowSeconds: 7 * 86_400 }),
    /**
     * Part of a spot node's notice that packing leaves unused (0..0.9): the cluster's scheduler adds work between two
     * evaluations. No move fills a node beyond what leaves within its notice (aws 120 s, gcp/azure 30 s) otherwise.
     */
    noticeReserveFraction: z.number().min(0).max(0.9).default(0.2),
    /**
     * Sizes that reserve per spot pool from the notices recorded there (libs/placement rebalance-reserve.ts): the
     * whole of it from `fullAtPerNodeDay` weighted notices per node and day, `floorFraction` for a pool without any
     * in `windowSeconds`, linearly between. Absent: one reserve for every pool.
     */
    poolReserve: z
      .object({
        fullAtPerNodeDay: z.number().gt(0).max(100),
        floorFraction: z.number().min(0).max(0.9).default(0),
        windowSeconds: z
          .number()
          .int()
          .min(3_600)
          .max(90 * 86_400)
          .default(7 * 86_400),
      })
      .strict()
      .optional(),
    /** Price per hour of each node (node id -> price, any one currency): the cost a consolidation saves. */
    nodePrices: z.record(z.string().max(63), z.number().min(0).max(1_000_000)).default({}),
    /** Plans kept (newest); older ones are dropped. */
    keepPlans: z.number().int().min(1).max(1000).default(50),
    /** POSTed `{node, planId, at}` when a node becomes releasable (best effort, 5 s cap). */
    releasableWebhook: z.url({ protocol: /^https?$/ }).optional(),
  })
  .strict();
export type RebalanceSettings = z.infer<typeof RebalanceSettings>;

/** The body of POST /rebalance/evaluate: the configured policies unless it names others. */
export const EvaluateBody = z
  .object({ policies: z.array(RebalancePolicyName).min(1).max(3).optional() })
  .strict()
  .default({});
export type EvaluateBody = z.infer<typeof EvaluateBody>;
