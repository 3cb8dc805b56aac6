import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { makeDedupKey, type Notice } from '../notice.js';
import { NoticeDeduplicator } from './notice-deduplicator.js';
import { RedisDedupStore } from './redis-dedup-store.js';

/** A free loopback port: bind to 0, read it, release it. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const notice = (over: Partial<Notice> = {}): Notice => ({
  nodeId: 'node-a',
  source: 'aws',
  kind: 'preemption',
  deadline: new Date(Date.now() + 120_000),
  deadlineEstimated: false,
  receivedAt: new Date(),
  dedupKey: makeDedupKey('node-a', 'aws', 'preemption'),
  reason: 'test',
  raw: {},
  ...over,
});

describe('RedisDedupStore on a private redis-server', () => {
  let port: number;
  const clients: Redis[] = [];
  const client = () => {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    port = await freePort();
    execFileSync('redis-server', [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'yes',
      '--pidfile',
      `/tmp/spotlift-notices-redis-${port}.pid`,
      '--dir',
      '/tmp',
    ]);
    for (let i = 0; i < 50; i++) {
      try {
        const probe = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
        await probe.ping();
        await probe.quit();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('redis-server did not come up');
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    const admin = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
    // SHUTDOWN closes the connection without a reply: the rejection is expected.
    await admin.shutdown('NOSAVE').catch(() => undefined);
    admin.disconnect();
  });

  it('lets exactly one of many concurrent replicas claim a notice (SET NX PX)', async () => {
    const replicas = Array.from({ length: 8 }, () => new NoticeDeduplicator(new RedisDedupStore(client(), 'test1:')));
    const n = notice();
    const results = await Promise.all(replicas.map((d) => d.isNew(n)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('sets a TTL covering the deadline plus the grace period', async () => {
    const redis = client();
    const dedup = new NoticeDeduplicator(new RedisDedupStore(redis, 'test2:'), {
      minTtlMs: 1_000,
      afterDeadlineMs: 60_000,
      maxTtlMs: 7_200_000,
    });
    const n = notice({ deadline: new Date(Date.now() + 3_600_000) });
    expect(await dedup.isNew(n)).toBe(true);
    const pttl = await redis.pttl(`test2:${n.dedupKey}`);
    expect(pttl).toBeGreaterThan(3_600_000);
    expect(pttl).toBeLessThanOrEqual(3_660_000);
  });

  it('holds a far-off notice at most maxTtl, and lets exactly one replica see an earlier deadline', async () => {
    const redis = client();
    const replicas = Array.from(
      { length: 6 },
      () => new NoticeDeduplicator(new RedisDedupStore(client(), 'test5:'), { maxTtlMs: 3_600_000 }),
    );
    const far = notice({ deadline: new Date(Date.now() + 60 * 86_400_000) });
    expect(await replicas[0]!.classify(far)).toBe('new');
    const pttl = await redis.pttl(`test5:${far.dedupKey}`);
    expect(pttl).toBeGreaterThan(3_500_000);
    expect(pttl).toBeLessThanOrEqual(3_600_000);
    const soon = notice({ deadline: new Date(Date.now() + 120_000) });
    const answers = await Promise.all(replicas.map((d) => d.classify(soon)));
    expect(answers.filter((a) => a === 'earlier')).toHaveLength(1);
    expect(answers.filter((a) => a === 'duplicate')).toHaveLength(5);
    // The key now holds the earlier deadline, with the TTL that deadline gives (10 min minimum).
    expect(Number(await redis.get(`test5:${soon.dedupKey}`))).toBe(soon.deadline.getTime());
    expect(await redis.pttl(`test5:${soon.dedupKey}`)).toBeLessThanOrEqual(600_000);
    expect(await replicas[1]!.classify(notice({ deadline: new Date(soon.deadline.getTime() + 1_000) }))).toBe(
      'duplicate',
    );
  });

  it('treats a key written by setIfAbsent (an older version) as the latest deadline', async () => {
    const redis = client();
    const store = new RedisDedupStore(redis, 'test6:');
    expect(await store.setIfAbsent('k', 60_000)).toBe(true);
    expect(await store.claimDeadline('k', Date.now(), 60_000, 5_000)).toBe('duplicate');
  });

  it('does not raise again when the notice flaps within the TTL, and does after it', async () => {
    const dedup = new NoticeDeduplicator(new RedisDedupStore(client(), 'test3:'), {
      minTtlMs: 300,
      afterDeadlineMs: 0,
    });
    const n = notice({ deadline: new Date(Date.now() - 1_000) });
    expect(await dedup.isNew(n)).toBe(true);
    expect(await dedup.isNew({ ...n, receivedAt: new Date() })).toBe(false);
    await new Promise((r) => setTimeout(r, 400));
    expect(await dedup.isNew(n)).toBe(true);
  });

  it('treats a notice as new (and reports) when Redis is unreachable', async () => {
    const dead = new Redis({
      port: await freePort(),
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    const errors: unknown[] = [];
    const dedup = new NoticeDeduplicator(new RedisDedupStore(dead), { onStoreError: (e) => errors.push(e) });
    expect(await dedup.isNew(notice())).toBe(true);
    expect(errors).toHaveLength(1);
    dead.disconnect();
  });
});
