/** Pair link measurements on a private redis-server: per pair, direction and transport; a weighted mean. */
import { startRedis, stopRedis } from '@spotlift/testing';
import { Redis } from 'ioredis';
import { LINK_EWMA_WEIGHT, nextLinkRecord, RedisPairLinks } from './pair-links.js';

const PORT = 16410;
const MiB = 2 ** 20;
const sample = (bytesPerSec: number, over: object = {}) => ({
  sourceNodeId: 'node-a',
  destinationNodeId: 'node-b',
  transport: 'tcp',
  bytesPerSec,
  at: '2026-11-28T02:00:00.000Z',
  ...over,
});

describe('nextLinkRecord', () => {
  it('starts at the first figure, then moves half way to each new one', () => {
    expect(LINK_EWMA_WEIGHT).toBe(0.5);
    const first = nextLinkRecord(undefined, sample(100 * MiB));
    expect(first).toMatchObject({ bytesPerSec: 100 * MiB, samples: 1 });
    const second = nextLinkRecord(first, sample(300 * MiB, { at: '2026-11-28T03:00:00.000Z' }));
    expect(second).toMatchObject({ bytesPerSec: 200 * MiB, samples: 2, at: '2026-11-28T03:00:00.000Z' });
  });
});

describe('RedisPairLinks', () => {
  let redis: Redis;

  beforeAll(async () => {
    await startRedis(PORT);
    redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  }, 60_000);

  afterAll(async () => {
    await redis?.quit();
    await stopRedis(PORT);
  }, 60_000);

  it('keeps one weighted figure per source -> destination and transport, with a week-long expiry', async () => {
    const prefix = `t${Date.now()}`;
    const links = new RedisPairLinks(redis, prefix);
    await links.record(sample(100 * MiB));
    await links.record(sample(50 * MiB));
    await links.record(sample(10 * MiB, { transport: 'ssh' }));
    await links.record(sample(999 * MiB, { sourceNodeId: 'node-b', destinationNodeId: 'node-a' }));
    expect(await links.get('node-a', 'node-b', 'tcp')).toMatchObject({ bytesPerSec: 75 * MiB, samples: 2 });
    expect(await links.get('node-a', 'node-b', 'ssh')).toMatchObject({ bytesPerSec: 10 * MiB, samples: 1 });
    expect(await links.get('node-b', 'node-a', 'tcp')).toMatchObject({ bytesPerSec: 999 * MiB });
    expect(await links.get('node-a', 'node-c', 'tcp')).toBeUndefined();
    const many = await links.getMany('node-a', ['node-c', 'node-b'], 'tcp');
    expect(many.map((l) => l?.bytesPerSec)).toEqual([undefined, 75 * MiB]);
    const ttl = await redis.pttl(`${prefix}:link:node-a->node-b:tcp`);
    expect(ttl).toBeGreaterThan(6 * 24 * 3_600_000);
  });
});
