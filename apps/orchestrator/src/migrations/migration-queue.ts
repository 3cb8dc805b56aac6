import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import {
  JOB_OPTIONS,
  JobName,
  QueueName,
  ROUTINE_MIGRATION_PRIORITY,
  migrateJobId,
  type MigrateJobData,
} from '@spotlift/queue';
import { RedisLink, whileUp } from '../core/redis-link.js';

/** The producers' view of the migrations queue: job names, ids and options come from libs/queue only. */
@Injectable()
export class MigrationQueue {
  constructor(
    @InjectQueue(QueueName.Migrations) private readonly queue: Queue<MigrateJobData>,
    private readonly link: RedisLink,
  ) {}

  /**
   * BullMQ's connection queues commands while Redis is away; a caller must not wait for that. Fails within a
   * second instead (a 503); the record is then 'queued' without a job, which boot reconciliation re-queues.
   * An evacuation's move (`urgent`) goes before every other waiting move (ROUTINE_MIGRATION_PRIORITY).
   */
  async enqueue(migrationId: string, urgent = false): Promise<void> {
    await whileUp(this.link, 'queueing the migration job', () =>
      this.queue.add(
        JobName.Migrate,
        { migrationId },
        {
          ...JOB_OPTIONS[JobName.Migrate],
          jobId: migrateJobId(migrationId),
          ...(urgent ? {} : { priority: ROUTINE_MIGRATION_PRIORITY }),
        },
      ),
    );
  }

  /**
   * Removes a job no worker holds (waiting, delayed): 'removed'. 'held' when a worker has it (its engine
   * sees the cancel flag), 'missing' when there is no job at all.
   */
  async removeIfIdle(migrationId: string): Promise<'removed' | 'held' | 'missing'> {
    const job = await this.queue.getJob(migrateJobId(migrationId));
    if (!job) return 'missing';
    // remove() refuses a locked (active) job, which is exactly the one we must leave to its worker.
    return job.remove().then(
      () => 'removed' as const,
      () => 'held' as const,
    );
  }

  /** The job's BullMQ state, or 'missing' when no such job exists any more. */
  async jobState(migrationId: string): Promise<string> {
    const job = await this.queue.getJob(migrateJobId(migrationId));
    return job ? job.getState() : 'missing';
  }

  /** Queues the migration again under its usual id, dropping a finished or failed job record first. */
  async requeue(migrationId: string, urgent = false): Promise<void> {
    const job = await this.queue.getJob(migrateJobId(migrationId));
    if (job) await job.remove();
    await this.enqueue(migrationId, urgent);
  }
}
