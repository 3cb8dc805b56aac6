/**
 * Several worker hosts journal copies of the same records (issue 9, found by test/worker-hosts.e2e-spec.ts):
 * when Redis comes back empty, each host writes back what its journal holds, in whatever order the hosts
 * reconnect. A stale unfinished copy of a host that did not drive a migration to its end must never stand over
 * the final copy of the host that did, nor an older copy over a newer one, whichever host writes first; and an
 * unfinished copy written back into a Redis that had lost the record is marked, so that what runs it next
 * decides from the nodes. Redis is an in-memory versioned repository (the same compare-and-set as Redis's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemoryRecords } from './in-memory-records.js';
import { JournaledRepository, type RecordOrder } from './journaled-repository.js';
import { LocalJournal } from './local-journal.js';
import type { Repository, Versioned } from './repositories.port.js';
import { updateLoop } from './repositories.port.js';

interface Rec extends Versioned {
  id: string;
  state: string;
  updatedAt: string;
  restoredFromJournal?: string;
}

const ORDER: RecordOrder<Rec> = {
  isFinal: (r) => r.state === 'completed',
  restored: (r, at) => {
    if (r.state !== 'completed') r.restoredFromJournal = at;
  },
};

let dir: string;
let redis: InMemoryRecords<Rec>;
let down: boolean;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'journal-order-'));
  redis = new InMemoryRecords<Rec>({ versioned: true });
  down = false;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Redis as every host sees it: down for all at once. */
const shared = (): Repository<Rec> => {
  const check = () => (down ? Promise.reject(new Error('Connection is closed.')) : Promise.resolve());
  const r: Repository<Rec> = {
    get: async (id) => (await check(), redis.get(id)),
    list: async () => (await check(), redis.list()),
    save: async (x) => (await check(), redis.save(x)),
    saveAtLeast: async (x, v) => (await check(), redis.saveAtLeast(x, v)),
    delete: async (id) => (await check(), redis.delete(id)),
    update: (id, change) => updateLoop(r, id, change),
    page: async (query, index) => (await check(), redis.page(query, index)),
  };
  return r;
};

const host = (name: string, ordered: boolean | RecordOrder<Rec> = true) =>
  new JournaledRepository<Rec>(
    shared(),
    new LocalJournal(join(dir, name)),
    () => new Date('2026-12-06T22:00:00.000Z'),
    () => undefined,
    () => true,
    ordered === true ? ORDER : ordered || undefined,
  );

const versionIn = (r: Rec | undefined): number => r?.version ?? 0;

const emptyRedis = async () => {
  for (const r of await redis.list()) await redis.delete(r.id);
};

/** Host A drives m1 until it is killed; its restart writes it back into an empty Redis; host B finishes it. */
async function staleOnA(): Promise<{ a: JournaledRepository<Rec>; b: JournaledRepository<Rec> }> {
  const a = host('a');
  const b = host('b');
  const m: Rec = { id: 'm1', state: 'running', updatedAt: 'dump' };
  await a.save(m);
  await a.save(m);
  await a.save(m);
  await a.save(m); // version 4, then A dies and Redis comes back empty
  await emptyRedis();
  expect(await a.restoreMissing()).toEqual({ written: ['m1'], skipped: [] });
  // B takes the job: recovery, then the end state (two saves on top of what A wrote back)
  const onB = (await b.get('m1'))!;
  onB.updatedAt = 'recovered';
  await b.save(onB);
  onB.state = 'completed';
  await b.save(onB);
  return { a, b };
}

describe('copies of one record on two worker hosts, Redis emptied twice', () => {
  it.each([
    ['the stale host writes back first', ['a', 'b']],
    ['the host that finished it writes back first', ['b', 'a']],
  ] as const)('%s: the completed copy stands; the stale host forgets its copy', async (_what, order) => {
    const { a, b } = await staleOnA();
    await emptyRedis();
    const hosts = { a, b };
    for (const h of order) await hosts[h].restoreMissing();
    expect(await redis.get('m1')).toMatchObject({ state: 'completed' });
    // A stale host that met the completed copy in Redis takes it into its journal instead of its running one.
    if (order[0] === 'b') expect((await a.journal.get('m1'))!.record).toMatchObject({ state: 'completed' });
    // Redis emptied a third time: the same, whatever the order.
    await emptyRedis();
    for (const h of order) await hosts[h].restoreMissing();
    expect(await redis.get('m1')).toMatchObject({ state: 'completed' });
  });

  it('an unfinished copy saved on since (a higher version) still never stands over the final one', async () => {
    const { a, b } = await staleOnA();
    await emptyRedis();
    await a.restoreMissing();
    // A stale re-run saved on top of A's copy before B's write-back came: its version passes B's final one.
    for (let i = 0; i < 5; i++) await redis.save((await redis.get('m1'))!);
    expect(versionIn(await redis.get('m1'))).toBeGreaterThan(versionIn((await b.journal.get('m1'))!.record));
    await b.restoreMissing();
    expect(await redis.get('m1')).toMatchObject({ state: 'completed' });
    expect(await b.get('m1')).toMatchObject({ state: 'completed' });
  });

  it('versions keep counting across a write-back: a later unfinished copy beats an earlier one, whoever writes first', async () => {
    // Unfinished on both hosts (a workload, say): only the version orders them. A's copy is v4 from before Redis
    // first came back empty; B's was made after A wrote it back. Were the count restarted at A's write-back, B's
    // copy would carry a lower version than A's stale one.
    const a = host('a');
    const b = host('b');
    const w: Rec = { id: 'w1', state: 'on node-a', updatedAt: '1' };
    for (let i = 0; i < 4; i++) await a.save(w);
    await emptyRedis();
    await a.restoreMissing();
    expect(await redis.get('w1')).toMatchObject({ version: 4 });
    const onB = (await b.get('w1'))!;
    onB.state = 'on node-b';
    await b.save(onB);
    await emptyRedis();
    await a.restoreMissing();
    await b.restoreMissing();
    expect(await redis.get('w1')).toMatchObject({ state: 'on node-b', version: 5 });
  });

  it('a copy saved while Redis was away goes over the same version written back by another host, not over a later one', async () => {
    const a = host('a');
    const b = host('b');
    await a.save({ id: 'm1', state: 'running', updatedAt: '0' });
    const onA = (await a.get('m1'))!;
    await b.get('m1');
    await b.save((await b.get('m1'))!); // B's journal: v2
    down = true;
    await a.save({ ...onA, updatedAt: 'a' }); // pending on A, made from v1: its next save
    down = false;
    await emptyRedis();
    await redis.saveAtLeast({ id: 'm1', state: 'running', updatedAt: 'v1 from elsewhere' }, 1); // v1, not A's basis
    expect(await a.flush()).toEqual({ written: ['m1'], skipped: [] });
    expect(await redis.get('m1')).toMatchObject({ updatedAt: 'a', version: 2 });
    // B's v2 copy is the same version as A's pending one (both next saves of v1): Redis's copy stands.
    await emptyRedis();
    await b.restoreMissing();
    down = true;
    await a.save({ ...onA, updatedAt: 'a again' });
    down = false;
    expect(await a.flush()).toEqual({ written: [], skipped: ['m1'] });
    expect(await redis.get('m1')).toMatchObject({ version: 2 });
    expect((await redis.get('m1'))!.updatedAt).not.toMatch(/^a/);
  });

  it("a save never goes over another host's final copy, nor over its copy of the same version", async () => {
    const a = host('a');
    const b = host('b');
    await a.save({ id: 'm1', state: 'running', updatedAt: '0' });
    const onA = (await a.get('m1'))!;
    const onB = (await b.get('m1'))!;
    await b.save({ ...onB, updatedAt: 'b' }); // v2 by B
    await expect(a.save({ ...onA, updatedAt: 'a' })).rejects.toThrow(/changed while/);
    await b.save({ ...(await b.get('m1'))!, state: 'completed' }); // v3, final
    await expect(a.save({ ...onA, version: 9, updatedAt: 'a' })).rejects.toThrow(/changed while/);
    expect(await redis.get('m1')).toMatchObject({ state: 'completed', version: 3 });
  });

  it('two copies made from one version while Redis was away: the final one wins over the unfinished one', async () => {
    const a = host('a');
    const b = host('b');
    await a.save({ id: 'm1', state: 'running', updatedAt: '0' });
    const onA = (await a.get('m1'))!;
    const onB = (await b.get('m1'))!;
    down = true;
    await a.save({ ...onA, updatedAt: 'a' }); // pending on A, running
    await b.save({ ...onB, state: 'completed', updatedAt: 'b' }); // pending on B, completed
    down = false;
    await emptyRedis();
    await a.flush();
    await b.flush();
    expect(await redis.get('m1')).toMatchObject({ state: 'completed', updatedAt: 'b' });
    // and in the other order
    await emptyRedis();
    await b.restoreMissing();
    await a.restoreMissing();
    expect(await redis.get('m1')).toMatchObject({ state: 'completed', updatedAt: 'b' });
  });

  it("a save of the host that drives the job goes over another host's older copy written back meanwhile", async () => {
    const a = host('a');
    const b = host('b');
    await a.save({ id: 'm1', state: 'running', updatedAt: 'a' }); // v1, A's journal
    const onB = (await b.get('m1'))!;
    await b.save(onB);
    await b.save(onB); // B drives it: v3
    await emptyRedis();
    await a.restoreMissing(); // A's stale v1 copy, first back
    onB.updatedAt = 'b';
    await b.save(onB);
    expect(await redis.get('m1')).toMatchObject({ updatedAt: 'b', version: 4 });
  });
});

describe('an unfinished copy written back into a Redis that lost the record', () => {
  it('is marked (whatever runs it next decides from the nodes); a finished one, or a pending one flushed, is not', async () => {
    const a = host('a');
    await a.save({ id: 'm1', state: 'running', updatedAt: '1' });
    await a.save({ id: 'm2', state: 'completed', updatedAt: '1' });
    await emptyRedis();
    await a.restoreMissing();
    expect(await redis.get('m1')).toMatchObject({ restoredFromJournal: '2026-12-06T22:00:00.000Z' });
    expect((await redis.get('m2'))!.restoredFromJournal).toBeUndefined();

    const b = host('b');
    await b.save({ id: 'm3', state: 'running', updatedAt: '1' });
    const m3 = (await b.get('m3'))!;
    down = true;
    await b.save({ ...m3, updatedAt: 'pending' });
    down = false;
    expect(await b.flush()).toEqual({ written: ['m3'], skipped: [] });
    expect(await redis.get('m3')).toMatchObject({ updatedAt: 'pending' });
    expect((await redis.get('m3'))!.restoredFromJournal).toBeUndefined();
    // Written over an older copy Redis holds (not lost): not marked either.
    const c = host('c');
    for (let i = 0; i < 3; i++) await c.save({ id: 'm4', state: 'running', updatedAt: 'c' });
    await redis.delete('m4');
    await redis.save({ id: 'm4', state: 'running', updatedAt: 'older' });
    expect(await c.restoreMissing()).toMatchObject({ written: ['m4'] });
    expect(await redis.get('m4')).toMatchObject({ updatedAt: 'c', version: 3 });
    expect((await redis.get('m4'))!.restoredFromJournal).toBeUndefined();
    // The same into a Redis that came back empty: the pending copy is the latest of a run this host drove.
    await emptyRedis();
    down = true;
    await b.save({ ...(await b.get('m3'))!, updatedAt: 'pending again' });
    down = false;
    expect(await b.flush()).toEqual({ written: ['m3'], skipped: [] });
    expect(await redis.get('m3')).toMatchObject({ updatedAt: 'pending again' });
    expect((await redis.get('m3'))!.restoredFromJournal).toBeUndefined();
  });

  it('without an order (nodes, evacuations) nothing changes: Redis keeps the copy it has, versions restart', async () => {
    const a = host('a', false);
    const b = host('b', false);
    for (let i = 0; i < 3; i++) await a.save({ id: 'n1', state: 'old', updatedAt: '1' });
    await b.save({ ...(await b.get('n1'))!, state: 'new' });
    await emptyRedis();
    await a.restoreMissing();
    await b.restoreMissing();
    expect(await redis.get('n1')).toMatchObject({ state: 'old', version: 1 });
    expect((await redis.get('n1'))!.restoredFromJournal).toBeUndefined();
  });

  it('an order without a mark (workloads) writes back unmarked', async () => {
    const a = host('a', { isFinal: () => false });
    await a.save({ id: 'w1', state: 'on node-a', updatedAt: '1' });
    await emptyRedis();
    expect(await a.restoreMissing()).toEqual({ written: ['w1'], skipped: [] });
    expect((await redis.get('w1'))!.restoredFromJournal).toBeUndefined();
  });
});
