import type { NodeRecord, PostCopyTrialRecord } from '@spotlift/domain';
import { SystemClock, type NodeOps } from '@spotlift/engine';
import { InMemoryPostCopyTrials, InMemoryRecords } from '@spotlift/store';
import { aNode } from '@spotlift/testing';
import type { NodeShell } from '@spotlift/transport';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { PairTrials } from './pair-trials.js';

/** PairTrials whose trial is scripted per destination: `ok`, `failed`, or `hang` (never answers). */
class ScriptedTrials extends PairTrials {
  readonly ran: string[] = [];
  constructor(
    store: InMemoryPostCopyTrials,
    nodes: InMemoryRecords<NodeRecord>,
    private readonly script: Record<string, 'ok' | 'failed' | 'hang'>,
  ) {
    const config = { evacuation: EvacuationSettings.parse({}), engine: {}, live: {} } as unknown as AppConfig;
    super({} as NodeOps, {} as NodeShell, store, new SystemClock(), config, nodes);
  }
  override run(source: NodeRecord, destination: NodeRecord): Promise<PostCopyTrialRecord> {
    this.ran.push(`${source.id}->${destination.id}`);
    const how = this.script[destination.id] ?? 'ok';
    if (how === 'hang') return new Promise(() => undefined);
    return Promise.resolve({
      sourceNodeId: source.id,
      destinationNodeId: destination.id,
      ok: how === 'ok',
      at: new Date().toISOString(),
      durationMs: 800,
    });
  }
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

  it('the scheduled pass tries one missing pair between ready nodes, never one under notice or draining', async () => {
    const nodes = new InMemoryRecords<NodeRecord>();
    for (const n of [ready('a', { state: 'terminating' }), ready('b'), ready('c', { state: 'draining' }), ready('d')])
      await nodes.save(n);
    const store = new InMemoryPostCopyTrials();
    const t = new ScriptedTrials(store, nodes, {});
    await t.refreshOne();
    expect(t.ran).toEqual(['b->d']);
  });

  it('a probe change (here a new CRIU) makes the stored trials of that node stale', async () => {
    const nodes = new InMemoryRecords<NodeRecord>();
    for (const n of [ready('b'), ready('d')]) await nodes.save(n);
    const store = new InMemoryPostCopyTrials();
    for (const [s, d] of [
      ['b', 'd'],
      ['d', 'b'],
    ])
      await store.put({ sourceNodeId: s!, destinationNodeId: d!, ok: false, at: '', durationMs: 1 }, 60_000);
    const t = new ScriptedTrials(store, nodes, {});
    expect(await t.refreshOne()).toBeUndefined();
    const d = (await nodes.get('d'))!;
    await nodes.save({ ...d, probe: { ...d.probe!, criuVersion: '9.9.9' } });
    await t.refreshOne();
    await t.refreshOne();
    expect(await t.refreshOne()).toBeUndefined();
    expect(t.ran).toEqual(['b->d', 'd->b']);
  });
});
