import { Injectable, Logger } from '@nestjs/common';
import { MigrationRepository } from '@spotlift/store';
import { MigrationQueue } from './migration-queue.js';

/** BullMQ states in which the queue itself will still run the job (a stale 'active' one via the stalled check). */
const QUEUE_STILL_OWNS = new Set(['active', 'waiting', 'wait', 'delayed', 'prioritized', 'waiting-children']);

/**
 * At boot (worker role): a migration whose record is unfinished but whose job is gone, completed or failed
 * would never move again, and its workload may be frozen. That happens when a job ran out of stalled
 * retries, when Redis lost the job but kept the record, or when a job ended without its record being saved.
 * Such migrations are queued again; the engine's recovery then finishes them or rolls them back. Jobs the
 * queue still owns are left to it: BullMQ's stalled-job check hands a dead worker's job to a live one.
 */
@Injectable()
export class MigrationReconciler {
  private readonly logger = new Logger('migrations');

  constructor(
    private readonly migrations: MigrationRepository,
    private readonly queue: MigrationQueue,
  ) {}

  // Not on its own at boot: StoreResync calls it once the worker's journal is written back (a stale copy Redis
  // held a moment before, from another host's journal, would otherwise be queued; found by worker-hosts.e2e).

  /** Returns the ids queued again. */
  async reconcile(): Promise<string[]> {
    const requeued: string[] = [];
    for (const m of await this.migrations.list()) {
      if (m.state !== 'running' && m.state !== 'queued') continue;
      const jobState = await this.queue.jobState(m.id);
      if (QUEUE_STILL_OWNS.has(jobState)) continue;
      await this.queue.requeue(m.id, m.evacuationId !== undefined);
      requeued.push(m.id);
      this.logger.warn({ msg: 'migration queued again at boot', migrationId: m.id, state: m.state, jobState });
    }
    return requeued;
  }
}
