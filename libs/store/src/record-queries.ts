import type {
  CheckpointRecord,
  EvacuationRecord,
  MigrationRecord,
  MigrationState,
  WorkloadRecord,
  WorkloadState,
} from '@spotlift/domain';
import {
  CHECKPOINT_INDEX,
  EVACUATION_INDEX,
  MIGRATION_FINISHED,
  MIGRATION_INDEX,
  MIGRATION_STATES,
  WORKLOAD_INDEX,
} from './record-indexes.js';
import { allWhere, type Repository } from './repositories.port.js';

/**
 * The reads the notice, evacuation and migration paths make, each from a term index (record-indexes.ts): a
 * node's or a workload's records, never every record of the kind. At 1,000 nodes a `list()` of the workloads,
 * evacuations or migrations is megabytes on the one Redis client; these are a few keys each.
 */
type Pages<T extends { id: string }> = Pick<Repository<T>, 'page'>;

/** Every evacuation of one node (open and finished). */
export function evacuationsOfNode(repo: Pages<EvacuationRecord>, nodeId: string): Promise<EvacuationRecord[]> {
  return allWhere(repo, EVACUATION_INDEX, [`node=${nodeId}`]);
}

/** The workloads recorded on one node, of one state when given. */
export function workloadsOnNode(
  repo: Pages<WorkloadRecord>,
  nodeId: string,
  state?: WorkloadState,
): Promise<WorkloadRecord[]> {
  return allWhere(repo, WORKLOAD_INDEX, [`node=${nodeId}`, ...(state ? [`state=${state}`] : [])]);
}

/** The workload records that hold one process (its processKey; gone and checkpointed ones hold none). */
export function workloadsOfProcess(repo: Pages<WorkloadRecord>, key: string): Promise<WorkloadRecord[]> {
  return allWhere(repo, WORKLOAD_INDEX, [`process=${key}`]);
}

/** The checkpoints that involve one node (as source, storage or restore destination). */
export function checkpointsOfNode(repo: Pages<CheckpointRecord>, nodeId: string): Promise<CheckpointRecord[]> {
  return allWhere(repo, CHECKPOINT_INDEX, [`node=${nodeId}`]);
}

/** The checkpoints of one workload. */
export function checkpointsOfWorkload(repo: Pages<CheckpointRecord>, workloadId: string): Promise<CheckpointRecord[]> {
  return allWhere(repo, CHECKPOINT_INDEX, [`workload=${workloadId}`]);
}

/** The states of a migration whose job has not ended: every state retention may not trim. */
const IN_FLIGHT: MigrationState[] = MIGRATION_STATES.filter((s) => !MIGRATION_FINISHED.includes(s));

/**
 * Every migration not yet ended (bounded by the workers' concurrency, not by the records kept), or only those
 * with `nodeId` as their source or destination.
 */
export async function migrationsInFlight(repo: Pages<MigrationRecord>, nodeId?: string): Promise<MigrationRecord[]> {
  const node = nodeId === undefined ? [] : [`node=${nodeId}`];
  const found = await Promise.all(IN_FLIGHT.map((s) => allWhere(repo, MIGRATION_INDEX, [...node, `state=${s}`])));
  return found.flat();
}

/** The newest `limit` completed migrations, newest first (one page of the `state=completed` index). */
export async function newestCompletedMigrations(
  repo: Pages<MigrationRecord>,
  limit: number,
): Promise<MigrationRecord[]> {
  return (await repo.page({ limit, order: 'desc', where: ['state=completed'] }, MIGRATION_INDEX)).items;
}
