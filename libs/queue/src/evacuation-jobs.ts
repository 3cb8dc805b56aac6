import type { JobsOptions, WorkerOptions } from 'bullmq';
import { MIGRATION_WORKER_OPTIONS } from './queues.js';
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

/**
 * Worker options of the evacuations queue: the migrations' lock and stalled-check periods (queues.ts says why and
 * what they cost). A replica killed mid-evacuation (its own spot VM reclaimed, say) left its evacuations to
 * BullMQ's defaults, 30 s / 30 s: up to a minute of a 120 s notice (30 s on GCP) before another replica resumed
 * them. Two coordinators on one evacuation after a stalled event loop are harmless: every move starts through the
 * workload's claim, and the record is saved as a compare-and-set.
 */
export const EVACUATION_WORKER_OPTIONS: Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'> =
  MIGRATION_WORKER_OPTIONS;

export const EvacuateJobData = z.object({ evacuationId: z.string().regex(/^[A-Za-z0-9_-]{1,120}$/) });
export type EvacuateJobData = z.infer<typeof EvacuateJobData>;

/** The evacuation id is the job id, so every replica enqueueing the same evacuation adds one job. */
export function evacuateJobId(evacuationId: string): string {
  return `evacuate-${evacuationId}`;
}
