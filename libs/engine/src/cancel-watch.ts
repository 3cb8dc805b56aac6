import type { PhaseName } from '@spotlift/domain';
import type { MigrationContext } from './engine.types.js';
import type { RunControl } from './run-control.js';

/** Phases long enough to be worth interrupting; every other phase ends at the next boundary anyway. */
const INTERRUPTIBLE: ReadonlySet<PhaseName> = new Set<PhaseName>(['dump']);

/**
 * Phase boundaries are where a cancel normally takes effect; a dump of a large workload can take many
 * seconds, so while one runs a cancel is polled for and, when it comes, `interrupt` makes the dump fail on
 * CRIU's own error path (the engine kills the destination's page-server: CRIU then cures its parasite and
 * resumes the tree). Killing `criu dump` itself is never done: with its parasite inside the workload that
 * could leave the workload damaged.
 */
export function watchForCancel(
  ctx: MigrationContext,
  control: RunControl,
  pollMs: number,
  interrupt: () => Promise<void>,
): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    const current = ctx.migration.phases.at(-1);
    if (
      current &&
      current.endedAt === undefined &&
      INTERRUPTIBLE.has(current.name) &&
      (await control.cancelRequested())
    ) {
      stopped = true;
      await interrupt().catch(() => undefined);
      return;
    }
    schedule();
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void tick().catch(() => schedule()), pollMs);
    timer.unref();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
