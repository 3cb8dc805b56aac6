/**
 * The cancel flag against a real redis-server (the lab's private instance on port 16383): a cancel and the
 * commit claim race from separate connections, as the API process and a worker would, and exactly one wins.
 */
import { Redis } from 'ioredis';
import { startRedis, stopRedis } from '@spotlift/testing';
import { RedisMigrationFlags } from './migration-flags.js';

const PORT = 16383;
const clients: Redis[] = [];
const flags = (prefix: string) => {
  const c = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  clients.push(c);
  return new RedisMigrationFlags(c, prefix);
};

beforeAll(() => startRedis(PORT), 60_000);
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await stopRedis(PORT);
});

describe('RedisMigrationFlags', () => {
  it('a cancel before the claim wins: the claim fails, the cancel stays requested (and is idempotent)', async () => {
    const api = flags('t1');
    const worker = flags('t1');
    expect(await api.requestCancel('m')).toBe('requested');
    expect(await api.requestCancel('m')).toBe('requested');
    expect(await worker.cancelRequested('m')).toBe(true);
    expect(await worker.claimCommit('m')).toBe(false);
  });

  it('a claim before the cancel wins: the cancel is answered "committed", the claim can be repeated', async () => {
    const api = flags('t2');
    const worker = flags('t2');
    expect(await worker.claimCommit('m')).toBe(true);
    expect(await api.requestCancel('m')).toBe('committed');
    expect(await worker.cancelRequested('m')).toBe(false);
    expect(await worker.claimCommit('m')).toBe(true);
  });

  it('racing from two connections, exactly one side wins every time', async () => {
    const api = flags('t3');
    const worker = flags('t3');
    for (let i = 0; i < 200; i++) {
      const [cancel, claim] = await Promise.all([api.requestCancel(`m${i}`), worker.claimCommit(`m${i}`)]);
      expect(cancel === 'requested').toBe(!claim);
    }
  });

  it('keeps flags per prefix and migration, with an expiry', async () => {
    const a = flags('t4');
    await a.requestCancel('m');
    expect(await flags('t5').cancelRequested('m')).toBe(false);
    expect(await a.cancelRequested('other')).toBe(false);
    const ttl = await clients[0]!.ttl('t4:migration-flag:m');
    expect(ttl).toBeGreaterThan(13 * 24 * 3600);
  });
});
