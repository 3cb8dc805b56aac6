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

  /**
   * Tells the coordinator running the evacuation (whichever worker holds its job) that its record changed:
   * the job's progress is set, which the queue's event stream carries to every EvacuationChangeListener.
   */
  async nudge(evacuationId: string): Promise<void> {
    const job = await this.queue.getJob(evacuateJobId(evacuationId));
    await job?.updateProgress({ changedAt: new Date().toISOString() });
  }
}
