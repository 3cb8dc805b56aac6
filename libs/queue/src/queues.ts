import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

/** Queue names. One queue per kind of work, so a worker role can take some kinds and not others. */
export const QueueName = {
  Migrations: 'migrations',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

export const JobName = {
  /** Runs one migration end to end; the engine keeps its own step record, so a re-run resumes or rolls back. */
  Migrate: 'migrate',
} as const;
export type JobName = (typeof JobName)[keyof typeof JobName];

/**
 * Job options per job name, in one table. A migration is not retried by BullMQ: the engine rolls back
 * inside the job, and a worker that dies mid-job is handled by BullMQ's stalled-job check, which hands the
 * job to another worker whose engine reconciles from the stored step.
 */
export const JOB_OPTIONS: Record<JobName, JobsOptions> = {
  [JobName.Migrate]: { attempts: 1, removeOnComplete: 1_000, removeOnFail: 5_000 },
};

/** Job data is untrusted (Redis outlives deploys): ids only, parsed before any side effect. */
export const MigrateJobData = z.object({ migrationId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) });
export type MigrateJobData = z.infer<typeof MigrateJobData>;

/** BullMQ job ids must not contain ':'; the migration id is the job id, so enqueueing twice is a no-op. */
export function migrateJobId(migrationId: string): string {
  return `migrate-${migrationId}`;
}
