import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { JOB_OPTIONS, JobName, QueueName, migrateJobId, type MigrateJobData } from '@spotlift/queue';

/** The producers' view of the migrations queue: job names, ids and options come from libs/queue only. */
@Injectable()
export class MigrationQueue {
  constructor(@InjectQueue(QueueName.Migrations) private readonly queue: Queue<MigrateJobData>) {}

  async enqueue(migrationId: string): Promise<void> {
    await this.queue.add(JobName.Migrate, { migrationId }, { ...JOB_OPTIONS[JobName.Migrate], jobId: migrateJobId(migrationId) });
  }
}
