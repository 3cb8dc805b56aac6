import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { evacuationFinished } from '@spotlift/domain';
import { EVACUATION_WORKER_OPTIONS, EVACUATIONS_QUEUE, EvacuateJobData } from '@spotlift/queue';
import { EvacuationCoordinator } from './evacuation-coordinator.js';

/**
 * Evacuations at once per worker: each job mostly waits on its migrations, so this is cheap. It must exceed the
 * nodes one reclaim can take at once: an evacuation beyond it waits in the queue, unplanned, until another one
 * ends (16 held 34 of 50 notices at once for a whole evacuation each).
 */
const EVACUATION_CONCURRENCY = 256;

/**
 * The worker role's side of evacuations: one long job per evacuation, run by the coordinator. A replica that
 * stops (SIGTERM: an upgrade, a scale-down) hands its evacuations back to the queue at once, where another replica
 * (or this one, restarted) resumes each from its record: waiting for them held the stop for up to the notice's
 * deadline plus five minutes, past any stop timeout (systemd's 60 s), and a killed worker's jobs wait for BullMQ's
 * stalled check before anyone resumes them.
 */
@Processor(EVACUATIONS_QUEUE, EVACUATION_WORKER_OPTIONS)
export class EvacuationsProcessor extends WorkerHost implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('evacuations');
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<unknown>>();

  constructor(private readonly coordinator: EvacuationCoordinator) {
    super();
  }

  onModuleInit(): void {
    this.worker.concurrency = EVACUATION_CONCURRENCY;
  }

  /** Before the worker closes (Nest's shutdown order): the running evacuations stop and go back to the queue. */
  async onModuleDestroy(): Promise<void> {
    // No new job first: an evacuation handed back is due at once, and this worker would take it again. (A boot
    // that failed before the worker existed has nothing to pause.)
    try {
      await this.worker.pause(true);
    } catch {
      /* no worker to pause */
    }
    this.stopping.abort(new Error('this replica is stopping'));
    await Promise.allSettled([...this.running]);
  }

  async process(job: Job<unknown>, token?: string): Promise<{ state: string }> {
    const data = EvacuateJobData.safeParse(job.data);
    if (!data.success) throw new UnrecoverableError(`malformed job data: ${data.error.message}`);
    const run = this.runOrHandBack(job, token, data.data.evacuationId);
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
    }
  }

  private async runOrHandBack(job: Job<unknown>, token: string | undefined, id: string): Promise<{ state: string }> {
    const rec = await this.coordinator.run(id, this.stopping.signal);
    if (!rec) {
      this.logger.warn({ msg: 'evacuation job for a missing record', evacuationId: id });
      return { state: 'missing' };
    }
    if (this.stopping.signal.aborted && !evacuationFinished(rec)) {
      // Back in the queue, due now: not a failure, and not an attempt (BullMQ's DelayedError).
      await job.moveToDelayed(Date.now(), token);
      this.logger.log({ msg: 'evacuation handed back: this replica is stopping', evacuation: id });
      throw new DelayedError();
    }
    return { state: rec.state };
  }
}
