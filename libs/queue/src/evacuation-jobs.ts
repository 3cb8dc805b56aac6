import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

/**
 * The evacuations queue: one long job per evacuation that plans, starts migrations with bounded
 * parallelism and re-plans as they end. Kept apart from queues.ts's migration table so the two evolve
 * independently; the conventions are the same (ids only in job data, the record id is the job id).
 */
export const EVACUATIONS_QUEUE = 'evacuations';
export const EVACUATE_JOB = 'evacuate';

/**
 * Not retried by BullMQ: the coordinator is re-entrant from the record, and a worker that dies mid-job is
 * handled by the stalled-job check, which hands the job to another worker that resumes it.
 */
export const EVACUATE_JOB_OPTIONS: JobsOptions = { attempts: 1, removeOnComplete: 1_000, removeOnFail: 5_000 };

export const EvacuateJobData = z.object({ evacuationId: z.string().regex(/^[A-Za-z0-9_-]{1,120}$/) });
export type EvacuateJobData = z.infer<typeof EvacuateJobData>;

/** The evacuation id is the job id, so every replica enqueueing the same evacuation adds one job. */
export function evacuateJobId(evacuationId: string): string {
  return `evacuate-${evacuationId}`;
}
