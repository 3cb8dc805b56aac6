import { z } from 'zod';
import { JobName } from './queues.js';

/**
 * Job data and ids of the checkpoints queue (names and options are in queues.ts's tables). Ids only in the
 * data; the job id is derived from the record, so enqueueing the same work twice adds one job.
 */
const Id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export const CheckpointJobData = z.object({ checkpointId: Id });
export type CheckpointJobData = z.infer<typeof CheckpointJobData>;

export const RestoreCheckpointJobData = z.object({ checkpointId: Id, attempt: z.number().int().min(1).max(1000) });
export type RestoreCheckpointJobData = z.infer<typeof RestoreCheckpointJobData>;

export function checkpointJobId(checkpointId: string): string {
  return `${JobName.Checkpoint}-${checkpointId}`;
}

/** One job per restore attempt: a failed restore leaves the images stored and may be asked again. */
export function restoreCheckpointJobId(checkpointId: string, attempt: number): string {
  return `${JobName.RestoreCheckpoint}-${checkpointId}-${attempt}`;
}
