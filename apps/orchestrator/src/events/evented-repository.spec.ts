import type { MigrationRecord, SpotliftEvent } from '@spotlift/domain';
import { InMemoryEvacuationRecords, InMemoryRecords, Repository } from '@spotlift/store';
import { aMigration } from '@spotlift/testing';
import { EventPublisher } from './event-publisher.js';
import { EventedEvacuations, EventedRepository } from './evented-repository.js';
import { evacuationEvents, migrationEvents } from './record-events.js';

/** A publisher whose XADDs land in an array, or fail like a Redis that went away. */
function publisher(fail = false) {
  const added: SpotliftEvent[] = [];
  const errors: Error[] = [];
  const redis = {
    xadd: (...args: (string | number)[]) => {
      if (fail) return Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      added.push(JSON.parse(String(args[args.length - 1])) as SpotliftEvent);
      return Promise.resolve('1-0');
    },
  };
  const p = new EventPublisher(redis as never, 'spl:events', 1000, (e) => errors.push(e));
  return { p, added, errors };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('EventedRepository', () => {
  it('the engine saving one record object again and again: each save publishes only what it changed', async () => {
    const { p, added } = publisher();
    const repo = new EventedRepository<MigrationRecord>(new InMemoryRecords(), p, migrationEvents);
    const m = aMigration();
    await repo.save(m);
    m.state = 'running';
    m.phases.push({ name: 'preflight', startedAt: '2026-01-01T00:00:01.000Z' });
    await repo.save(m);
    m.phases[0]!.endedAt = '2026-01-01T00:00:02.000Z';
    m.phases[0]!.durationMs = 1000;
    await repo.save(m);
    await repo.save(m);
    await flush();
    expect(added.map((e) => `${e.type}${'status' in e ? `:${e.status}` : ''}`)).toEqual([
      'migration.queued',
      'migration.phase:started',
      'migration.state',
      'migration.phase:ended',
    ]);
  });

  it('diffs against the record as read: another writer changed it in between, this save says only its own change', async () => {
    const { p, added } = publisher();
    const store = new InMemoryRecords<MigrationRecord>();
    await store.save(aMigration({ state: 'running', phases: [{ name: 'preflight', startedAt: 'x' }] }));
    const repo = new EventedRepository<MigrationRecord>(store, p, migrationEvents);
    await repo.update('mig-1', (m) => void (m.state = 'cancelled'));
    await flush();
    expect(added.map((e) => e.type)).toEqual(['migration.state']);
  });

  it('a save that fails publishes nothing; a publish that fails does not fail the save', async () => {
    const failing = publisher(true);
    const store = new InMemoryRecords<MigrationRecord>();
    const repo = new EventedRepository<MigrationRecord>(store, failing.p, migrationEvents);
    await expect(repo.save(aMigration())).resolves.toBeUndefined();
    await flush();
    expect(await store.get('mig-1')).toBeDefined();
    expect(failing.p.dropped).toBe(1);
    expect(failing.errors[0]!.message).toMatch(/ECONNREFUSED/);

    const ok = publisher();
    class Refusing extends Repository<MigrationRecord> {
      get = () => Promise.resolve(undefined);
      list = () => Promise.resolve([]);
      save = () => Promise.reject(new Error('stale'));
      delete = () => Promise.resolve();
    }
    const refused = new EventedRepository<MigrationRecord>(new Refusing(), ok.p, migrationEvents);
    await expect(refused.save(aMigration())).rejects.toThrow('stale');
    await flush();
    expect(ok.added).toEqual([]);
  });

  it('a diff that throws loses its events, not the save', async () => {
    const { p, added } = publisher();
    const errors: Error[] = [];
    const store = new InMemoryRecords<MigrationRecord>();
    const boom = () => {
      throw new Error('bad record');
    };
    const repo = new EventedRepository<MigrationRecord>(store, p, boom, undefined, (e) => errors.push(e));
    await repo.save(aMigration());
    expect(await store.get('mig-1')).toBeDefined();
    expect(added).toEqual([]);
    expect(errors.map((e) => e.message)).toEqual(['bad record']);
  });
});

describe('EventedEvacuations', () => {
  it('only the replica whose create-if-absent wins publishes the notice', async () => {
    const { p, added } = publisher();
    const inner = new InMemoryEvacuationRecords();
    const a = new EventedEvacuations(inner, p, evacuationEvents);
    const b = new EventedEvacuations(inner, p, evacuationEvents);
    const rec = {
      id: 'evac-1',
      nodeId: 'node-a',
      notice: {
        source: 'aws' as const,
        kind: 'termination' as const,
        deadline: '2026-01-01T00:02:00.000Z',
        deadlineEstimated: false,
        receivedAt: '2026-01-01T00:00:00.000Z',
        reason: 'spot interruption',
        dedupKey: 'k',
        raw: {},
      },
      policy: 'evacuate' as const,
      state: 'planning' as const,
      deadline: '2026-01-01T00:02:00.000Z',
      replans: 0,
      jobs: [],
      predictedMisses: [],
      events: [],
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    };
    expect(await a.createIfAbsent(structuredClone(rec))).toBe(true);
    expect(await b.createIfAbsent(structuredClone(rec))).toBe(false);
    await a.save({ ...structuredClone(rec), state: 'running' });
    await flush();
    expect(added.map((e) => e.type)).toEqual(['notice', 'evacuation.state', 'evacuation.state']);
    expect(added[2]).toMatchObject({ state: 'running', previous: 'planning' });
  });
});
