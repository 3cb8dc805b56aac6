/** Pages, filters, term indexes and retention of RedisRecords on a private redis-server. */
import type { MigrationRecord } from '@spotlift/domain';
import { aMigration, startRedis, stopRedis } from '@spotlift/testing';
import { Redis } from 'ioredis';
import { type PageQuery, decodeCursor, pageOf } from './record-pages.js';
import { MIGRATION_INDEX } from './record-indexes.js';
import { RedisRecords } from './redis-repository.js';
import { StaleRecordError, allWhere } from './repositories.port.js';

const PORT = 6475;
const T0 = Date.parse('2026-12-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

describe('RedisRecords pages and indexes', () => {
  let redis: Redis;
  let n = 0;
  let prefix: string;
  let repo: RedisRecords<MigrationRecord>;

  beforeAll(async () => {
    await startRedis(PORT);
    redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  }, 60_000);

  beforeEach(() => {
    prefix = `pg${++n}`;
    repo = new RedisRecords<MigrationRecord>(redis, prefix, 'migration', { versioned: true });
  });

  afterAll(async () => {
    await redis?.quit();
    await stopRedis(PORT);
  }, 60_000);

  /** Follows `next` to the end; every page at most `limit`. */
  async function walk(q: Omit<PageQuery, 'cursor'>): Promise<MigrationRecord[]> {
    const all: MigrationRecord[] = [];
    let next: string | undefined;
    do {
      const page = await repo.page({ ...q, ...(next ? { cursor: decodeCursor(next) } : {}) }, MIGRATION_INDEX);
      expect(page.items.length).toBeLessThanOrEqual(q.limit);
      all.push(...page.items);
      next = page.next;
    } while (next);
    return all;
  }

  /** 60 migrations, three to a second (ties on the creation time), states and nodes in turn. */
  async function seed(): Promise<MigrationRecord[]> {
    const states = ['queued', 'running', 'completed', 'failed'] as const;
    const made: MigrationRecord[] = [];
    for (let i = 0; i < 60; i++) {
      const m = aMigration({
        id: `mig-${String(i).padStart(3, '0')}`,
        workloadId: `wl-${i % 5}`,
        sourceNodeId: `node-${i % 3}`,
        destinationNodeId: `node-${(i + 1) % 3}`,
        state: states[i % 4],
        createdAt: at(Math.floor(i / 3)),
      });
      await repo.save(m);
      made.push(m);
    }
    return made;
  }

  const ids = (ms: MigrationRecord[]) => ms.map((m) => m.id);

  it('walks every record exactly once, newest first or oldest first, across ties on the creation time', async () => {
    const made = await seed();
    const byCreation = [...made].sort((a, b) =>
      a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? -1 : 1,
    );
    expect(ids(await walk({ limit: 7, order: 'asc' }))).toEqual(ids(byCreation));
    expect(ids(await walk({ limit: 7, order: 'desc' }))).toEqual(ids(byCreation).reverse());
    // The same order as the in-memory pages (unit tests and repositories without an index).
    expect(ids(pageOf(made, { limit: 1000, order: 'desc' }, MIGRATION_INDEX).items)).toEqual(ids(byCreation).reverse());
  });

  it('filters by state, node (source or destination), workload and creation time, and combines them', async () => {
    const made = await seed();
    const expectWhere = async (
      q: Omit<PageQuery, 'cursor' | 'limit' | 'order'>,
      keep: (m: MigrationRecord) => boolean,
    ) => expect(new Set(ids(await walk({ ...q, limit: 4, order: 'desc' })))).toEqual(new Set(ids(made.filter(keep))));
    await expectWhere({ where: ['state=running'] }, (m) => m.state === 'running');
    await expectWhere(
      { where: ['node=node-1'] },
      (m) => m.sourceNodeId === 'node-1' || m.destinationNodeId === 'node-1',
    );
    await expectWhere(
      { where: ['workload=wl-2', 'state=queued'] },
      (m) => m.workloadId === 'wl-2' && m.state === 'queued',
    );
    await expectWhere({ since: T0 + 5_000, until: T0 + 9_000 }, (m) => m.createdAt >= at(5) && m.createdAt <= at(9));
    await expectWhere({ where: ['state=nope'] }, () => false);
  });

  it('moves a record between term sets when a save changes it; a save that loses the race changes no index', async () => {
    await repo.save(aMigration({ id: 'mig-x', state: 'queued' }));
    const read = (await repo.get('mig-x'))!;
    const stale = (await repo.get('mig-x'))!;
    read.state = 'completed';
    await repo.save(read);
    stale.state = 'failed';
    await expect(repo.save(stale)).rejects.toThrow(StaleRecordError);
    const inState = async (s: string) =>
      ids((await repo.page({ limit: 10, order: 'asc', where: [`state=${s}`] }, MIGRATION_INDEX)).items);
    expect(await inState('queued')).toEqual([]);
    expect(await inState('failed')).toEqual([]);
    expect(await inState('completed')).toEqual(['mig-x']);
    await repo.delete('mig-x');
    expect(await inState('completed')).toEqual([]);
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  });

  it("allWhere reads one workload's records through its term set", async () => {
    await seed();
    const mine = await allWhere(repo, MIGRATION_INDEX, ['workload=wl-3']);
    expect(mine).toHaveLength(12);
    expect(mine.every((m) => m.workloadId === 'wl-3')).toBe(true);
  });

  it('trims finished records created before the bound, never unfinished ones or newer ones', async () => {
    await seed();
    const before = T0 + 10_000; // ids 000..029 were created before it
    const gone = await repo.trim('state=completed', before, 1000, (m) => m.state === 'completed');
    expect(gone.sort()).toEqual(['mig-002', 'mig-006', 'mig-010', 'mig-014', 'mig-018', 'mig-022', 'mig-026']);
    for (const id of gone) expect(await repo.get(id)).toBeUndefined();
    expect(await repo.get('mig-001')).toBeDefined(); // running, old: stays
    expect(await repo.get('mig-030')).toBeDefined(); // completed, newer: stays
    const left = await walk({ limit: 100, order: 'asc', where: ['state=completed'] });
    expect(left.every((m) => m.createdAt >= at(10))).toBe(true);
  });

  it('reindex gives records written before their kind had term sets a place in every filter', async () => {
    const old = aMigration({ id: 'mig-old', state: 'running', workloadId: 'wl-9' });
    await redis.set(`${prefix}:migration:mig-old`, JSON.stringify(old));
    await redis.zadd(`${prefix}:migrations`, 1234, 'mig-old');
    expect((await repo.page({ limit: 10, order: 'asc', where: ['workload=wl-9'] }, MIGRATION_INDEX)).items).toEqual([]);
    expect(await repo.reindex()).toBe(1);
    const page = await repo.page({ limit: 10, order: 'asc', where: ['workload=wl-9'] }, MIGRATION_INDEX);
    expect(ids(page.items)).toEqual(['mig-old']);
    // Its place in the lists is the one it had.
    expect(await redis.zscore(`${prefix}:migrations:workload=wl-9`, 'mig-old')).toBe('1234');
  });
});
