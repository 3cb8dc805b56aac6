import type { MigrationRecord, PhaseName } from '@spotlift/domain';
import type { EngineConfig, MigrationContext } from './engine.types.js';
import type { NodeOps } from './node-ops/node-ops.js';
import { closeInterruptedPhases } from './phase-recorder.js';
import type { Rollback } from './rollback.js';
import type { RunControl } from './run-control.js';
import type { MigrationSteps } from './steps/migration-steps.js';

/** Phases during or after which the source may be frozen: a failure from here on must roll back. */
export const FREEZE_PHASES: ReadonlySet<PhaseName> = new Set<PhaseName>(['dump', 'transfer', 'restore', 'verify']);

/**
 * False only when no phase that freezes ran, or the one that did was a dump CRIU refused because another
 * tracer held the tree (`tree_held`, libs/criu outputs.ts): that dump froze nothing, and resuming the tree
 * would undo somebody else's freeze.
 */
export function mayBeFrozen(m: MigrationRecord): boolean {
  return m.phases.some((p) => FREEZE_PHASES.has(p.name) && !heldByAnother(p));
}

function heldByAnother(p: MigrationRecord['phases'][number]): boolean {
  return p.name === 'dump' && p.ok === false && (p.detail ?? '').includes('(tree_held)');
}

/**
 * CRIU could not seize the tree (`tree_held`): the kernel refuses a tree another tracer holds and one exiting as
 * CRIU came alike (EPERM); the node tells which. True when the workload's pid is gone (or a zombie): it exited,
 * it is not held. An unanswered question counts as no. Migrations and checkpoint takes ask it alike.
 */
export async function exitedInsteadOfHeld(ops: NodeOps, ctx: MigrationContext, error: Error): Promise<boolean> {
  if (!error.message.includes('(tree_held)')) return false;
  const state = await ops.processState(ctx.source, ctx.workload.pid).catch(() => undefined);
  return state === 'gone' || state === 'Z';
}

/** The commit phase ran to its end: the destination is the workload, whatever happens next. */
export function committed(m: MigrationRecord): boolean {
  return m.phases.some((p) => p.name === 'commit' && p.ok === true);
}

export function commitStarted(m: MigrationRecord): boolean {
  return m.phases.some((p) => p.name === 'commit');
}

export function addNote(m: MigrationRecord, note: string): void {
  (m.notes ??= []).push(`${new Date().toISOString()} ${note}`);
}

/** What recovery decided: an end state, or 'restart' when nothing was frozen and the job can start over. */
export type RecoveryOutcome = MigrationRecord['state'] | 'restart';

/**
 * A job found 'running' is the job of a worker that died (or an attempt that stopped and is retried).
 * Recovery decides from the record's phases and then from the nodes, never from the queue:
 * - the commit phase was entered: the destination was verified and the commit claimed, so finish it;
 * - a rollback was entered: run it again (it is idempotent);
 * - the source may be frozen: let CRIU commands the dead worker left running end, then adopt a restored
 *   tree that verifies, or roll back;
 * - nothing was frozen: release what the dead attempt started and start over.
 */
export class Recovery {
  constructor(
    private readonly steps: MigrationSteps,
    private readonly rollback: Rollback,
    private readonly ops: NodeOps,
    private readonly config: EngineConfig,
    /** Post-copy's pages may still be arriving: true once complete (or none), false after stopping them. */
    private readonly settleLazy: (ctx: MigrationContext) => Promise<boolean> = () => Promise.resolve(true),
  ) {}

  async recover(ctx: MigrationContext, control: RunControl): Promise<RecoveryOutcome> {
    const { migration, destination } = ctx;
    const last = migration.phases.at(-1)?.name ?? 'start';
    addNote(migration, `picked up again after the previous attempt stopped during '${last}'`);
    closeInterruptedPhases(migration, new Date());
    const cancelled = () => control.cancelRequested();

    if (commitStarted(migration)) {
      // The commit is claimed before its phase starts, so a cancel cannot win any more.
      await this.steps.commit(ctx);
      await this.steps.recordStatsFromFiles(ctx);
      return 'completed';
    }
    if (migration.phases.some((p) => p.name === 'rollback')) {
      return this.rollBack(
        ctx,
        migration.rollbackReason ?? `the previous attempt stopped during its rollback`,
        await cancelled(),
      );
    }
    if (!mayBeFrozen(migration)) {
      // A page-server the dead attempt started would hold its port and write into a directory we recreate.
      await this.ops.waitCriuIdle(destination, ctx.destinationDir, 2_000);
      ctx.workload.state = 'running';
      return 'restart';
    }
    // Before anything below kills CRIU daemons: a lazy-pages daemon still pulling pages is the restored
    // tree's memory. An incomplete transfer is stopped (restored tree killed) and the source resumed.
    if (!(await this.settleLazy(ctx))) {
      return this.rollBack(
        ctx,
        `the previous attempt stopped during '${last}' and the lazily restored pages did not all arrive`,
        await cancelled(),
      );
    }
    const restoreStarted = migration.phases.some((p) => p.name === 'restore');
    if (restoreStarted) {
      // A restore the dead worker started may still be creating the tree: decide only once it has ended.
      const idle = await this.ops.waitCriuIdle(
        destination,
        ctx.destinationDir,
        this.config.criuIdleTimeoutMs ?? 300_000,
      );
      if (!idle.idle) throw new Error(`criu is still running on ${destination.id} (pids ${idle.pids.join(' ')})`);
    }
    const cancel = await cancelled();
    // adoptRestored claims the commit point; a cancel that came first makes it roll back instead.
    if (!cancel && restoreStarted && (await this.steps.adoptRestored(ctx))) {
      await this.steps.recordStatsFromFiles(ctx);
      return 'completed';
    }
    const why = cancel
      ? `cancelled by request; the previous attempt had stopped during '${last}'`
      : `the worker running this migration stopped during '${last}' before the commit point`;
    return this.rollBack(ctx, why, cancel || (await cancelled()));
  }

  private async rollBack(ctx: MigrationContext, why: string, cancelled: boolean): Promise<RecoveryOutcome> {
    const { migration, workload, source } = ctx;
    migration.rollbackReason = why;
    migration.error = why;
    const alive = await this.rollback.run(ctx);
    if (!alive) {
      migration.error = `workload gone: pid ${workload.pid} on ${source.id} exited before the migration could move it; it runs nowhere (${why})`;
      return cancelled ? 'cancelled' : 'failed';
    }
    return cancelled ? 'cancelled' : 'rolled_back';
  }
}
