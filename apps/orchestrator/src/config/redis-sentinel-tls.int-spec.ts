/**
 * Redis Sentinel over TLS, for real: redis.sh `start-sentinel-tls` (a master, a replica and three sentinels, every
 * listener and link TLS only, the `default` user off, the sentinels behind a password). Every client is built the
 * way the orchestrator builds it (redisSettings from the environment, redisOptions / bullConnection: `tls`,
 * `sentinelTLS`, `enableTLSForSentinelMode`), and our own client with the app's fail-fast options (core.module.ts).
 * The master is SIGKILLed (no `SENTINEL FAILOVER` courtesy): the sentinels promote the replica, and the same
 * clients write there and run the queued jobs.
 */
import { Queue, Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { MigrationRecord } from '@spotlift/domain';
import { RedisRecords } from '@spotlift/store';
import { aMigration, sentinelSetPid, startRedisSentinelTls, stopRedis, type SentinelSet } from '@spotlift/testing';
import { RedisEnv, bullConnection, redisOptions, redisSettings, type RedisSettings } from './redis-config.js';

// A master on 6487, its replica on 6488, sentinels on 26487-26489 (other suites use 6480-6481 and 26476-26477).
const PORT = 6487;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
  }
  throw new Error(`gave up waiting for ${what}`);
}

// Our client as core.module.ts makes it: no offline queue, one retry, 1 s per command, reconnect every second.
const appLike: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 1_000,
  connectTimeout: 2_000,
  retryStrategy: (times) => Math.min(times * 200, 1_000),
};

describe('Redis Sentinel over TLS (real master, replica and three sentinels)', () => {
  let set: SentinelSet;
  let settings: RedisSettings;

  beforeAll(async () => {
    set = await startRedisSentinelTls(PORT);
    settings = redisSettings(RedisEnv.parse(set.env));
  }, 60_000);

  afterAll(async () => {
    await stopRedis(PORT);
  }, 60_000);

  /** A sentinel, asked directly over TLS (it has no plain port). */
  const masterPort = async (): Promise<number> => {
    const s = new Redis({
      host: '127.0.0.1',
      port: set.sentinels[2]!,
      password: set.sentinelPassword,
      tls: { ca: settings.tlsCa! },
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    try {
      const [, port] = (await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', set.name)) as string[];
      return Number(port);
    } finally {
      s.disconnect();
    }
  };

  it('a wrong sentinels password, or no CA for the sentinels: no master, an error, no crash', async () => {
    const once: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 0, sentinelRetryStrategy: () => null };
    const cases: [Record<string, string | undefined>, RegExp][] = [
      [{ SPOTLIFT_REDIS_SENTINEL_PASSWORD: 'wrong' }, /All sentinels are unreachable.*WRONGPASS/],
      // ioredis drops a sentinel link's TLS reason (its sentinel clients do not retry and swallow their errors):
      // a certificate the CA does not vouch for reads as a closed connection. The README says so.
      [{ SPOTLIFT_REDIS_TLS_CA: undefined }, /All sentinels are unreachable.*Connection is closed/],
    ];
    for (const [change, expected] of cases) {
      const client = new Redis(redisOptions(redisSettings(RedisEnv.parse({ ...set.env, ...change })), once));
      const events: string[] = [];
      client.on('error', (e: Error) => events.push(e.message));
      try {
        await expect(client.connect()).rejects.toThrow(expected);
      } finally {
        client.disconnect();
      }
      expect(events).toEqual([expect.stringMatching(expected)]);
    }
  });

  it('writes through the TLS sentinels as the ACL user, and after the master is SIGKILLed writes and jobs go on', async () => {
    const client = new Redis(redisOptions(settings, appLike));
    client.on('error', () => undefined); // the app's RedisLink logs these; here the loop below counts them
    const records = new RedisRecords<MigrationRecord>(client, 'spotlift', 'migration', { versioned: true });
    const queue = new Queue('sntls-migrations', { prefix: 'spotlift-bull', connection: bullConnection(settings) });
    // BullMQ reports the lost master as error events (the app's StoreResync logs them); unheard, it prints them.
    queue.on('error', () => undefined);
    let worker: Worker | undefined;
    try {
      await until('the client to connect', async () => ((await client.ping()) === 'PONG' ? true : undefined));
      await records.save(aMigration({ id: 'mig-before', state: 'queued' }));
      await queue.add('migrate', { migrationId: 'mig-before' }, { jobId: 'mig-before' });
      expect(await client.acl('WHOAMI')).toBe('spotlift');
      // TLS only: the master has no plain port, so the data link is TLS; the sentinels have none either.
      expect(await client.config('GET', 'port')).toEqual(['port', '0']);
      expect(await client.config('GET', 'tls-port')).toEqual(['tls-port', String(set.master)]);
      // The replica has the writes (what a failover can lose is only what no replica had yet).
      expect(Number(await client.call('WAIT', '1', '2000'))).toBeGreaterThanOrEqual(1);

      const killedAt = Date.now();
      process.kill(sentinelSetPid(set, set.master), 'SIGKILL');
      // The app's client refuses at once while there is no master (a 503, a journal entry), then takes writes.
      let refused = 0;
      await until(
        'a write to succeed after the kill',
        async () => {
          try {
            await records.save(aMigration({ id: 'mig-after', state: 'queued' }));
            return true;
          } catch (error) {
            refused++;
            throw error;
          }
        },
        30_000,
      );
      const downMs = Date.now() - killedAt;
      expect(refused).toBeGreaterThan(0);
      expect(await masterPort()).toBe(set.replica);
      expect(await client.config('GET', 'tls-port')).toEqual(['tls-port', String(set.replica)]);
      expect(await client.acl('WHOAMI')).toBe('spotlift');

      // BullMQ's connection, made before the kill, follows too: a job added now, and the one from before, run.
      await queue.add('migrate', { migrationId: 'mig-after' }, { jobId: 'mig-after' });
      const ran = new Set<string>();
      const done = new Promise<void>((resolve, reject) => {
        worker = new Worker(
          'sntls-migrations',
          async (job) => {
            await records.update(job.data.migrationId as string, (m) => {
              m.state = 'completed';
            });
          },
          { prefix: 'spotlift-bull', connection: bullConnection(settings) },
        );
        worker.on('error', () => undefined);
        worker.on('completed', (job) => {
          ran.add(job.id!);
          if (ran.size === 2) resolve();
        });
        worker.on('failed', (_job, error) => reject(error));
      });
      await done;
      expect([...ran].sort()).toEqual(['mig-after', 'mig-before']);
      expect((await records.get('mig-before'))?.state).toBe('completed');
      expect((await records.get('mig-after'))?.state).toBe('completed');
      console.log(`Sentinel over TLS: master SIGKILLed, writes refused ${refused}x, accepted again after ${downMs} ms`);
    } finally {
      await worker?.close();
      await queue.close();
      client.disconnect();
    }
  }, 90_000);
});
