/**
 * Claims and versioned records against a real redis-server (port 6415, this suite's own): callers race
 * from separate connections, as API replicas and workers would, and exactly one wins each race.
 */
import { Redis } from 'ioredis';
import { startRedis, stopRedis } from '@spotlift/testing';
import { RedisRecords } from './redis-repository.js';
import { StaleRecordError } from './repositories.port.js';
import { RedisWorkloadClaims } from './workload-claims.js';

const PORT = 6415;
const clients: Redis[] = [];
const connect = () => {
  const c = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  clients.push(c);
  return c;
};

beforeAll(() => startRedis(PORT), 60_000);
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await stopRedis(PORT);
});

describe('RedisWorkloadClaims', () => {
  it('20 owners racing from 20 connections for one process: exactly one holds it, the others learn who', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => new RedisWorkloadClaims(connect(), 'c1').claim('proc:k', `migration:m${i}`)),
    );
    const winners = results.flatMap((r, i) => (r.ok ? [`migration:m${i}`] : []));
    expect(winners).toHaveLength(1);
    for (const r of results) if (!r.ok) expect(r.holder).toBe(winners[0]);
  });

  it('is re-entrant for its owner, released only by its owner (compare-and-delete)', async () => {
    const claims = new RedisWorkloadClaims(connect(), 'c2');
    expect(await claims.claim('k', 'migration:a')).toEqual({ ok: true });
    expect(await claims.claim('k', 'migration:a')).toEqual({ ok: true });
    expect(await claims.release('k', 'migration:b')).toBe(false);
    expect(await claims.claim('k', 'migration:b')).toEqual({ ok: false, holder: 'migration:a' });
    expect(await claims.release('k', 'migration:a')).toBe(true);
    expect(await claims.holder('k')).toBeUndefined();
    expect(await claims.claim('k', 'migration:b')).toEqual({ ok: true });
  });

  it('take-over replaces only the named stale holder; two callers taking over from it: one wins', async () => {
    const redis = connect();
    const claims = new RedisWorkloadClaims(redis, 'c3');
    await claims.claim('k', 'migration:dead');
    const [x, y] = await Promise.all([
      new RedisWorkloadClaims(connect(), 'c3').takeOver('k', 'migration:dead', 'migration:x'),
      new RedisWorkloadClaims(connect(), 'c3').takeOver('k', 'migration:dead', 'migration:y'),
    ]);
    expect([x, y].filter(Boolean)).toHaveLength(1);
    expect(await claims.takeOver('k', 'migration:dead', 'migration:z')).toBe(false);
    expect((await claims.holder('k'))?.owner).toBe(x ? 'migration:x' : 'migration:y');
  });

  it('expires with its TTL (a job that vanished), and reports how long it has been idle', async () => {
    const claims = new RedisWorkloadClaims(connect(), 'c4');
    await claims.claim('k', 'migration:a', 60_000);
    const held = await claims.holder('k', 60_000);
    expect(held?.owner).toBe('migration:a');
    expect(held!.idleMs).toBeLessThan(5_000);
    await claims.claim('short', 'migration:a', 50);
    await new Promise((r) => setTimeout(r, 120));
    expect(await claims.claim('short', 'migration:b')).toEqual({ ok: true });
  });
});

describe('RedisRecords, versioned', () => {
  interface Rec {
    id: string;
    state: string;
    version?: number;
  }

  it('two writers of one read: the first save wins, the second gets StaleRecordError and nothing is overwritten', async () => {
    const a = new RedisRecords<Rec>(connect(), 'v1', 'rec', { versioned: true });
    const b = new RedisRecords<Rec>(connect(), 'v1', 'rec', { versioned: true });
    await a.save({ id: 'r', state: 'queued' });
    const [ra, rb] = await Promise.all([a.get('r'), b.get('r')]);
    expect(ra!.version).toBe(1);
    ra!.state = 'running';
    rb!.state = 'cancelled';
    const outcomes = await Promise.allSettled([a.save(ra!), b.save(rb!)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const lost = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toBeInstanceOf(StaleRecordError);
    const stored = await a.get('r');
    expect(stored!.version).toBe(2);
    expect(stored!.state).toBe(outcomes[0].status === 'fulfilled' ? 'running' : 'cancelled');
  });

  it('update() re-reads and retries: 10 concurrent increments all land', async () => {
    interface Counter {
      id: string;
      n: number;
    }
    const repos = Array.from(
      { length: 10 },
      () => new RedisRecords<Counter>(connect(), 'v2', 'counter', { versioned: true }),
    );
    await repos[0]!.save({ id: 'c', n: 0 });
    await Promise.all(repos.map((r) => r.update('c', (cur) => void (cur.n += 1), 50)));
    expect((await repos[0]!.get('c'))!.n).toBe(10);
  });

  it('a saver holding its copy keeps saving (its version follows); a record deleted under it is not resurrected', async () => {
    const repo = new RedisRecords<Rec>(connect(), 'v3', 'rec', { versioned: true });
    await repo.save({ id: 'r', state: 'queued' });
    const held = (await repo.get('r'))!;
    for (const state of ['running', 'completed']) {
      held.state = state;
      await repo.save(held);
    }
    expect(await repo.get('r')).toEqual({ id: 'r', state: 'completed', version: 3 });
    expect((await repo.list()).map((r) => r.version)).toEqual([3]);
    await repo.delete('r');
    await expect(repo.save(held)).rejects.toBeInstanceOf(StaleRecordError);
  });
});
