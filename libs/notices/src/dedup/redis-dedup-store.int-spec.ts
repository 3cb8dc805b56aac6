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
    });
    const n = notice({ deadline: new Date(Date.now() + 3_600_000) });
    expect(await dedup.isNew(n)).toBe(true);
    const pttl = await redis.pttl(`test2:${n.dedupKey}`);
    expect(pttl).toBeGreaterThan(3_600_000);
    expect(pttl).toBeLessThanOrEqual(3_660_000);
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
