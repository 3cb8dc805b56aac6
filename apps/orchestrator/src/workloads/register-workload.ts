import { z } from 'zod';
import { checkDeclaredPath } from '@spotlift/engine';

/** The body of POST /workloads. What the node shows about the pid is checked later, over SSH. */
export const RegisterWorkload = z
  .object({
    name: z.string().min(1).max(120),
    node: z.string().min(1).max(63),
    pid: z.number().int().positive().max(4_194_304).optional(),
    pidfile: z.string().startsWith('/').max(4096).optional(),
    /** 1 (expendable) .. 10 (critical); evacuations save higher priorities first. Default: the fleet's. */
    priority: z.number().int().min(1).max(10).optional(),
    /** Distinct bytes the workload dirties per second, if known (up to 100 GiB/s). */
    dirtyRateBytesPerSec: z
      .number()
      .min(0)
      .max(100 * 2 ** 30)
      .optional(),
    /** `false`: rebalancing never moves it (evacuations still do). */
    movable: z.boolean().optional(),
    /** Longest freeze a rebalancing move may cost it: a move predicted above it is never proposed. */
    maxDowntimeMs: z.number().int().min(1).max(3_600_000).optional(),
    /**
     * Files and directories the workload uses that the destination must have (open files, working
     * directory, data): copied before and, the changes only, during the freeze. Absolute paths.
     */
    paths: z
      .array(
        z.string().superRefine((p, ctx) => {
          const problem = checkDeclaredPath(p);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
      )
      .max(64)
      .optional(),
  })
  .strict()
  .refine((w) => (w.pid === undefined) !== (w.pidfile === undefined), {
    message: 'give exactly one of pid or pidfile',
  });
export type RegisterWorkload = z.infer<typeof RegisterWorkload>;
