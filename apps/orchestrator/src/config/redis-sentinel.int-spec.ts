/**
 * Redis Sentinel for real: a master (the lab's redis.sh: AOF, noeviction), a replica and a sentinel
 * (`redis-server --sentinel`) on loopback. A migration record and its queued BullMQ job, written through the
 * clients the orchestrator builds (redisOptions / bullConnection), survive a sentinel failover: after it the
 * same ioredis client writes to the new master and a worker on the BullMQ connection runs the job there.
 * Also: the start-up durability check reads the lab Redis as durable, and an evicting one as not.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { MigrationRecord } from '@spotlift/domain';
import { RedisRecords } from '@spotlift/store';
import { aMigration, labDir, startRedis, stopRedis } from '@spotlift/testing';
import { judgeDurability, readPersistence } from '../core/redis-durability.js';
import { RedisEnv, bullConnection, redisOptions, redisSettings } from './redis-config.js';

const MASTER = 6476;
// The replica listens in the sentinel port range: other suites start lab Redis instances on 64xx ports.
const REPLICA = 26477;
const SENTINEL = 26476;
const NAME = 'spotlift-it';

const dir = join(labDir(), 'redis', 'sentinel-it');
const children: ChildProcess[] = [];

function run(args: string[]): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  children.push(child);
  return child;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

const plain = (port: number) => new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, lazyConnect: true });

describe('Redis Sentinel (real failover)', () => {
  const settings = redisSettings(
    RedisEnv.parse({
      REDIS_URL: 'redis://ignored:1/0',
      SPOTLIFT_REDIS_SENTINELS: `127.0.0.1:${SENTINEL}`,
      SPOTLIFT_REDIS_SENTINEL_NAME: NAME,
    }),
  );
  let sentinel: Redis;

  beforeAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'replica'), { recursive: true });
    await startRedis(MASTER);
    run([
      '--port',
      String(REPLICA),
      '--bind',
      '127.0.0.1',
      '--dir',
      join(dir, 'replica'),
      '--save',
      '',
      '--appendonly',
      'yes',
      '--maxmemory-policy',
      'noeviction',
      '--replicaof',
      '127.0.0.1',
      String(MASTER),
    ]);
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${SENTINEL}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${NAME} 127.0.0.1 ${MASTER} 1`,
        `sentinel down-after-milliseconds ${NAME} 1000`,
        `sentinel failover-timeout ${NAME} 10000`,
        '',
      ].join('\n'),
    );
    run([conf, '--sentinel']);
    sentinel = plain(SENTINEL);
    await until('the sentinel to see the replica', async () => {
      const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', NAME)) as string[][];
      const flags = replicas[0]?.[replicas[0].indexOf('flags') + 1];
      return flags === 'slave' ? true : undefined;
    });
  }, 60_000);

  afterAll(async () => {
    sentinel?.disconnect();
    for (const c of children) c.kill('SIGKILL');
    await stopRedis(MASTER);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  // (Not by turning AOF off and on here: the rewrite that follows delays the replica, and the failover below would
  // then lose what it had not received. The verdict on `appendonly no` is redis-durability.spec.ts's.)
  it('reads the lab Redis as durable (AOF, noeviction) and names what an evicting Redis would lose', async () => {
    const master = plain(MASTER);
    try {
      const p = await readPersistence(master);
      expect(p).toMatchObject({ aofEnabled: true, appendfsync: 'everysec', maxmemoryPolicy: 'noeviction' });
      expect(judgeDurability(p).fatal).toEqual([]);
      await master.config('SET', 'maxmemory-policy', 'allkeys-lru');
      expect(judgeDurability(await readPersistence(master)).fatal).toEqual([
        expect.stringMatching(/maxmemory-policy is allkeys-lru/),
      ]);
    } finally {
      await master.config('SET', 'maxmemory-policy', 'noeviction').catch(() => undefined);
      master.disconnect();
    }
  });

  it('a record and its queued job, written through the sentinels, survive a failover and the job runs on the new master', async () => {
    const client = new Redis(redisOptions(settings, { maxRetriesPerRequest: 3 }));
    const records = new RedisRecords<MigrationRecord>(client, 'snt', 'migration', { versioned: true });
    const queue = new Queue('snt-migrations', { connection: bullConnection(settings) });
    let worker: Worker | undefined;
    try {
      await records.save(aMigration({ id: 'mig-snt', state: 'queued' }));
      await queue.add('migrate', { migrationId: 'mig-snt' }, { jobId: 'mig-snt' });
      // Acknowledged by the replica before the master goes: what a failover may lose is only what no replica had.
      await until('the replica to acknowledge the writes', async () =>
        Number(await client.call('WAIT', '1', '1000')) >= 1 ? true : undefined,
      );

      await sentinel.call('SENTINEL', 'FAILOVER', NAME);
      await until('the replica to become master', async () => {
        const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as string[];
        return port === String(REPLICA) ? true : undefined;
      });
      // The switch is over only once the old master is a replica and the client talks to the new one: a write
      // made in between goes to the old master and is dropped when it resyncs (a failover's documented window).
      await until('the old master to be demoted', async () => {
        const old = plain(MASTER);
        try {
          return /^role:slave/m.test(await old.info('replication')) ? true : undefined;
        } finally {
          old.disconnect();
        }
      });
      await until('the client to follow the new master', async () =>
        new RegExp(`^tcp_port:${REPLICA}\\b`, 'm').test(await client.info('server')) ? true : undefined,
      );
      const done = new Promise<string>((resolve) => {
        worker = new Worker(
          'snt-migrations',
          async (job) => {
            await records.update(job.data.migrationId as string, (m) => {
              m.state = 'completed';
            });
            return 'ok';
          },
          { connection: bullConnection(settings) },
        );
        worker.on('completed', (job) => resolve(job.id!));
      });
      expect(await done).toBe('mig-snt');
      // On the new master (the old one is a replica now), through the client made before the failover.
      const newMaster = plain(REPLICA);
      try {
        const stored = JSON.parse((await newMaster.get('snt:migration:mig-snt'))!) as MigrationRecord;
        expect(stored.state).toBe('completed');
        expect(await newMaster.zscore('snt:migrations:state=completed', 'mig-snt')).not.toBeNull();
        expect((await newMaster.info('replication')).match(/^role:(\w+)/m)?.[1]).toBe('master');
      } finally {
        newMaster.disconnect();
      }
    } finally {
      await worker?.close();
      await queue.close();
      client.disconnect();
    }
  }, 90_000);
});
