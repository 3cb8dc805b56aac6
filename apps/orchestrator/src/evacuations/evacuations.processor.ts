import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, type Job } from 'bullmq';
import { EVACUATIONS_QUEUE, EvacuateJobData } from '@spotlift/queue';
import { EvacuationCoordinator } from './evacuation-coordinator.js';

/**
 * Evacuations at once per worker: each job mostly waits on its migrations, so this is cheap. It must exceed the
 * nodes one reclaim can take at once: an evacuation beyond it waits in the queue, unplanned, until another one
 * ends (16 held 34 of 50 notices at once for a whole evacuation each).
 */
const EVACUATION_CONCURRENCY = 256;

/** The worker role's side of evacuations: one long job per evacuation, run by the coordinator. */
@Processor(EVACUATIONS_QUEUE)
export class EvacuationsProcessor extends WorkerHost implements OnModuleInit {
  private readonly logger = new Logger('evacuations');

  constructor(private readonly coordinator: EvacuationCoordinator) {
    super();
  }

  onModuleInit(): void {
    this.worker.concurrency = EVACUATION_CONCURRENCY;
  }

  async process(job: Job<unknown>): Promise<{ state: string }> {
    const data = EvacuateJobData.safeParse(job.data);
    if (!data.success) throw new UnrecoverableError(`malformed job data: ${data.error.message}`);
    const rec = await this.coordinator.run(data.data.evacuationId);
    if (!rec) this.logger.warn({ msg: 'evacuation job for a missing record', evacuationId: data.data.evacuationId });
    return { state: rec?.state ?? 'missing' };
  }
}
