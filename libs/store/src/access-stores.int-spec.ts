/**
 * The token store and the audit log against a real redis-server (port 6412): two connections stand for two
 * replicas; the audit list stays capped under concurrent writers; a token id cannot be created twice.
 */
import { Redis } from 'ioredis';
import type { ApiTokenRecord, AuditEntry } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { RedisAuditLog } from './audit-log.js';
import { RedisTokenRepository } from './token-repository.js';

const PORT = 6412;
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

const token = (id: string, over: Partial<ApiTokenRecord> = {}): ApiTokenRecord => ({
  id,
  name: `token ${id}`,
  role: 'viewer',
  createdAt: '2026-12-06T12:00:00.000Z',
  secretSha256: 'ab'.repeat(32),
  ...over,
});

const entry = (i: number): AuditEntry => ({
  at: new Date(Date.UTC(2026, 11, 6, 12, 0, i)).toISOString(),
  method: 'POST',
  route: '/migrations',
  targets: { workload: `wl-${i}` },
  status: 201,
});

describe('RedisTokenRepository', () => {
  it('stores, lists in creation order and reads tokens across connections', async () => {
    const a = new RedisTokenRepository(connect(), 'tok1');
    const b = new RedisTokenRepository(connect(), 'tok1');
    await a.create(token('000000000001'));
    await a.create(token('000000000002', { role: 'agent', nodeId: 'node-a' }));
    expect((await b.list()).map((t) => t.id)).toEqual(['000000000001', '000000000002']);
    expect(await b.get('000000000002')).toMatchObject({ role: 'agent', nodeId: 'node-a' });
    expect(await b.get('nope')).toBeUndefined();
    expect(await new RedisTokenRepository(connect(), 'tok2').list()).toEqual([]);
  });

  it('never overwrites an existing id (its secret stays)', async () => {
    const a = new RedisTokenRepository(connect(), 'tok3');
    await a.create(token('000000000001'));
    await expect(a.create(token('000000000001', { secretSha256: 'cd'.repeat(32) }))).rejects.toThrow(/exists/);
    expect((await a.get('000000000001'))?.secretSha256).toBe('ab'.repeat(32));
    expect(await a.list()).toHaveLength(1);
  });

  it('revokes once: the first time stays, unknown ids answer undefined', async () => {
    const a = new RedisTokenRepository(connect(), 'tok4');
    const b = new RedisTokenRepository(connect(), 'tok4');
    await a.create(token('000000000001'));
    const first = await a.revoke('000000000001', '2026-12-06T13:00:00.000Z');
    expect(first?.revokedAt).toBe('2026-12-06T13:00:00.000Z');
    expect((await b.revoke('000000000001', '2026-12-06T14:00:00.000Z'))?.revokedAt).toBe(first?.revokedAt);
    expect((await b.get('000000000001'))?.revokedAt).toBe(first?.revokedAt);
    expect(await a.revoke('nope', '2026-12-06T13:00:00.000Z')).toBeUndefined();
  });
});

describe('RedisAuditLog', () => {
  it('returns the newest entries first, at most `limit`', async () => {
    const log = new RedisAuditLog(connect(), 'aud1');
    for (let i = 0; i < 5; i++) await log.append(entry(i));
    expect((await log.recent(3)).map((e) => e.targets.workload)).toEqual(['wl-4', 'wl-3', 'wl-2']);
    expect(await log.recent(0)).toEqual([]);
    expect(await log.recent(100)).toHaveLength(5);
    expect((await log.recent(1))[0]).toEqual(entry(4));
  });

  it('stays capped with several writers at once', async () => {
    const writers = [0, 1, 2].map(() => new RedisAuditLog(connect(), 'aud2', 50));
    await Promise.all(writers.flatMap((w, n) => Array.from({ length: 40 }, (_, i) => w.append(entry(n * 40 + i)))));
    expect(await clients.at(-1)!.llen('aud2:audit')).toBe(50);
    expect(await writers[0]!.recent(1000)).toHaveLength(50);
  });
});
