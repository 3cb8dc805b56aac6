import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { JOB_OPTIONS, JobName, QueueName, checkpointJobId, restoreCheckpointJobId } from '@spotlift/queue';

/** The producers' view of the checkpoints queue: names, ids and options come from libs/queue only. */
@Injectable()
export class CheckpointQueue {
  constructor(@InjectQueue(QueueName.Checkpoints) private readonly queue: Queue) {}

  async enqueueTake(checkpointId: string): Promise<void> {
    await this.queue.add(
      JobName.Checkpoint,
      { checkpointId },
      { ...JOB_OPTIONS[JobName.Checkpoint], jobId: checkpointJobId(checkpointId) },
    );
  }

  async enqueueRestore(checkpointId: string, attempt: number): Promise<void> {
    await this.queue.add(
      JobName.RestoreCheckpoint,
      { checkpointId, attempt },
      { ...JOB_OPTIONS[JobName.RestoreCheckpoint], jobId: restoreCheckpointJobId(checkpointId, attempt) },
    );
  }
}
