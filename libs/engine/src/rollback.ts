import type { WorkloadRepository } from '@spotlift/store';
import type { MigrationContext } from './engine.types.js';
import type { NodeOps } from './node-ops.js';
import type { PhaseRecorder } from './phase-recorder.js';

/**
 * Undo after a failure past the freeze: a restored-but-unverified tree on the destination is killed first
 * (the source is still the workload), then every task of the frozen source is resumed. Both steps are
 * idempotent, so a rollback that itself dies half way can simply run again.
 */
export class Rollback {
  constructor(
    private readonly ops: NodeOps,
    private readonly phases: PhaseRecorder,
    private readonly workloads: WorkloadRepository,
  ) {}

  async run(ctx: MigrationContext): Promise<void> {
    const { migration, workload, source, destination } = ctx;
    await this.phases.run(migration, 'rollback', async (phase) => {
      const notes: string[] = [];
      const restored = migration.restoredPid;
      if (restored) {
        const state = await this.ops.killTree(destination, restored);
        notes.push(`restored pid ${restored} on ${destination.id} killed (state ${state})`);
        delete migration.restoredPid;
      }
      const state = await this.ops.resumeTree(source, workload.pid);
      if (state === 'gone') {
        workload.state = 'gone';
        notes.push(`the workload (pid ${workload.pid}) is gone from ${source.id}: it exited before or during the dump`);
      } else {
        workload.state = 'running';
        notes.push(`source pid ${workload.pid} on ${source.id} resumed (state ${state})`);
      }
      await this.workloads.save(workload);
      phase.detail = notes.join('; ');
    });
  }
}
