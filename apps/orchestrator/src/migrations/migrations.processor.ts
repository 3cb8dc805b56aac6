import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, type Job } from 'bullmq';
import { MigrationEngine } from '@spotlift/engine';
import { MigrateJobData, QueueName } from '@spotlift/queue';
import { AppConfig } from '../config/app-config.js';
import { MigrationMetrics } from '../metrics/migration-metrics.js';

/** The worker role: parses the job, hands it to the engine, records the outcome. No logic of its own. */
@Processor(QueueName.Migrations)
export class MigrationsProcessor extends WorkerHost implements OnModuleInit {
  private readonly logger = new Logger('migrations');

  constructor(
    private readonly engine: MigrationEngine,
    private readonly config: AppConfig,
    private readonly metrics: MigrationMetrics,
  ) {
    super();
  }

  onModuleInit(): void {
    this.worker.concurrency = this.config.workerConcurrency;
  }

  async process(job: Job<unknown>): Promise<{ state: string }> {
    const data = MigrateJobData.safeParse(job.data);
    if (!data.success) throw new UnrecoverableError(`malformed job data: ${data.error.message}`);
    const { migrationId } = data.data;
    this.logger.log({ msg: 'migration started', migrationId, jobId: job.id });
    const m = await this.engine.run(migrationId);
    this.metrics.record(m);
    this.logger.log({
      msg: 'migration finished',
      migrationId,
      state: m.state,
      downtimeMs: m.downtimeMs,
      ...(m.error ? { error: m.error } : {}),
    });
    return { state: m.state };
  }
}
