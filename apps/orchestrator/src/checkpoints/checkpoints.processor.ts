import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, type Job } from 'bullmq';
import type { CheckpointRecord } from '@spotlift/domain';
import { CheckpointFlow } from '@spotlift/engine';
import {
  CheckpointJobData,
  JobName,
  MIGRATION_WORKER_OPTIONS,
  QueueName,
  RestoreCheckpointJobData,
} from '@spotlift/queue';
import { WorkloadClaims, checkpointOwner } from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';

/**
 * The worker role's side of checkpoints. The flow records every end (stored, failed, restored, stored
 * again after a failed restore) and throws only when it had to stop without one (a node that did not
 * answer while the source may be frozen, a restored tree not yet proven gone): those are retried with the
 * table's backoff, and the re-run continues from the record. The lock timings are the migrations' (a dead
 * worker may leave a frozen source, so it is picked up again quickly).
 */
@Processor(QueueName.Checkpoints, MIGRATION_WORKER_OPTIONS)
export class CheckpointsProcessor extends WorkerHost implements OnModuleInit {
  private readonly logger = new Logger('checkpoints');

  constructor(
    private readonly flow: CheckpointFlow,
    private readonly config: AppConfig,
    private readonly claims: WorkloadClaims,
  ) {
    super();
  }

  onModuleInit(): void {
    this.worker.concurrency = this.config.checkpointConcurrency;
  }

  async process(job: Job<unknown>): Promise<{ state: string }> {
    let cp: CheckpointRecord;
    if (job.name === JobName.Checkpoint) {
      const data = CheckpointJobData.safeParse(job.data);
      if (!data.success) throw new UnrecoverableError(`malformed job data: ${data.error.message}`);
      cp = await this.flow.take(data.data.checkpointId);
      // The take ended (stored or failed): the process is free for the next job.
      if (cp.claimKey && cp.state !== 'queued' && cp.state !== 'taking') {
        await this.claims.release(cp.claimKey, checkpointOwner(cp.id)).catch(() => undefined);
      }
    } else if (job.name === JobName.RestoreCheckpoint) {
      const data = RestoreCheckpointJobData.safeParse(job.data);
      if (!data.success) throw new UnrecoverableError(`malformed job data: ${data.error.message}`);
      cp = await this.flow.restore(data.data.checkpointId, data.data.attempt);
    } else {
      throw new UnrecoverableError(`unknown job '${job.name}' on the checkpoints queue`);
    }
    this.logger.log({
      msg: `checkpoint ${job.name} ended`,
      checkpointId: cp.id,
      state: cp.state,
      ...(cp.error ? { error: cp.error } : {}),
      ...(cp.restore?.error ? { restoreError: cp.restore.error } : {}),
    });
    return { state: cp.state };
  }
}
