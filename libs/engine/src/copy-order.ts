import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import type { RecordOrder } from '@spotlift/store';
import { isFinished } from './migration-engine.js';

/**
 * How the journals of several worker hosts order their copies of a migration (libs/store RecordOrder): an end
 * state outranks any unfinished copy (the host that drove the job to its end knows more than one that saw it
 * under way), then versions. An unfinished copy written back into a Redis that had lost it is marked
 * `restoredFromJournal`: it may be stale, so the engine only recovers it from what the nodes say.
 */
export const MIGRATION_COPY_ORDER: RecordOrder<MigrationRecord> = {
  isFinal: isFinished,
  restored: (m, at) => {
    if (!isFinished(m)) m.restoredFromJournal = at;
  },
};

/** Workloads have no end state: their copies are ordered by version alone (where the workload last moved). */
export const WORKLOAD_COPY_ORDER: RecordOrder<WorkloadRecord> = { isFinal: () => false };
