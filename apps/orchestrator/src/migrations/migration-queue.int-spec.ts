/**
 * An evacuation's moves go before routine ones (manual, rebalancing) on a real BullMQ queue on a private
 * redis-server: three routine moves queued first, one urgent after them; a worker taking one at a time takes
 * the urgent one first, then the routine ones in their order.
 */
import { startRedis, stopRedis } from '@spotlift/testing';
import { JobName, QueueName, type MigrateJobData } from '@spotlift/queue';
import { Queue, Worker } from 'bullmq';
import type { RedisLink } from '../core/redis-link.js';
import { MigrationQueue } from './migration-queue.js';

const PORT = 6492;
const connection = { host: '127.0.0.1', port: PORT, maxRetriesPerRequest: null };

describe('MigrationQueue priorities (BullMQ on Redis)', () => {
  beforeAll(() => startRedis(PORT), 60_000);
  afterAll(() => stopRedis(PORT), 60_000);

  it("hands out an evacuation's move before the routine moves queued ahead of it", async () => {
    const prefix = 'mq-prio';
    const queue = new Queue<MigrateJobData>(QueueName.Migrations, { connection, prefix });
    const link = { isUp: true } as RedisLink;
    const migrations = new MigrationQueue(queue, link);
    for (const id of ['r1', 'r2', 'r3']) await migrations.enqueue(id);
    await migrations.enqueue('u1', true);
    const order: string[] = [];
    const worker = new Worker<MigrateJobData>(
      QueueName.Migrations,
      (job) => {
        expect(job.name).toBe(JobName.Migrate);
        order.push(job.data.migrationId);
        return Promise.resolve();
      },
      { connection, prefix, concurrency: 1 },
    );
    try {
      for (let i = 0; i < 100 && order.length < 4; i++) await new Promise((r) => setTimeout(r, 50));
      expect(order).toEqual(['u1', 'r1', 'r2', 'r3']);
    } finally {
      await worker.close();
      await queue.close();
    }
  }, 30_000);
});
