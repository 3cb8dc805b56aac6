import { z } from 'zod';
import { checkDeclaredPath } from '@spotlift/engine';

/** Guard mode's settings (POST /workloads `guard`, PUT /workloads/:id/guard). */
export const GuardBody = z
  .object({
    intervalSeconds: z.number().int().min(5).max(86_400),
    keep: z.number().int().min(1).max(20).optional(),
    maxFreezeMs: z.number().int().min(1).max(3_600_000).optional(),
  })
  .strict();
export type GuardBody = z.infer<typeof GuardBody>;

/**
 * The body of POST /workloads: a process (`pid` or `pidfile`, `kind` absent or 'process') or a Podman container
 * (`kind: 'podman'`, `container`: its name or id on the node). What the node shows is checked later, over SSH.
 */
export const RegisterWorkload = z
  .object({
    /** Required for a process; a container's defaults to its Podman name. */
    name: z.string().min(1).max(120).optional(),
    node: z.string().min(1).max(63),
    kind: z.enum(['process', 'podman']).optional(),
    /** Podman's own rule for names (ids match it too); never read as an option on the node. */
    container: z
      .string()
      .max(253)
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a Podman container name or id')
      .optional(),
    pid: z.number().int().positive().max(4_194_304).optional(),
    pidfile: z.string().startsWith('/').max(4096).optional(),
    /** 1 (expendable) .. 10 (critical); evacuations save higher priorities first. Default: the fleet's. */
    priority: z.number().int().min(1).max(10).optional(),
    /** Longest freeze a move may cost it, ms (evacuation plans and rebalancing proposals never exceed it; none: no cap). */
    maxDowntimeMs: z.number().int().min(1).max(3_600_000).optional(),
    /** Distinct bytes the workload dirties per second, if known (up to 100 GiB/s). */
    dirtyRateBytesPerSec: z
      .number()
      .min(0)
      .max(100 * 2 ** 30)
      .optional(),
    /** `false`: rebalancing never moves it (evacuations still do). */
    movable: z.boolean().optional(),
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
    /** Guard mode: periodic `--leave-running` checkpoints to the storage node, the last `keep` kept. */
    guard: GuardBody.optional(),
  })
  .strict()
  .superRefine((w, ctx) => {
    if (w.kind === 'podman') {
      if (w.container === undefined) ctx.addIssue({ code: 'custom', message: "kind 'podman' needs container" });
      if (w.pid !== undefined || w.pidfile !== undefined) {
        ctx.addIssue({ code: 'custom', message: "kind 'podman' takes container, not pid or pidfile" });
      }
      return;
    }
    if (w.container !== undefined) ctx.addIssue({ code: 'custom', message: "container needs kind 'podman'" });
    if ((w.pid === undefined) === (w.pidfile === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of pid or pidfile' });
    }
    if (w.name === undefined) ctx.addIssue({ code: 'custom', message: 'name is required for a process' });
  });
export type RegisterWorkload = z.infer<typeof RegisterWorkload>;
