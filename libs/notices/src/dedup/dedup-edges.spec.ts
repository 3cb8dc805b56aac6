/**
 * Dedup at its edges (mutation testing found these unpinned): the default memory of a notice, the exact
 * moment a key expires, failing open without an error callback, the in-memory store's bound, and what the
 * Redis store asks Redis for.
 */
import type { Redis } from 'ioredis';
import { makeDedupKey, type Notice } from '../notice.js';
import { DedupStore } from './dedup-store.port.js';
import { InMemoryDedupStore } from './in-memory-dedup-store.js';
import { NoticeDeduplicator } from './notice-deduplicator.js';
import { RedisDedupStore } from './redis-dedup-store.js';

let clock = 0;
const now = () => clock;
const MIN = 60_000;
const notice = (deadlineInMs: number, key = makeDedupKey('n1', 'aws', 'preemption')): Notice => ({
  nodeId: 'n1',
  source: 'aws',
  kind: 'preemption',
  deadline: new Date(clock + deadlineInMs),
  deadlineEstimated: false,
  receivedAt: new Date(clock),
  dedupKey: key,
  reason: 't',
  raw: {},
});

describe('NoticeDeduplicator defaults and edges', () => {
  beforeEach(() => (clock = 5_000_000));

  it('by default remembers a notice 10 minutes when its deadline is near, and forgets it exactly then', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), { now });
    const start = clock;
    expect(await d.isNew(notice(2 * MIN))).toBe(true);
    clock = start + 10 * MIN - 1;
    expect(await d.isNew(notice(2 * MIN))).toBe(false);
    clock = start + 10 * MIN;
    expect(await d.isNew(notice(2 * MIN))).toBe(true);
  });

  it('by default remembers a later deadline until 5 minutes after it', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), { now });
    const start = clock;
    expect(await d.isNew(notice(10 * MIN))).toBe(true);
    clock = start + 15 * MIN - 1;
    expect(await d.isNew(notice(10 * MIN))).toBe(false);
    clock = start + 15 * MIN;
    expect(await d.isNew(notice(10 * MIN))).toBe(true);
  });

  it('fails open when the store fails and nobody listens for errors', async () => {
    class Broken extends DedupStore {
      setIfAbsent(): Promise<boolean> {
        return Promise.reject(new Error('redis down'));
      }
    }
    const d = new NoticeDeduplicator(new Broken());
    expect(await d.isNew(notice(2 * MIN))).toBe(true);
  });
});

describe('InMemoryDedupStore', () => {
  beforeEach(() => (clock = 1_000));

  it('does not grow without bound: expired keys are swept once it holds more than 1,000', async () => {
    const store = new InMemoryDedupStore(now);
    for (let i = 0; i < 1_001; i++) await store.setIfAbsent(`k${i}`, 10);
    clock += 10;
    expect(await store.setIfAbsent('fresh', 10)).toBe(true);
    expect(store['entries'].size).toBe(1);
    expect(await store.setIfAbsent('k0', 10)).toBe(true);
  });

  it('does not scan at 1,000 keys or fewer (the sweep is for a store past its bound, not every call)', async () => {
    const store = new InMemoryDedupStore(now);
    for (let i = 0; i < 999; i++) await store.setIfAbsent(`k${i}`, 10);
    clock += 10;
    await store.setIfAbsent('the-1000th', 10);
    expect(store['entries'].size).toBe(1_000);
  });

  it('keeps live keys when it sweeps', async () => {
    const store = new InMemoryDedupStore(now);
    await store.setIfAbsent('live', 60_000);
    for (let i = 0; i < 1_001; i++) await store.setIfAbsent(`k${i}`, 1);
    clock += 1;
    await store.setIfAbsent('trigger', 1);
    expect(await store.setIfAbsent('live', 60_000)).toBe(false);
  });
});

describe('RedisDedupStore', () => {
  const fakeRedis = (answer: 'OK' | null) => {
    const calls: unknown[][] = [];
    const redis = {
      set: (...args: unknown[]) => {
        calls.push(args);
        return Promise.resolve(answer);
      },
    } as unknown as Redis;
    return { redis, calls };
  };

  it('claims with one atomic SET NX PX under its prefix; only OK is new', async () => {
    const ok = fakeRedis('OK');
    expect(await new RedisDedupStore(ok.redis, 'p:').setIfAbsent('n1:aws:preemption', 1500.2)).toBe(true);
    expect(ok.calls).toEqual([['p:n1:aws:preemption', '1', 'PX', 1501, 'NX']]);
    const taken = fakeRedis(null);
    expect(await new RedisDedupStore(taken.redis).setIfAbsent('k', 10)).toBe(false);
    expect(taken.calls[0]![0]).toBe('spotlift:notice-dedup:k');
  });

  it('never asks Redis for a TTL below 1 ms (PX 0 is an error there)', async () => {
    const r = fakeRedis('OK');
    await new RedisDedupStore(r.redis).setIfAbsent('k', 0.2);
    await new RedisDedupStore(r.redis).setIfAbsent('k', -5);
    expect(r.calls.map((c) => c[3])).toEqual([1, 1]);
  });
});
