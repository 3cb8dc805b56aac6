import type { JobsOptions, WorkerOptions } from 'bullmq';
import { z } from 'zod';

/** Queue names. One queue per kind of work, so a worker role can take some kinds and not others. */
export const QueueName = {
  Migrations: 'migrations',
  /** Checkpoints to a storage node and their restores (libs/engine checkpoint/). */
  Checkpoints: 'checkpoints',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

export const JobName = {
  /** Runs one migration end to end; the engine keeps its own step record, so a re-run resumes or rolls back. */
  Migrate: 'migrate',
  /** Dumps a workload to a storage node; a re-run finishes or undoes what a dead worker left. */
  Checkpoint: 'checkpoint',
  /** Restores a stored checkpoint on a destination node. */
  RestoreCheckpoint: 'restore-checkpoint',
} as const;
export type JobName = (typeof JobName)[keyof typeof JobName];

/**
 * Job options per job name, in one table. A migration that ends (completed, rolled back, failed, cancelled)
 * is never retried: the engine rolled back inside the job and the worker marks deterministic failures
 * unrecoverable. Attempts are for a run the engine had to interrupt without an end state (a node that did
 * not answer over SSH, a rollback that could not yet prove the destination holds no copy): the record stays
 * 'running' and the next attempt continues from what the nodes say. The backoff (1, 2, 4, 8, 16, 32 s, about a
 * minute in all) covers an sshd restart or a short network cut; longer outages end in a clear failure.
 * A worker that dies mid-job is a different path: BullMQ's stalled-job check (WORKER_OPTIONS) hands the job
 * to another worker, which does not count as an attempt.
 */
export const JOB_OPTIONS: Record<JobName, JobsOptions> = {
  [JobName.Migrate]: {
    attempts: 7,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: 1_000,
    removeOnFail: 5_000,
  },
  // Checkpoint jobs end in a recorded state (stored, failed, restored, stored again after a failed
  // restore) and never throw for a failed step; attempts cover a run interrupted without one (a node
  // that did not answer while the source may be frozen), with the migrations' backoff.
  [JobName.Checkpoint]: {
    attempts: 7,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: 1_000,
    removeOnFail: 5_000,
  },
  [JobName.RestoreCheckpoint]: {
    attempts: 7,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: 1_000,
    removeOnFail: 5_000,
  },
};

/**
 * The BullMQ priority of a migration job no deadline presses (a manual move, rebalancing). An evacuation's
 * moves race the notice's deadline and are queued without one, which BullMQ hands out before any prioritized
 * job: a reclaim of 50 nodes is not queued behind 200 moves an operator posted a moment earlier.
 */
export const ROUTINE_MIGRATION_PRIORITY = 10;

/**
 * Worker options of the migrations queue. BullMQ keeps a lock on each active job, renewed every lockDuration / 2; when a
 * worker dies the lock expires and the stalled-job check (every stalledInterval) moves the job back to wait
 * for another worker. A dead worker's migration may have left the workload frozen, so every second until
 * the check fires is downtime: migrations use 10 s / 5 s instead of BullMQ's 30 s / 30 s, so a job is picked
 * up again within about 15 s (lock expiry plus at most one check; a check only sees a job stalled if it was
 * active at the previous check too, so up to 20 s).
 * The trade-off: a worker whose event loop or Redis link stalls for more than 10 s loses its lock while still
 * running the job, and another worker starts it too. The engine is built for that: it stops at the next
 * phase boundary when BullMQ reports the lock lost (RunControl.lost), every step checks the nodes before
 * acting, and the commit point is claimed once (MigrationFlags). The engine awaits I/O almost only, so a
 * 10 s stall means a sick process anyway. maxStalledCount 3: re-running a migration is safe, so a job survives
 * a few dead workers before BullMQ fails it (the orchestrator's boot reconciliation then picks it up).
 */
export const MIGRATION_WORKER_OPTIONS: Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'> = {
  lockDuration: 10_000,
  stalledInterval: 5_000,
  maxStalledCount: 3,
};

/** Job data is untrusted (Redis outlives deploys): ids only, parsed before any side effect. */
export const MigrateJobData = z.object({ migrationId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) });
export type MigrateJobData = z.infer<typeof MigrateJobData>;

/** BullMQ job ids must not contain ':'; the migration id is the job id, so enqueueing twice is a no-op. */
export function migrateJobId(migrationId: string): string {
  return `migrate-${migrationId}`;
}
