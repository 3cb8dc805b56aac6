import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import {
  EVACUATE_JOB,
  EVACUATE_JOB_OPTIONS,
  EVACUATIONS_QUEUE,
  evacuateJobId,
  type EvacuateJobData,
} from '@spotlift/queue';

/** The producers' view of the evacuations queue (any role may raise an evacuation; workers run it). */
@Injectable()
export class EvacuationQueue {
  constructor(@InjectQueue(EVACUATIONS_QUEUE) private readonly queue: Queue<EvacuateJobData>) {}

  async enqueue(evacuationId: string): Promise<void> {
    await this.queue.add(
      EVACUATE_JOB,
      { evacuationId },
      { ...EVACUATE_JOB_OPTIONS, jobId: evacuateJobId(evacuationId) },
    );
  }
}
