import type {
  ApiTokenRecord,
  CheckpointRecord,
  CheckpointState,
  EvacuationRecord,
  EvacuationState,
  MigrationRecord,
  MigrationState,
  NodeRecord,
  NodeState,
  WorkloadRecord,
  WorkloadState,
} from '@spotlift/domain';
import { indexKey } from './process-index.js';
import { type RecordIndex, createdMs } from './record-pages.js';

/** Every value of a state type, checked complete by the compiler (a new state must be listed here). */
const all = <S extends string>(states: Record<S, true>) => Object.keys(states) as [S, ...S[]];

/** The states a list's `state` filter accepts, per kind. */
export const MIGRATION_STATES = all<MigrationState>({
  queued: true,
  running: true,
  completed: true,
  rolled_back: true,
  failed: true,
  cancelled: true,
});
/** Migration states retention may trim: the job is over and nothing acts on the record again. */
export const MIGRATION_FINISHED: MigrationState[] = ['completed', 'rolled_back', 'failed', 'cancelled'];
export const WORKLOAD_STATES = all<WorkloadState>({ running: true, migrating: true, gone: true, checkpointed: true });
export const NODE_STATES = all<NodeState>({
  ready: true,
  draining: true,
  terminating: true,
  gone: true,
  unreachable: true,
});
export const EVACUATION_STATES = all<EvacuationState>({
  planning: true,
  running: true,
  completed: true,
  partial: true,
  failed: true,
});
export const EVACUATION_FINISHED: EvacuationState[] = ['completed', 'partial', 'failed'];
export const CHECKPOINT_STATES = all<CheckpointState>({
  queued: true,
  taking: true,
  stored: true,
  failed: true,
  restoring: true,
  restored: true,
});
export const TOKEN_STATES: [string, ...string[]] = ['active', 'revoked'];

const term = (field: string, value: string | undefined): string[] => (value ? [`${field}=${value}`] : []);

export const MIGRATION_INDEX: RecordIndex<MigrationRecord> = {
  terms: (m) => [
    ...term('state', m.state),
    ...term('node', m.sourceNodeId),
    ...(m.destinationNodeId !== m.sourceNodeId ? term('node', m.destinationNodeId) : []),
    ...term('workload', m.workloadId),
  ],
  created: createdMs,
};

export const WORKLOAD_INDEX: RecordIndex<WorkloadRecord> = {
  // `process`: the process it holds (process-index.ts), so a registration finds a rival record in one read.
  terms: (w) => [...term('state', w.state), ...term('node', w.nodeId), ...term('process', indexKey(w))],
  created: createdMs,
};

export const NODE_INDEX: RecordIndex<NodeRecord> = {
  terms: (n) => term('state', n.state),
  created: createdMs,
};

export const EVACUATION_INDEX: RecordIndex<EvacuationRecord> = {
  terms: (e) => [...term('state', e.state), ...term('node', e.nodeId)],
  created: createdMs,
};

export const CHECKPOINT_INDEX: RecordIndex<CheckpointRecord> = {
  terms: (c) => [
    ...new Set([
      ...term('state', c.state),
      ...term('node', c.sourceNodeId),
      ...term('node', c.storageNodeId),
      ...term('node', c.restore?.destinationNodeId),
      ...term('workload', c.workloadId),
    ]),
  ],
  created: createdMs,
};

export const TOKEN_INDEX: RecordIndex<ApiTokenRecord> = {
  terms: (t) => [...term('role', t.role), ...term('node', t.nodeId), `state=${t.revokedAt ? 'revoked' : 'active'}`],
  created: createdMs,
};

/**
 * Each kind's index, by the kind name RedisRecords stores it under: every RedisRecords of a kind keeps the
 * same terms in step, whichever module built it (several build their own over the same keys).
 */
export const RECORD_INDEXES: Record<string, RecordIndex<unknown> | undefined> = {
  migration: MIGRATION_INDEX,
  workload: WORKLOAD_INDEX,
  node: NODE_INDEX,
  evacuation: EVACUATION_INDEX,
  checkpoint: CHECKPOINT_INDEX,
  'api-token': TOKEN_INDEX,
};
