/** The process index on a private redis-server: one winner among racing claims, saves moving the key. */
import type { WorkloadRecord } from '@spotlift/domain';
import { aWorkload, startRedis, stopRedis } from '@spotlift/testing';
import { Redis } from 'ioredis';
import { IndexedWorkloadRepository, RedisProcessIndex } from './process-index.js';
import { RedisRecords } from './redis-repository.js';

const PORT = 6413;
const identity = { bootId: 'b1', pidNs: '11', startTime: '500' };
const KEY = 'proc:b1:11:4242:500';

describe('RedisProcessIndex', () => {
  let redis: Redis;
  let prefix = 0;
  let index: RedisProcessIndex;
  let workloads: IndexedWorkloadRepository;
  const raw = (k: string) => redis.get(`t${prefix}:process:${k}`);

  beforeAll(async () => {
    await startRedis(PORT);
    redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  }, 60_000);

  beforeEach(() => {
    prefix++;
    index = new RedisProcessIndex(redis, `t${prefix}`);
    workloads = new IndexedWorkloadRepository(new RedisRecords<WorkloadRecord>(redis, `t${prefix}`, 'workload'), index);
  });

  afterAll(async () => {
    await redis?.quit();
    await stopRedis(PORT);
  }, 60_000);

  it('lets exactly one of 20 concurrent claims win, on separate connections', async () => {
    const clients = Array.from({ length: 20 }, () => new Redis({ port: PORT, host: '127.0.0.1' }));
    try {
      const answers = await Promise.all(
        clients.map((c, i) => new RedisProcessIndex(c, `t${prefix}`).claim(KEY, `wl-${i}`)),
      );
      const winner = answers[0];
      expect(new Set(answers)).toEqual(new Set([winner]));
      expect(await raw(KEY)).toBe(winner);
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
  });

  it('keeps a claim pending (expiring) until the record is saved, then for good', async () => {
    expect(await index.claim(KEY, 'wl-1', { pendingMs: 60_000 })).toBe('wl-1');
    expect(await index.pending(KEY)).toBe(true);
    await workloads.save(aWorkload({ id: 'wl-1', identity }));
    expect(await index.pending(KEY)).toBe(false);
    expect(await redis.pttl(`t${prefix}:process:${KEY}`)).toBe(-1);
    // A pending claim nobody saves expires by itself.
    expect(await index.claim('proc:other', 'wl-2', { pendingMs: 50 })).toBe('wl-2');
    await new Promise((r) => setTimeout(r, 120));
    expect(await index.claim('proc:other', 'wl-3')).toBe('wl-3');
  });

  it('takes over from a holder only when the caller names it as the stale one', async () => {
    await index.claim(KEY, 'wl-1');
    expect(await index.claim(KEY, 'wl-2')).toBe('wl-1');
    expect(await index.claim(KEY, 'wl-2', { replacing: 'wl-9' })).toBe('wl-1');
    expect(await index.claim(KEY, 'wl-2', { replacing: 'wl-1' })).toBe('wl-2');
  });

  it('follows saves: a move takes the new key and frees the old; gone, checkpointed and delete free it', async () => {
    const w = aWorkload({ id: 'wl-1', identity });
    await workloads.save(w);
    expect(await raw(KEY)).toBe('wl-1');
    const moved = { ...w, nodeId: 'node-b', pid: 777, identity: { ...identity, startTime: '900' } };
    await workloads.save(moved);
    expect(await raw(KEY)).toBeNull();
    expect(await raw('proc:b1:11:777:900')).toBe('wl-1');
    await workloads.save({ ...moved, state: 'checkpointed' });
    expect(await raw('proc:b1:11:777:900')).toBeNull();
    await workloads.save({ ...moved, state: 'running' });
    expect(await raw('proc:b1:11:777:900')).toBe('wl-1');
    await workloads.delete('wl-1');
    expect(await raw('proc:b1:11:777:900')).toBeNull();
    expect(await redis.keys(`t${prefix}:*`)).toEqual([]);
  });

  it('never takes a key another record holds, and never frees one it does not hold', async () => {
    await index.claim(KEY, 'wl-other');
    await workloads.save(aWorkload({ id: 'wl-1', identity }));
    expect(await raw(KEY)).toBe('wl-other');
    await workloads.delete('wl-1');
    expect(await raw(KEY)).toBe('wl-other');
    await index.unclaim(KEY, 'wl-1');
    expect(await raw(KEY)).toBe('wl-other');
    await index.unclaim(KEY, 'wl-other');
    expect(await raw(KEY)).toBeNull();
  });
});
