import type { CheckpointRecord, MigrationRecord } from '@spotlift/domain';
import { MigrationRepository, type CheckpointRepository } from '@spotlift/store';

/**
 * The shared steps (MigrationSteps, PhaseRecorder, Rollback, StopAndCopy's prepare and dump) work on a
 * migration-shaped record. A checkpoint runs them on such a record whose phase list is the checkpoint's
 * own (the same array), and this repository turns every save of it into a save of the checkpoint: the
 * checkpoint record shows each phase as it starts and ends, like a migration does. Nothing is ever
 * stored as a migration.
 */
export class CheckpointLog extends MigrationRepository {
  constructor(
    private readonly checkpoints: CheckpointRepository,
    private readonly checkpoint: CheckpointRecord,
    private readonly part: 'take' | 'restore',
  ) {
    super();
  }

  async save(view: MigrationRecord): Promise<void> {
    const cp = this.checkpoint;
    if (this.part === 'restore' && cp.restore && view.restoredPid !== undefined)
      cp.restore.restoredPid = view.restoredPid;
    cp.updatedAt = view.updatedAt;
    await this.checkpoints.save(cp);
  }

  get(): Promise<MigrationRecord | undefined> {
    return Promise.reject(new Error('a checkpoint log only records the checkpoint it runs'));
  }

  list(): Promise<MigrationRecord[]> {
    return this.get().then(() => []);
  }

  delete(): Promise<void> {
    return this.get().then(() => undefined);
  }
}
