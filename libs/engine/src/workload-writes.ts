import { processKey, type WorkloadRecord } from '@spotlift/domain';
import type { MigrationContext } from './engine.types.js';
import { MovedElsewhere } from './run-control.js';
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

/**
 * Why the stored workload record no longer names the process this migration started from (undefined while it
 * does): another node, another pid, or (both keys carrying the process's identity) another process than the
 * one the job claimed. Read afresh: the engine's copy may predate a move made by another worker. A record that
 * cannot be read (the store away, nothing journaled) leaves the engine's copy to decide.
 */
export async function movedAwayFromSource(
  repo: WorkloadRepository,
  ctx: MigrationContext,
): Promise<string | undefined> {
  const { migration, workload, source } = ctx;
  const current = (await repo.get(workload.id).catch(() => undefined)) ?? workload;
  if (current.nodeId !== source.id || current.pid !== workload.pid) {
    return `the workload record names pid ${current.pid} on '${current.nodeId}', not pid ${workload.pid} on the source '${source.id}' this job started from`;
  }
  const key = processKey(current);
  if (migration.claimKey?.startsWith('proc:') && key.startsWith('proc:') && key !== migration.claimKey) {
    return `the workload record names another process (${key}) than the one this job claimed (${migration.claimKey})`;
  }
  return undefined;
}

/**
 * The stale-run step every undo and commit takes first (Rollback, ContainerRollback, the commits of both kinds):
 * a run whose workload record no longer names its source (movedAwayFromSource) throws MovedElsewhere, saying
 * `action` (what it therefore does not do), before it touches anything.
 */
export async function refuseStaleRun(repo: WorkloadRepository, ctx: MigrationContext, action: string): Promise<void> {
  const moved = await movedAwayFromSource(repo, ctx);
  if (moved) throw new MovedElsewhere(action, moved);
}
