import type { NodeRecord, PostCopyTrialRecord } from '@spotlift/domain';
import { randomUUID } from 'node:crypto';
import { Clock, type NodeOps } from '@spotlift/engine';
import { InMemoryPostCopyTrials, InMemoryRecords } from '@spotlift/store';
import { aNode } from '@spotlift/testing';
import type { NodeShell } from '@spotlift/transport';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { NodeEvents } from '../nodes/node-events.js';
import { PairTrials } from './pair-trials.js';
import { TrialLease, type HeldLease } from './trial-lease.js';

const NOW = Date.UTC(2026, 11, 6, 12);
const HOUR = 3_600_000;
/** A clock one millisecond later at each reading (the trials' times and when pairs became due are ordered). */
class TickingClock extends Clock {
  private t = NOW;
  override now(): Date {
    return new Date(this.t++);
  }
}

/** One lease for the specs: two PairTrials sharing one stand for two replicas sharing Redis. */
class SharedLease extends TrialLease {
  private holder?: string;
  take(): Promise<HeldLease | undefined> {
    if (this.holder) return Promise.resolve(undefined);
    const token = randomUUID();
    this.holder = token;
    return Promise.resolve({
      renew: () => Promise.resolve(this.holder === token),
      release: () => Promise.resolve(void (this.holder === token && (this.holder = undefined))),
    });
  }
}

/**
 * PairTrials whose trial is scripted per destination: `ok`, `failed`, or `hang` (never answers); a trial that
 * answers stores its record like the real runner; `during` runs inside each trial (a notice arriving, say).
 */
class ScriptedTrials extends PairTrials {
  readonly ran: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  during?: () => Promise<void>;
  private readonly ticks: Clock;
  constructor(
    private readonly store: InMemoryPostCopyTrials,
    nodes: InMemoryRecords<NodeRecord>,
    private readonly script: Record<string, 'ok' | 'failed' | 'hang'>,
    lease: TrialLease = new SharedLease(),
    events?: NodeEvents,
  ) {
    const clock = new TickingClock();
    const config = {
      evacuation: EvacuationSettings.parse({}),
      engine: {},
      live: {},
      runsWorker: true,
    } as unknown as AppConfig;
    super({} as NodeOps, {} as NodeShell, store, clock, config, nodes, lease, events);
    this.ticks = clock;
  }
  override async run(source: NodeRecord, destination: NodeRecord): Promise<PostCopyTrialRecord> {
    this.ran.push(`${source.id}->${destination.id}`);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      await this.during?.();
      const how = this.script[destination.id] ?? 'ok';
      if (how === 'hang') return await new Promise<never>(() => undefined);
      const r = {
        sourceNodeId: source.id,
        destinationNodeId: destination.id,
        ok: how === 'ok',
        at: this.ticks.now().toISOString(),
        durationMs: 800,
      };
      await this.store.put(r, 60 * HOUR);
      return r;
    } finally {
      this.inFlight--;
    }
  }
}

const trial = (s: string, d: string, ageMs: number): PostCopyTrialRecord => ({
  sourceNodeId: s,
  destinationNodeId: d,
  ok: true,
  at: new Date(NOW - ageMs).toISOString(),
  durationMs: 1,
});

/** A fleet of ready nodes (some given over) and a store where every pair has a trial `ageMs` old. */
async function fleet(ids: string[], ageMs: number, over: Record<string, Partial<NodeRecord>> = {}) {
  const nodes = new InMemoryRecords<NodeRecord>();
  for (const id of ids) await nodes.save(ready(id, over[id]));
  const store = new InMemoryPostCopyTrials();
  for (const s of ids) for (const d of ids) if (s !== d) await store.put(trial(s, d, ageMs), 60 * HOUR);
  return { nodes, store };
}

const ready = (id: string, over: Partial<NodeRecord> = {}): NodeRecord =>
  aNode(id, { state: 'ready', probe: { ...aNode(id).probe!, criuOk: true }, ...over });

describe('PairTrials', () => {
  it('runs only the missing trials, and what does not answer within the budget is reported unfinished', async () => {
    const store = new InMemoryPostCopyTrials();
    await store.put({ sourceNodeId: 'a', destinationNodeId: 'b', ok: true, at: '', durationMs: 1 }, 60_000);
    const t = new ScriptedTrials(store, new InMemoryRecords<NodeRecord>(), { c: 'failed', d: 'hang' });
    const r = await t.runMissing(ready('a'), [ready('b'), ready('c'), ready('d')], 20);
    expect(t.ran).toEqual(['a->c', 'a->d']);
    expect(r.done.map((x) => [x.destinationNodeId, x.ok])).toEqual([['c', false]]);
    expect(r.unfinished).toEqual(['d']);
  });

  it('the pass runs missing pairs between ready nodes one at a time, never on one under notice or draining', async () => {
    const nodes = new InMemoryRecords<NodeRecord>();
    for (const n of [ready('a', { state: 'terminating' }), ready('b'), ready('c', { state: 'draining' }), ready('d')])
      await nodes.save(n);
    await nodes.save(ready('e'));
    const t = new ScriptedTrials(new InMemoryPostCopyTrials(), nodes, {});
    // A notice for e arrives during the first trial: e's pairs, due when the pass started, are skipped.
    t.during = async () => void (await nodes.save(ready('e', { state: 'terminating' })));
    const [p1, p2] = [t.pass(true), t.pass(true)];
    await Promise.all([p1, p2]);
    expect(t.ran).toEqual(['b->d', 'd->b']);
    expect(t.maxInFlight).toBe(1);
  });

  it('every pair whose trial is older than trialRefreshSeconds (6 h by default) is tried again; younger ones not', async () => {
    const old = await fleet(['a', 'b'], 7 * HOUR);
    const t = new ScriptedTrials(old.store, old.nodes, {});
    expect((await t.pass(true)).map((r) => `${r.sourceNodeId}->${r.destinationNodeId}`)).toEqual(['a->b', 'b->a']);
    const young = await fleet(['a', 'b'], 5 * HOUR);
    expect(await new ScriptedTrials(young.store, young.nodes, {}).pass(true)).toEqual([]);
  });

  it('a node registered (or re-registered) gets its pairs tried at once, fresh trials or not', async () => {
    const { nodes, store } = await fleet(['a', 'b'], HOUR);
    const events = new NodeEvents();
    const t = new ScriptedTrials(store, nodes, {}, new SharedLease(), events);
    t.onApplicationBootstrap();
    try {
      await t.pass();
      expect(t.ran).toEqual([]);
      const c = ready('c');
      await nodes.save(c);
      events.registered(c);
      await t.pass();
      expect(t.ran.sort()).toEqual(['a->c', 'b->c', 'c->a', 'c->b']);
      t.ran.length = 0;
      events.registered((await nodes.get('b'))!);
      await t.pass();
      expect(t.ran.sort()).toEqual(['a->b', 'b->a', 'b->c', 'c->b']);
    } finally {
      t.onApplicationShutdown();
    }
  });

  it('two replicas sharing the lease: one runs the trials, the other none, and after it nothing runs twice', async () => {
    const { nodes, store } = await fleet(['a', 'b', 'c'], HOUR);
    const lease = new SharedLease();
    const [r1, r2] = [new ScriptedTrials(store, nodes, {}, lease), new ScriptedTrials(store, nodes, {}, lease)];
    await Promise.all([r1.pass(), r2.pass()]); // both learn the fleet
    for (const r of [r1, r2]) r.nodeRegistered('c');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    r1.during = () => gate;
    const first = r1.pass();
    expect(await r2.pass()).toEqual([]); // r1 holds the lease
    release();
    await first;
    expect(await r2.pass()).toEqual([]); // r1 stored them since they became due
    expect(r1.ran.sort()).toEqual(['a->c', 'b->c', 'c->a', 'c->b']);
    expect(r2.ran).toEqual([]);
  });

  it('a probe change (here a new CRIU) makes the stored trials of that node stale', async () => {
    const { nodes, store } = await fleet(['b', 'd'], HOUR);
    const t = new ScriptedTrials(store, nodes, {});
    expect(await t.pass()).toEqual([]);
    const d = (await nodes.get('d'))!;
    await nodes.save({ ...d, probe: { ...d.probe!, criuVersion: '9.9.9' } });
    await t.pass();
    expect(await t.pass()).toEqual([]);
    expect(t.ran).toEqual(['d->b', 'b->d']);
  });
});
