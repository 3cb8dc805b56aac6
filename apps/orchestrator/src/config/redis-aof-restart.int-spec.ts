/**
 * Redis restarted mid-queue, as the lab runs it (scripts/lab/redis.sh: AOF, appendfsync everysec, noeviction):
 * migration records and their BullMQ jobs, written through the clients the orchestrator builds and
 * acknowledged, are all there after a clean restart and after a SIGKILL (more than the fsync second after the
 * acknowledgements), and a worker that connects afterwards runs every one of them to its end.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { MigrationRecord } from '@spotlift/domain';
import { MIGRATION_INDEX, RedisRecords, allWhere } from '@spotlift/store';
import { aMigration, labDir, labScript, startRedis, stopRedis } from '@spotlift/testing';
import { RedisEnv, bullConnection, redisOptions, redisSettings } from './redis-config.js';

const PORT = 6479;
const settings = redisSettings(RedisEnv.parse({ REDIS_URL: `redis://127.0.0.1:${PORT}/0` }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function killRedis(): void {
  const pid = Number(readFileSync(join(labDir(), 'redis', String(PORT), 'redis.pid'), 'utf8').trim());
  process.kill(pid, 'SIGKILL');
}

describe('Redis restarted mid-queue with AOF', () => {
  beforeAll(() => startRedis(PORT), 60_000);
  afterAll(() => stopRedis(PORT), 60_000);

  it('keeps every acknowledged migration and its job through a restart and a crash; all are then finished', async () => {
    const client = new Redis(redisOptions(settings, { maxRetriesPerRequest: null }));
    const records = new RedisRecords<MigrationRecord>(client, 'aof', 'migration', { versioned: true });
    const queue = new Queue('aof-migrations', { connection: bullConnection(settings) });
    const acknowledged: string[] = [];
    const enqueue = async (i: number) => {
      const id = `mig-aof-${i}`;
      await records.save(aMigration({ id, workloadId: `wl-${i}`, state: 'queued' }));
      await queue.add('migrate', { migrationId: id }, { jobId: id });
      acknowledged.push(id);
    };
    let worker: Worker | undefined;
    try {
      for (let i = 0; i < 10; i++) await enqueue(i);
      // A clean restart (SHUTDOWN flushes the AOF).
      execFileSync('bash', [labScript('redis.sh'), 'restart', String(PORT)], {
        env: { ...process.env, SPOTLIFT_LAB_DIR: labDir() },
        stdio: 'ignore',
      });
      for (let i = 10; i < 20; i++) await enqueue(i);
      // A crash after the fsync second (appendfsync everysec): what was acknowledged before it is on disk.
      await sleep(1_500);
      killRedis();
      await sleep(500);
      await startRedis(PORT);

      const ran: string[] = [];
      const allDone = new Promise<void>((resolve) => {
        worker = new Worker(
          'aof-migrations',
          async (job) => {
            const id = job.data.migrationId as string;
            const done = await records.update(id, (m) => {
              if (m.state !== 'queued') return false;
              m.state = 'completed';
            });
            if (!done) throw new Error(`${id}: no queued record`);
            ran.push(id);
            if (ran.length === acknowledged.length) resolve();
          },
          { connection: bullConnection(settings), concurrency: 4 },
        );
      });
      await allDone;
      expect(ran.sort()).toEqual([...acknowledged].sort());
      const completed = await allWhere(records, MIGRATION_INDEX, ['state=completed']);
      expect(completed.map((m) => m.id).sort()).toEqual([...acknowledged].sort());
      expect(await allWhere(records, MIGRATION_INDEX, ['state=queued'])).toEqual([]);
    } finally {
      await worker?.close();
      await queue.close();
      client.disconnect();
    }
  }, 120_000);
});
