/**
 * Node and evacuation records have several writers (a probe and a notice on a node; the evacuation
 * coordinator, a joining notice, the cordon and an Azure approval on an evacuation). Each writes through
 * `update` (re-read, change, compare-and-set, retry): two writers racing on one record both land, and a save
 * from a stale copy is refused. The same races against a real Redis: versioned-records.int-spec.ts.
 */
import type { NodeRecord } from '@spotlift/domain';
import { aNodeRecord, anEvacuation } from '../test/record-builders.js';
import { InMemoryEvacuationRecords } from './evacuation-repository.js';
import { InMemoryRecords } from './in-memory-records.js';
import { StaleRecordError, type Versioned, createIfAbsent } from './repositories.port.js';

describe('node records: a probe and a notice write the same node at once', () => {
  it('both land: the probe result and the terminating state', async () => {
    const nodes = new InMemoryRecords<NodeRecord>({ versioned: true });
    await nodes.save(aNodeRecord());
    const probe = { probedAt: '2026-12-06T12:00:01.000Z', criuOk: true, features: {}, memAvailableBytes: 42 };
    await Promise.all([
      nodes.update('node-a', (n) => {
        n.probe = probe;
        if (n.state === 'unreachable') n.state = 'ready';
      }),
      nodes.update('node-a', (n) => void (n.state = 'terminating')),
    ]);
    expect(await nodes.get('node-a')).toMatchObject({ state: 'terminating', probe, version: 3 });
  });

  it('a save from a copy read before another writer saved is refused, and nothing is overwritten', async () => {
    const nodes = new InMemoryRecords<NodeRecord>({ versioned: true });
    await nodes.save(aNodeRecord());
    const stale = (await nodes.get('node-a'))!;
    await nodes.update('node-a', (n) => void (n.state = 'terminating'));
    stale.state = 'ready';
    await expect(nodes.save(stale)).rejects.toBeInstanceOf(StaleRecordError);
    expect((await nodes.get('node-a'))!.state).toBe('terminating');
  });

  it('create-if-absent: the first create wins, a second one is refused and leaves the first', async () => {
    const nodes = new InMemoryRecords<NodeRecord>({ versioned: true });
    const first = aNodeRecord();
    const second = { ...aNodeRecord(), host: '10.0.0.2' };
    expect(await createIfAbsent(nodes, first)).toBe(true);
    expect((first as Versioned).version).toBe(1);
    expect(await createIfAbsent(nodes, second)).toBe(false);
    expect((second as Versioned).version).toBeUndefined();
    expect((await nodes.get('node-a'))!.host).toBe('10.0.0.1');
  });
});

describe('evacuation records: writers of migration results and of other fields at once', () => {
  it('five writers each recording one migration result: all five land', async () => {
    const repo = new InMemoryEvacuationRecords();
    const ids = ['w1', 'w2', 'w3', 'w4', 'w5'];
    await repo.save(anEvacuation(ids));
    await Promise.all(
      ids.map((id) =>
        repo.update('evac-1', (e) => {
          Object.assign(
            e.jobs.find((j) => j.workloadId === id)!,
            { state: 'completed', downtimeMs: 100 },
          );
          e.events.push({ at: '2026-12-06T12:00:05.000Z', msg: `${id} moved` });
        }),
      ),
    );
    const stored = (await repo.get('evac-1'))!;
    expect(stored.jobs.map((j) => j.state)).toEqual(ids.map(() => 'completed'));
    expect(stored.events.map((e) => e.msg).sort()).toEqual(ids.map((id) => `${id} moved`));
    expect((stored as Versioned).version).toBe(1 + ids.length);
  });

  it('an approval and a migration result at once: both land; a stale whole-record save is refused', async () => {
    const repo = new InMemoryEvacuationRecords();
    await repo.save(anEvacuation(['w1']));
    const stale = (await repo.get('evac-1'))!;
    const ack = { eventId: 'e1', at: '2026-12-06T12:00:02.000Z', ok: true, why: 'deadline-near' as const };
    await Promise.all([
      repo.update('evac-1', (e) => void (e.acknowledgement = ack)),
      repo.update('evac-1', (e) => void (e.jobs[0]!.state = 'completed')),
    ]);
    expect(await repo.get('evac-1')).toMatchObject({ acknowledgement: ack, jobs: [{ state: 'completed' }] });
    stale.jobs[0]!.state = 'failed';
    await expect(repo.save(stale)).rejects.toBeInstanceOf(StaleRecordError);
    expect((await repo.get('evac-1'))!.jobs[0]!.state).toBe('completed');
  });

  it('createIfAbsent: one of several replicas raising the same evacuation creates it', async () => {
    const repo = new InMemoryEvacuationRecords();
    const results = await Promise.all([1, 2, 3].map(() => repo.createIfAbsent(anEvacuation([]))));
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});
