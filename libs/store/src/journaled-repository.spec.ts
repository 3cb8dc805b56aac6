/**
 * The worker's journal in front of Redis: a save never fails because Redis did, reads fall back to the
 * journal, and the write-back neither loses the worker's copy nor clobbers a newer one. Redis is stood in for
 * by an in-memory repository that can be switched "down" (its calls reject as ioredis's do when offline).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InMemoryRecords } from './in-memory-records.js';
import { ForgetOnDelete, JournalCopies, JournaledRepository } from './journaled-repository.js';
import { LocalJournal } from './local-journal.js';
import { StaleRecordError, type Repository, type Versioned, updateLoop } from './repositories.port.js';
import type { PageQuery, RecordIndex } from './record-pages.js';

interface Rec {
  id: string;
  state: string;
  updatedAt: string;
}

class Switchable implements Repository<Rec> {
  down = false;
  readonly mem = new InMemoryRecords<Rec>();
  private check(): Promise<void> {
    return this.down
      ? Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false"))
      : Promise.resolve();
  }
  get = async (id: string) => (await this.check(), this.mem.get(id));
  list = async () => (await this.check(), this.mem.list());
  save = async (r: Rec) => (await this.check(), this.mem.save(r));
  delete = async (id: string) => (await this.check(), this.mem.delete(id));
  update = (id: string, change: (current: Rec) => boolean | void) => updateLoop<Rec>(this, id, change);
  page = async (q: PageQuery, i: RecordIndex<Rec>) => (await this.check(), this.mem.page(q, i));
}

let dir: string;
let redis: Switchable;
let t: number;
let buffered: string[];
const at = (s: number) => new Date(Date.UTC(2026, 11, 6, 12, 0, s)).toISOString();
const make = () =>
  new JournaledRepository<Rec>(
    redis,
    new LocalJournal(join(dir, 'migration')),
    () => new Date(at(t)),
    (id) => buffered.push(id),
  );

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'journal-'));
  redis = new Switchable();
  t = 10;
  buffered = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('JournaledRepository', () => {
  it('a save while Redis is down succeeds locally; reads answer from the journal; the flush writes it back', async () => {
    const repo = make();
    await repo.save({ id: 'm1', state: 'running', updatedAt: at(9) });
    redis.down = true;
    t = 20;
    await repo.save({ id: 'm1', state: 'completed', updatedAt: at(20) });
    expect(buffered).toEqual(['m1']);
    expect(await repo.get('m1')).toMatchObject({ state: 'completed' });
    expect(await repo.list()).toEqual([expect.objectContaining({ state: 'completed' })]);
    await expect(repo.get('unknown')).rejects.toThrow(/enableOfflineQueue/);
    expect((await repo.flush()).error).toMatch(/m1: Stream isn't writeable/);

    redis.down = false;
    // Redis came back from a snapshot older than the worker's last save: the journal copy still wins.
    expect(await repo.get('m1')).toMatchObject({ state: 'completed' });
    expect(await repo.flush()).toEqual({ written: ['m1'], skipped: [] });
    expect(await redis.mem.get('m1')).toMatchObject({ state: 'completed' });
    expect(await repo.flush()).toEqual({ written: [], skipped: [] });
  });

  it('does not clobber a record someone updated in Redis after the worker saved its copy', async () => {
    const repo = make();
    redis.down = true;
    await repo.save({ id: 'w1', state: 'running', updatedAt: at(10) });
    redis.down = false;
    await redis.mem.save({ id: 'w1', state: 'renamed by the API', updatedAt: at(30) });
    expect(await repo.get('w1')).toMatchObject({ state: 'renamed by the API' });
    expect(await repo.flush()).toEqual({ written: [], skipped: ['w1'] });
    expect(await redis.mem.get('w1')).toMatchObject({ state: 'renamed by the API' });
    expect((await repo.journal.get('w1'))?.pending).toBe(false);
  });

  it('re-creates what Redis lost (it came back empty), and leaves records it still has alone', async () => {
    const repo = make();
    await repo.save({ id: 'a', state: 'completed', updatedAt: at(5) });
    await repo.save({ id: 'b', state: 'running', updatedAt: at(6) });
    await redis.mem.delete('a');
    await redis.mem.save({ id: 'b', state: 'changed since', updatedAt: at(50) });
    expect(await repo.get('a')).toMatchObject({ state: 'completed' });
    expect(await repo.restoreMissing()).toEqual({ written: ['a'], skipped: ['b'] });
    expect(await redis.mem.get('a')).toMatchObject({ state: 'completed' });
    expect(await redis.mem.get('b')).toMatchObject({ state: 'changed since' });
  });

  it('delete removes the journal copy too, so a deleted record is never re-created', async () => {
    const repo = make();
    await repo.save({ id: 'gone', state: 'running', updatedAt: at(1) });
    await repo.delete('gone');
    expect(await repo.restoreMissing()).toEqual({ written: [], skipped: [] });
    expect(await repo.get('gone')).toBeUndefined();
  });

  it('prunes old copies that are over and in Redis; keeps pending, recent and unfinished ones', async () => {
    const repo = make();
    t = 1;
    await repo.save({ id: 'old-done', state: 'completed', updatedAt: at(1) });
    await repo.save({ id: 'old-running', state: 'running', updatedAt: at(1) });
    redis.down = true;
    await repo.save({ id: 'old-pending', state: 'completed', updatedAt: at(1) });
    redis.down = false;
    t = 40;
    await repo.save({ id: 'new-done', state: 'completed', updatedAt: at(40) });
    expect(await repo.prune(at(30), (r) => r.state === 'completed')).toEqual(['old-done']);
    expect((await repo.journal.list()).map((e) => e.record.id).sort()).toEqual([
      'new-done',
      'old-pending',
      'old-running',
    ]);
  });

  it('only outages are journaled: another save error reaches the caller', async () => {
    const repo = new JournaledRepository<Rec>(
      redis,
      new LocalJournal(join(dir, 'w')),
      () => new Date(at(t)),
      () => undefined,
      (e) => /enableOfflineQueue/.test(e.message),
    );
    redis.save = () => Promise.reject(new Error('WRONGTYPE Operation against a key holding the wrong kind of value'));
    await expect(repo.save({ id: 'x', state: 'running', updatedAt: at(1) })).rejects.toThrow(/WRONGTYPE/);
    expect(await repo.journal.list()).toEqual([]);
  });

  it("a delete through the API's view forgets the journal copy too", async () => {
    const repo = make();
    await repo.save({ id: 'w9', state: 'running', updatedAt: at(1) });
    await new ForgetOnDelete<Rec>(redis, repo.journal).delete('w9');
    expect(await repo.restoreMissing()).toEqual({ written: [], skipped: [] });
  });

  it('journals nothing for an id that is not a plain file name', async () => {
    const repo = make();
    redis.down = true;
    await repo.save({ id: '../escape', state: 'x', updatedAt: at(1) });
    expect(await repo.journal.list()).toEqual([]);
  });

  it("versioned records: the worker's copy wins over an empty Redis and over its own write-back, not over a newer record", async () => {
    const inner = new InMemoryRecords<Rec & Versioned>({ versioned: true });
    const repo = new JournaledRepository<Rec & Versioned>(
      inner,
      new LocalJournal(join(dir, 'v')),
      () => new Date(at(t)),
    );
    const rec: Rec & Versioned = { id: 'm1', state: 'dump', updatedAt: at(1) };
    await repo.save(rec);
    await repo.save(rec);
    expect(rec.version).toBe(2);
    await inner.delete('m1'); // Redis restarted empty while the worker held the record at version 2
    rec.state = 'restore';
    rec.updatedAt = at(2);
    await repo.save(rec);
    expect(await inner.get('m1')).toMatchObject({ state: 'restore', version: 1 });
    // The reconnect's write-back re-created it from an earlier journal copy: the version count restarted.
    await inner.delete('m1');
    await inner.save({ id: 'm1', state: 'restore', updatedAt: at(2) });
    rec.state = 'verify';
    rec.updatedAt = at(3);
    await repo.save(rec);
    expect(await inner.get('m1')).toMatchObject({ state: 'verify', version: 2 });
    // Another writer's newer record is never overwritten.
    await inner.save({ ...(await inner.get('m1'))!, state: 'by-api', updatedAt: at(9) });
    await expect(repo.save({ ...rec, state: 'other', updatedAt: at(4) })).rejects.toBeInstanceOf(StaleRecordError);
    expect((await inner.get('m1'))!.state).toBe('by-api');
  });

  describe('hosts whose clocks disagree: nothing is decided by updatedAt', () => {
    const HOUR = 3_600;
    const versioned = () => {
      const inner = new InMemoryRecords<Rec & Versioned>({ versioned: true });
      const down = { on: false };
      const flaky: Repository<Rec & Versioned> = {
        get: (id) => (down.on ? Promise.reject(new Error('enableOfflineQueue')) : inner.get(id)),
        list: () => inner.list(),
        save: (r) => (down.on ? Promise.reject(new Error('enableOfflineQueue')) : inner.save(r)),
        delete: (id) => inner.delete(id),
        update: (id, change) => updateLoop(flaky, id, change),
        page: (q, i) => inner.page(q, i),
      };
      // The worker's clock says t; its records carry that time.
      const repo = new JournaledRepository<Rec & Versioned>(
        flaky,
        new LocalJournal(join(dir, 'skew')),
        () => new Date(at(t)),
      );
      return { inner, down, repo };
    };

    it("the worker's clock behind: its copy made from another host's later-stamped record is written back, not dropped", async () => {
      const { inner, down, repo } = versioned();
      // The API, on a host an hour ahead, created the record.
      await inner.save({ id: 'm1', state: 'queued', updatedAt: at(10 + HOUR) });
      const rec = (await repo.get('m1'))!;
      down.on = true;
      rec.state = 'completed';
      rec.updatedAt = at(t);
      await repo.save(rec);
      down.on = false;
      expect(await repo.get('m1')).toMatchObject({ state: 'completed' });
      expect(await repo.flush()).toEqual({ written: ['m1'], skipped: [] });
      expect(await inner.get('m1')).toMatchObject({ state: 'completed', version: 2 });
    });

    it("the worker's clock ahead: another writer's later record is never overwritten, by a save or by the flush", async () => {
      const { inner, down, repo } = versioned();
      t = 10 + HOUR;
      const rec: Rec & Versioned = { id: 'm1', state: 'dump', updatedAt: at(t) };
      await repo.save(rec);
      // The API, on a host an hour behind, notes something a minute later (its clock says an hour earlier).
      await inner.save({ ...(await inner.get('m1'))!, state: 'noted by the API', updatedAt: at(70) });
      rec.state = 'restore';
      rec.updatedAt = at(t + 1);
      await expect(repo.save(rec)).rejects.toBeInstanceOf(StaleRecordError);
      expect((await inner.get('m1'))!.state).toBe('noted by the API');

      const other: Rec & Versioned = { id: 'm2', state: 'dump', updatedAt: at(t) };
      await repo.save(other);
      down.on = true;
      other.state = 'restore';
      other.updatedAt = at(t + 2);
      await repo.save(other);
      down.on = false;
      await inner.save({ ...(await inner.get('m2'))!, state: 'noted by the API', updatedAt: at(80) });
      expect(await repo.get('m2')).toMatchObject({ state: 'noted by the API' });
      expect(await repo.flush()).toEqual({ written: [], skipped: ['m2'] });
      expect((await inner.get('m2'))!.state).toBe('noted by the API');
    });

    it('a copy this worker wrote earlier (Redis restored from an older snapshot) is written over, whatever the clocks', async () => {
      const { inner, repo } = versioned();
      const rec: Rec & Versioned = { id: 'm1', state: 'dump', updatedAt: at(50) };
      await repo.save(rec);
      const snapshot = (await inner.get('m1'))!;
      rec.state = 'restore';
      rec.updatedAt = at(5); // the clock stepped back
      await repo.save(rec);
      await inner.delete('m1');
      await inner.save({ ...snapshot, version: undefined }); // Redis came back from the older snapshot
      rec.state = 'verify';
      await repo.save(rec);
      expect(await inner.get('m1')).toMatchObject({ state: 'verify' });
    });
  });

  it("JournalCopies (nodes, evacuations): Redis's answer as it is, each copy it took journaled and re-created after Redis came back empty", async () => {
    const inner = new InMemoryRecords<Rec & Versioned>({ versioned: true });
    const down = { on: false };
    const redisView: Repository<Rec & Versioned> = {
      get: (id) => (down.on ? Promise.reject(new Error('enableOfflineQueue')) : inner.get(id)),
      list: () => (down.on ? Promise.reject(new Error('enableOfflineQueue')) : inner.list()),
      save: (r) => (down.on ? Promise.reject(new Error('enableOfflineQueue')) : inner.save(r)),
      delete: (id) => inner.delete(id),
      update: (id, change) => updateLoop(redisView, id, change),
      page: (q, i) => inner.page(q, i),
    };
    const journal = new JournaledRepository<Rec & Versioned>(redisView, new LocalJournal(join(dir, 'node')));
    const api = new JournalCopies(redisView, journal);
    await api.save({ id: 'node-d', state: 'ready', updatedAt: at(1) });
    await api.update('node-d', (n) => void (n.state = 'terminating'));
    await api.save({ id: 'node-gone', state: 'ready', updatedAt: at(1) });
    await api.delete('node-gone');
    // While Redis is away the API's calls fail (its 503s); nothing is buffered for later.
    down.on = true;
    await expect(api.save({ id: 'node-e', state: 'ready', updatedAt: at(2) })).rejects.toThrow(/enableOfflineQueue/);
    await expect(api.list()).rejects.toThrow(/enableOfflineQueue/);
    down.on = false;
    await inner.delete('node-d'); // Redis came back empty
    expect(await journal.restoreMissing()).toEqual({ written: ['node-d'], skipped: [] });
    expect(await api.get('node-d')).toMatchObject({ state: 'terminating', version: 1 });
    expect(await api.get('node-gone')).toBeUndefined();
    expect(await api.get('node-e')).toBeUndefined();
  });
});
