/**
 * Node and evacuation records against a real redis-server (port 6411, this suite's own), writers on
 * separate connections as replicas and workers would be: every `update` lands, a stale save is refused,
 * one create-if-absent wins. The same cases in memory: versioned-records.spec.ts.
 */
import { Redis } from 'ioredis';
import type { NodeRecord } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { aNodeRecord, anEvacuation } from '../test/record-builders.js';
import { RedisEvacuationRecords } from './evacuation-repository.js';
import { RedisRecords } from './redis-repository.js';
import { StaleRecordError } from './repositories.port.js';

const PORT = 6411;
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

describe('versioned node records on Redis', () => {
  it('a probe and a notice from two connections at once: both fields land; a stale save is refused', async () => {
    const probeSide = new RedisRecords<NodeRecord>(connect(), 'n1', 'node', { versioned: true });
    const noticeSide = new RedisRecords<NodeRecord>(connect(), 'n1', 'node', { versioned: true });
    await probeSide.save(aNodeRecord());
    const stale = (await probeSide.get('node-a'))!;
    const probe = { probedAt: '2026-12-06T12:00:01.000Z', criuOk: true, features: {}, memAvailableBytes: 42 };
    await Promise.all([
      probeSide.update('node-a', (n) => void (n.probe = probe)),
      noticeSide.update('node-a', (n) => void (n.state = 'terminating')),
    ]);
    expect(await noticeSide.get('node-a')).toMatchObject({ state: 'terminating', probe, version: 3 });
    await expect(probeSide.save({ ...stale, state: 'ready' })).rejects.toBeInstanceOf(StaleRecordError);
    expect((await noticeSide.get('node-a'))!.state).toBe('terminating');
  });
});

describe('versioned evacuation records on Redis', () => {
  it('ten migration results written from ten connections at once: all ten land', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `w${i}`);
    await new RedisEvacuationRecords(connect(), 'e1').save(anEvacuation(ids));
    await Promise.all(
      ids.map((id) =>
        new RedisEvacuationRecords(connect(), 'e1').update(
          'evac-1',
          (e) => void (e.jobs.find((j) => j.workloadId === id)!.state = 'completed'),
          50,
        ),
      ),
    );
    const stored = (await new RedisEvacuationRecords(connect(), 'e1').get('evac-1'))!;
    expect(stored.jobs.filter((j) => j.state === 'completed')).toHaveLength(10);
  });

  it('five replicas raising the same evacuation: one creates it, and it is versioned from there', async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map(() => new RedisEvacuationRecords(connect(), 'e2').createIfAbsent(anEvacuation([]))),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const repo = new RedisEvacuationRecords(connect(), 'e2');
    expect(await repo.get('evac-1')).toMatchObject({ version: 1 });
    expect(await repo.list()).toHaveLength(1);
  });

  it('a record stored before the kind was versioned (no counter) is not overwritten by a create', async () => {
    const redis = connect();
    await redis.set('e3:evacuation:evac-1', JSON.stringify({ ...anEvacuation([]), state: 'completed' }));
    const repo = new RedisEvacuationRecords(redis, 'e3');
    expect(await repo.createIfAbsent(anEvacuation([]))).toBe(false);
    expect((await repo.get('evac-1'))!.state).toBe('completed');
    // Its first update after the upgrade is written (unconditionally, as before) and starts the count.
    await repo.update('evac-1', (e) => void (e.replans = 1));
    expect(await repo.get('evac-1')).toMatchObject({ replans: 1, version: 1 });
  });
});
