/** The post-copy trial cache on a private redis-server: per pair, both directions apart, gone after its TTL. */
import type { PostCopyTrialRecord } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { Redis } from 'ioredis';
import { RedisPostCopyTrials } from './post-copy-trials.js';

const PORT = 16393;
const trial = (over: Partial<PostCopyTrialRecord> = {}): PostCopyTrialRecord => ({
  sourceNodeId: 'node-a',
  destinationNodeId: 'node-b',
  ok: false,
  at: '2026-11-28T00:00:00.000Z',
  durationMs: 912,
  reason: 'page-pipe: tee: 65536: Operation not permitted',
  advice: 'raise fs.pipe-max-size on node-a',
  ...over,
});

describe('RedisPostCopyTrials', () => {
  let redis: Redis;

  beforeAll(async () => {
    await startRedis(PORT);
    redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  }, 60_000);

  afterAll(async () => {
    await redis?.quit();
    await stopRedis(PORT);
  }, 60_000);

  it('keeps a result per source -> destination, with the reason and advice, until its TTL', async () => {
    const trials = new RedisPostCopyTrials(redis, `t${Date.now()}`);
    await trials.put(trial(), 400);
    await trials.put(trial({ sourceNodeId: 'node-b', destinationNodeId: 'node-a', ok: true }), 60_000);
    expect(await trials.get('node-a', 'node-b')).toEqual(trial());
    expect(await trials.get('node-b', 'node-a')).toMatchObject({ ok: true });
    expect(await trials.get('node-a', 'node-c')).toBeUndefined();
    await new Promise((r) => setTimeout(r, 600));
    expect(await trials.get('node-a', 'node-b')).toBeUndefined();
    expect(await trials.get('node-b', 'node-a')).toMatchObject({ ok: true });
  });

  it('reads one source towards many destinations in one call, in order, a missing one undefined', async () => {
    const trials = new RedisPostCopyTrials(redis, `m${Date.now()}`);
    await trials.put(trial(), 60_000);
    await trials.put(trial({ destinationNodeId: 'node-c', ok: true }), 60_000);
    const got = await trials.getMany('node-a', ['node-c', 'node-x', 'node-b']);
    expect(got.map((t) => t && [t.destinationNodeId, t.ok])).toEqual([['node-c', true], undefined, ['node-b', false]]);
    expect(await trials.getMany('node-a', [])).toEqual([]);
  });
});
