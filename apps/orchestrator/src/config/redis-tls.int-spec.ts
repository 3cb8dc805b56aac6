/**
 * Redis over TLS with an ACL user, for real: the lab's redis.sh `start-tls` (TLS only, a throwaway CA, `default`
 * user off, `spotlift` limited to spotlift:* and spotlift-bull:* keys (the orchestrator's BullMQ prefix), `narrow`
 * without INFO and CONFIG). Every client is built the way the orchestrator builds it (redisSettings from the environment, redisOptions / bullConnection),
 * from `rediss://spotlift:secret@127.0.0.1:PORT/0` and SPOTLIFT_REDIS_TLS_CA. What a wrong setting does is an
 * error the caller can read, never a crash.
 */
import { Queue, Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { MigrationRecord } from '@spotlift/domain';
import { RedisRecords } from '@spotlift/store';
import { aMigration, startRedisTls, stopRedis } from '@spotlift/testing';
import { judgeDurability, readPersistence } from '../core/redis-durability.js';
import { RedisEnv, bullConnection, redisOptions, redisSettings, type RedisSettings } from './redis-config.js';

const PORT = 6441;
// The orchestrator's BullMQ prefix (`<SPOTLIFT_REDIS_PREFIX>-bull`): the ACL user's keys are spotlift:* and this.
const BULL_PREFIX = 'spotlift-bull';
const URL_OK = `rediss://spotlift:secret@127.0.0.1:${PORT}/0`;

const settingsOf = (env: Record<string, string>): RedisSettings => redisSettings(RedisEnv.parse(env));

// One attempt, no retries: the error of the first connection is what the test looks at.
const once: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null };

/**
 * Connects as the orchestrator would; returns every error it met, the 'error' events ioredis emitted (where the
 * server's reason is: WRONGPASS, a TLS failure) and then what the caller's await got.
 */
async function connectErrors(s: RedisSettings): Promise<string> {
  const client = new Redis(redisOptions(s, once));
  const events: string[] = [];
  client.on('error', (e: Error) => events.push(e.message));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    return [...events, (error as Error).message].join(' | ');
  } finally {
    client.disconnect();
  }
  throw new Error(`connected: ${events.join('; ')}`);
}

describe('Redis over TLS with an ACL user (real rediss:// server)', () => {
  let caFile: string;
  let settings: RedisSettings;

  beforeAll(async () => {
    ({ caFile } = await startRedisTls(PORT));
    settings = settingsOf({ REDIS_URL: URL_OK, SPOTLIFT_REDIS_TLS_CA: caFile });
  }, 60_000);

  afterAll(async () => {
    await stopRedis(PORT);
  }, 60_000);

  it('our client writes and reads a record over TLS as the ACL user, and the ACL holds it to its keys', async () => {
    const client = new Redis(redisOptions(settings, { maxRetriesPerRequest: 1 }));
    try {
      const records = new RedisRecords<MigrationRecord>(client, 'spotlift', 'migration', { versioned: true });
      await records.save(aMigration({ id: 'mig-tls', state: 'queued' }));
      expect((await records.get('mig-tls'))?.state).toBe('queued');
      expect(await client.acl('WHOAMI')).toBe('spotlift');
      // The connection really is TLS: this server has no plain port.
      expect(await client.config('GET', 'port')).toEqual(['port', '0']);
      await expect(client.set('elsewhere:x', '1')).rejects.toThrow(/NOPERM/);
    } finally {
      client.disconnect();
    }
  });

  it('a BullMQ queue and worker on the same settings run a job', async () => {
    const queue = new Queue('tls-migrations', { prefix: BULL_PREFIX, connection: bullConnection(settings) });
    let worker: Worker | undefined;
    try {
      const done = new Promise<unknown>((resolve, reject) => {
        worker = new Worker('tls-migrations', (job) => Promise.resolve(`ran ${job.data.migrationId as string}`), {
          prefix: BULL_PREFIX,
          connection: bullConnection(settings),
        });
        worker.on('completed', (_job, result) => resolve(result));
        worker.on('failed', (_job, error) => reject(error));
      });
      await queue.add('migrate', { migrationId: 'mig-tls' }, { jobId: 'mig-tls' });
      expect(await done).toBe('ran mig-tls');
    } finally {
      await worker?.close();
      await queue.close();
    }
  });

  it('the start-up durability check reads the TLS Redis, and says "unverified" when the ACL hides INFO and CONFIG', async () => {
    const client = new Redis(redisOptions(settings, { maxRetriesPerRequest: 1 }));
    const narrow = new Redis(
      redisOptions(
        settingsOf({ REDIS_URL: `rediss://narrow:secret@127.0.0.1:${PORT}/0`, SPOTLIFT_REDIS_TLS_CA: caFile }),
        {
          maxRetriesPerRequest: 1,
        },
      ),
    );
    try {
      const p = await readPersistence(client);
      expect(p).toMatchObject({ aofEnabled: true, appendfsync: 'everysec', maxmemoryPolicy: 'noeviction' });
      expect(judgeDurability(p)).toEqual({ fatal: [], advice: [expect.stringMatching(/no replica/)] });

      expect(await narrow.ping()).toBe('PONG');
      const hidden = judgeDurability(await readPersistence(narrow));
      expect(hidden.fatal).toEqual([]);
      expect(hidden.advice).toEqual([
        expect.stringMatching(/appendonly could not be read.*unverified/),
        expect.stringMatching(/maxmemory-policy could not be read: unverified/),
      ]);
    } finally {
      client.disconnect();
      narrow.disconnect();
    }
  });

  it('a wrong password, plain redis:// on the TLS port, or no CA for the private one: a clear error', async () => {
    const wrongPassword = settingsOf({
      REDIS_URL: `rediss://spotlift:wrong@127.0.0.1:${PORT}/0`,
      SPOTLIFT_REDIS_TLS_CA: caFile,
    });
    expect(await connectErrors(wrongPassword)).toMatch(/WRONGPASS/);
    // The server drops a plaintext client at once; ioredis reports the closed connection (no reply is misread).
    const plain = settingsOf({ REDIS_URL: `redis://spotlift:secret@127.0.0.1:${PORT}/0` });
    expect(await connectErrors(plain)).toMatch(/Connection is closed|ECONNRESET|socket hang up/);
    // Without SPOTLIFT_REDIS_TLS_CA the system's CAs are used, and they did not sign the lab's certificate.
    expect(await connectErrors(settingsOf({ REDIS_URL: URL_OK }))).toMatch(/certificate/);
    expect(() => settingsOf({ REDIS_URL: URL_OK, SPOTLIFT_REDIS_TLS_CA: '/nonexistent/ca.pem' })).toThrow(
      /SPOTLIFT_REDIS_TLS_CA: cannot read \/nonexistent\/ca.pem/,
    );
  });
});
