import type { WorkloadRecord } from '@spotlift/domain';
import { StaleRecordError, type WorkloadRepository } from '@spotlift/store';

/**
 * Writes the named fields of the engine's copy of a workload onto the stored record. The engine holds its
 * copy for a whole migration while others may save the record too (a refresh of its tree, a registration):
 * saving the copy whole would either overwrite them or, with versioned records, fail at the worst moment
 * (the commit). So the engine re-reads and writes only what it decided, and retries when it lost a race.
 */
export async function saveWorkloadFields(
  repo: WorkloadRepository,
  workload: WorkloadRecord,
  fields: readonly (keyof WorkloadRecord)[],
): Promise<void> {
  const pick = () => Object.fromEntries(fields.map((f) => [f, workload[f]])) as Partial<WorkloadRecord>;
  let saved: WorkloadRecord | undefined;
  try {
    saved = await repo.update(workload.id, (current) => {
      Object.assign(current, pick());
    });
  } catch (error) {
    if (error instanceof StaleRecordError) throw error;
    // The record could not be read: the store is away and holds no local copy of it yet (the worker's journal
    // keeps what it wrote, and this may be its first write of the workload). Nobody can write the record while
    // the store is away either, so the engine's copy is the latest: saved whole, the journal keeps it.
    await repo.save({ ...workload });
    return;
  }
  // A record deleted under a running migration: write the engine's copy back (unconditionally, as a new one).
  if (!saved) await repo.save({ ...workload, version: undefined } as WorkloadRecord);
}
