import type { WorkloadRepository } from '@spotlift/store';
import type { EngineConfig, MigrationContext } from './engine.types.js';
import type { NodeOps } from './node-ops/node-ops.js';
import type { PhaseRecorder } from './phase-recorder.js';
import { refuseStaleRun, saveWorkloadFields } from './workload-writes.js';

/**
 * Undo before the commit point. The source may be resumed only once the destination provably runs no copy:
 * so when a restore was ever started there, CRIU must have finished on the destination and the restored
 * tree (from the record, or CRIU's own restored.pid) must be gone, otherwise this throws and the source
 * stays frozen until a retry can check again. Frozen beats running twice. When no restore was started, no
 * copy can exist and an unreachable destination does not hold the source back.
 *
 * Every step is idempotent, so a rollback that dies half way simply runs again.
 *
 * A rollback undoes only this job's own move: when the workload record no longer names the process the job
 * started from (another worker finished the migration and this run comes from a stale copy of its record), it
 * throws MovedElsewhere before touching anything; the restored tree it would kill may be the workload itself.
 */
export class Rollback {
  constructor(
    private readonly ops: NodeOps,
    private readonly phases: PhaseRecorder,
    private readonly workloads: WorkloadRepository,
    private readonly config: EngineConfig,
  ) {}

  /** Returns false when the workload turned out to be gone (it exited before or during the dump). */
  async run(ctx: MigrationContext): Promise<boolean> {
    const { migration, workload, source, destination } = ctx;
    const idleMs = this.config.criuIdleTimeoutMs ?? 5 * 60_000;
    let alive = true;
    await refuseStaleRun(this.workloads, ctx, 'rolls nothing back (no kill, no resume)');
    await this.phases.run(migration, 'rollback', async (phase) => {
      const notes: string[] = [];
      const restoreStarted = migration.phases.some((p) => p.name === 'restore');
      if (restoreStarted) {
        const idle = await this.ops.waitCriuIdle(destination, ctx.destinationDir, idleMs);
        if (!idle.idle)
          throw new Error(
            `criu is still running on ${destination.id} (pids ${idle.pids.join(' ')}); the source stays frozen`,
          );
        const restored =
          migration.restoredPid ?? (await this.ops.readPidfile(destination, `${ctx.destinationDir}/restored.pid`));
        if (restored) {
          const state = await this.ops.killTree(destination, restored);
          if (state !== 'gone') {
            throw new Error(
              `restored pid ${restored} on ${destination.id} did not die (state ${state}); the source stays frozen`,
            );
          }
          notes.push(`restored pid ${restored} on ${destination.id} killed`);
          delete migration.restoredPid;
        }
      } else {
        // Only a page-server can be left there; it holds no copy of the workload, so this is best effort.
        await this.ops
          .waitCriuIdle(destination, ctx.destinationDir, 1_000)
          .catch(() => notes.push(`${destination.id} did not answer`));
      }
      if (migration.phases.some((p) => p.name === 'dump')) {
        // A dump still running (its worker died) would stop the tree again after a SIGCONT.
        const idle = await this.ops.waitCriuIdle(source, ctx.sourceDir, idleMs);
        if (!idle.idle)
          throw new Error(`criu is still running on ${source.id} (pids ${idle.pids.join(' ')}); not resuming under it`);
      }
      const state = await this.ops.resumeTree(source, workload.pid);
      if (state === 'gone') {
        alive = false;
        workload.state = 'gone';
        notes.push(
          `the workload (pid ${workload.pid}) is gone from ${source.id}: it exited before or during the dump; it runs nowhere`,
        );
      } else if (state === 'T' || state === 't') {
        throw new Error(`source pid ${workload.pid} on ${source.id} is still stopped (state ${state}) after SIGCONT`);
      } else {
        workload.state = 'running';
        notes.push(`source pid ${workload.pid} on ${source.id} resumed (state ${state})`);
      }
      await saveWorkloadFields(this.workloads, workload, ['state']);
      phase.detail = notes.join('; ');
    });
    return alive;
  }
}
