/**
 * The rebalance service with in-memory records, a fixed clock and a MigrationsService that records what it
 * was asked: plans stored and listed, apply once, the re-check of every move (stale, paused by a notice,
 * budgets), cancel, releasable nodes, one evaluation per tick whatever the replicas, and the config's errors.
 */
import { SchedulerRegistry } from '@nestjs/schedule';
import {
  ConflictError,
  type EvacuationRecord,
  type MigrationRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import { Clock, type CpuSample, type NodeOps } from '@spotlift/engine';
import { KubeNodeApi, type KubeCordonResult } from '@spotlift/notices';
import type { MoveStart } from '@spotlift/placement';
import {
  InMemoryEvacuationRecords,
  InMemoryPairLinks,
  InMemoryPostCopyTrials,
  InMemoryRecords,
  type PairLinks,
  type PostCopyTrials,
} from '@spotlift/store';
import { aMigration, aNode, aWorkload } from '@spotlift/testing';
import { ConfigFile, type AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { MigrationMetrics } from '../metrics/migration-metrics.js';
import type { MigrationRequest, MigrationsService } from '../migrations/migrations.service.js';
import { EvaluateBody, RebalanceSettings } from './rebalance-config.js';
import { RebalanceMetrics } from './rebalance-metrics.js';
import { RebalanceStore, type RebalancePlanRecord } from './rebalance-store.js';
import { buildRebalanceInput } from './rebalance-input.js';
import { RebalanceService } from './rebalance.service.js';
import { ReleasableMarks } from './releasable-marks.js';

const GIB = 2 ** 30;
const T0 = new Date('2026-03-04T12:00:00Z');

class FixedClock extends Clock {
  constructor(public t: Date) {
    super();
  }
  now(): Date {
    return this.t;
  }
}

/** The store's semantics (NX claims, TTL-free leases a test can drop) in memory. */
class MemoryStore extends RebalanceStore {
  plans = new Map<string, string>();
  order: string[] = [];
  claims = new Set<string>();
  leases = new Set<string>();
  cancels = new Set<string>();
  moves: MoveStart[] = [];
  save(p: RebalancePlanRecord) {
    this.plans.set(p.id, JSON.stringify(p));
    return Promise.resolve();
  }
  async add(p: RebalancePlanRecord, keep: number) {
    await this.save(p);
    this.order.unshift(p.id);
    for (const id of this.order.splice(keep)) this.plans.delete(id);
  }
  get(id: string) {
    const raw = this.plans.get(id);
    return Promise.resolve(raw ? (JSON.parse(raw) as RebalancePlanRecord) : undefined);
  }
  async list() {
    return (await Promise.all(this.order.map((id) => this.get(id)))).filter((p) => p !== undefined);
  }
  private nx(key: string) {
    if (this.claims.has(key)) return Promise.resolve(false);
    this.claims.add(key);
    return Promise.resolve(true);
  }
  claimApply(id: string) {
    return this.nx(`apply:${id}`);
  }
  claimTick(slot: number) {
    return this.nx(`tick:${slot}`);
  }
  holdLease(id: string) {
    return Promise.resolve(void this.leases.add(id));
  }
  leaseHeld(id: string) {
    return Promise.resolve(this.leases.has(id));
  }
  requestCancel(id: string) {
    return Promise.resolve(void this.cancels.add(id));
  }
  cancelRequested(id: string) {
    return Promise.resolve(this.cancels.has(id));
  }
  recordStart(s: MoveStart) {
    return Promise.resolve(void this.moves.push({ workloadId: s.workloadId, at: s.at }));
  }
  history() {
    return Promise.resolve([...this.moves]);
  }
}

const node = (id: string, over: Partial<NodeRecord> = {}) =>
  aNode(id, {
    spotPool: `pool-${id}`,
    probe: {
      probedAt: T0.toISOString(),
      criuOk: true,
      features: {},
      memTotalBytes: 16 * GIB,
      memAvailableBytes: 12 * GIB,
    },
    ...over,
  });
const wl = (id: string, nodeId: string, over: Partial<WorkloadRecord> = {}) =>
  aWorkload({ id, name: id, nodeId, rssBytes: GIB / 4, ...over });

/** Records each annotation as `node key=value` (or `node key-` for a removal); other calls are not expected. */
class AnnotationsKubeApi extends KubeNodeApi {
  readonly annotations: string[] = [];
  listNodes(): never {
    throw new Error('not listed here');
  }
  watchNodes(): never {
    throw new Error('not watched here');
  }
  cordonNode(): Promise<KubeCordonResult> {
    return Promise.reject(new Error('not cordoned here'));
  }
  annotateNode(name: string, key: string, value: string | null): Promise<void> {
    this.annotations.push(value === null ? `${name} ${key}-` : `${name} ${key}=${value}`);
    return Promise.resolve();
  }
}

function world(
  settings: Record<string, unknown> = {},
  store = new MemoryStore(),
  shared?: ReturnType<typeof records>,
  cpu: Record<string, CpuSample> = {},
  links?: PairLinks,
  trials?: PostCopyTrials,
) {
  const r = shared ?? records();
  const kube = new AnnotationsKubeApi();
  const clock = new FixedClock(T0);
  const started: MigrationRequest[] = [];
  const migrations = {
    start: async (req: MigrationRequest) => {
      const w = await r.workloads.get(req.workloadId);
      if (w?.state !== 'running') throw new ConflictError(`workload '${req.workloadId}' is busy`);
      started.push(req);
      const m = aMigration({
        id: `mig-${started.length}`,
        workloadId: req.workloadId,
        sourceNodeId: w.nodeId,
        destinationNodeId: req.destinationNodeId!,
      });
      await r.migrations.save(m);
      return m;
    },
  } as unknown as MigrationsService;
  const ops = {
    memAvailableBytes: () => Promise.resolve(undefined),
    cpuSample: (n: NodeRecord) => Promise.resolve(cpu[n.id]),
  } as unknown as NodeOps;
  const config = {
    runsWorker: true,
    rebalance: RebalanceSettings.parse({ mode: 'plan', policies: ['consolidate'], ...settings }),
    evacuation: EvacuationSettings.parse({}),
  } as AppConfig;
  const metrics = new RebalanceMetrics(new MigrationMetrics());
  const service = new RebalanceService(
    store,
    r.nodes,
    r.workloads,
    r.evacuations,
    r.migrations,
    migrations,
    ops,
    config,
    clock,
    metrics,
    new SchedulerRegistry(),
    new ReleasableMarks(r.nodes, clock, kube),
    links,
    trials,
  );
  service.driveInBackground = false;
  return { service, store, clock, started, metrics, kube, ...r };
}

/** node-a and node-b carry two workloads each, node-c one: consolidation empties node-c. */
function records() {
  const nodes = new InMemoryRecords<NodeRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const evacuations = new InMemoryEvacuationRecords();
  for (const id of ['node-a', 'node-b', 'node-c']) void nodes.save(node(id));
  for (const [id, n] of [
    ['a1', 'node-a'],
    ['a2', 'node-a'],
    ['b1', 'node-b'],
    ['b2', 'node-b'],
    ['c1', 'node-c'],
  ] as const)
    void workloads.save(wl(id, n));
  return { nodes, workloads, migrations, evacuations };
}

async function finish(w: ReturnType<typeof world>, migrationId: string, state: MigrationRecord['state'] = 'completed') {
  const m = (await w.migrations.get(migrationId))!;
  await w.migrations.save({ ...m, state, downtimeMs: 420 });
  if (state === 'completed') await w.workloads.update(m.workloadId, (x) => void (x.nodeId = m.destinationNodeId));
}

const metric = async (w: ReturnType<typeof world>, name: string) =>
  (await w.metrics.moves.get()).values.find((v) => Object.entries(v.labels).join() === name)?.value ?? 0;

function evacuation(nodeId: string): EvacuationRecord {
  return {
    id: `evac-${nodeId}`,
    nodeId,
    notice: {
      source: 'aws',
      kind: 'termination',
      deadline: new Date(T0.getTime() + 120_000).toISOString(),
      deadlineEstimated: false,
      receivedAt: T0.toISOString(),
      reason: 'test',
      dedupKey: 'k',
      raw: {},
    },
    policy: 'evacuate',
    state: 'running',
    deadline: new Date(T0.getTime() + 120_000).toISOString(),
    replans: 0,
    jobs: [],
    predictedMisses: [],
    events: [],
    createdAt: T0.toISOString(),
    updatedAt: T0.toISOString(),
  };
}

describe('RebalanceService', () => {
  it('evaluates into a stored, listed plan; off refuses', async () => {
    const w = world();
    const plan = await w.service.evaluate('request');
    expect(plan.state).toBe('proposed');
    expect(plan.moves.map((m) => [m.workloadId, m.fromNodeId, m.state])).toEqual([['c1', 'node-c', 'proposed']]);
    expect(plan.releasable).toEqual(['node-c']);
    expect((await w.service.list()).map((p) => p.id)).toEqual([plan.id]);
    expect((await w.service.get(plan.id)).summary).toContain('1 move(s) proposed');
    await expect(world({ mode: 'off' }).service.evaluate('request')).rejects.toThrow(ConflictError);
  });

  it('applies once: the move starts through MigrationsService.start, a second apply is a 409, the emptied node is marked releasable', async () => {
    const w = world();
    const plan = await w.service.evaluate('request');
    await w.service.apply(plan.id, 'alice');
    await expect(w.service.apply(plan.id, 'bob')).rejects.toThrow(/only a proposed plan can be applied/);
    expect(await w.service.step(plan.id)).toBe(false);
    expect(w.started).toEqual([
      expect.objectContaining({ workloadId: 'c1', destinationNodeId: plan.moves[0]!.toNodeId }),
    ]);
    expect(await w.service.step(plan.id)).toBe(false); // still running: nothing started twice
    expect(w.started).toHaveLength(1);
    await finish(w, 'mig-1');
    expect(await w.service.step(plan.id)).toBe(true);
    const done = await w.service.get(plan.id);
    expect(done.state).toBe('applied');
    expect(done.moves[0]).toMatchObject({ state: 'completed', downtimeMs: 420 });
    expect(done.released).toEqual(['node-c']);
    expect((await w.nodes.get('node-c'))!.releasable).toEqual({ at: T0.toISOString(), planId: plan.id });
    expect(w.kube.annotations).toEqual(['node-c spotlift.io/releasable=true']);
    expect((await w.metrics.released.get()).values[0]!.value).toBe(1);
    expect(await metric(w, 'policy,consolidate,outcome,completed')).toBe(1);
  });

  it('two callers racing to apply: one wins, the other gets a 409 (the claim, not the state read)', async () => {
    const w = world();
    const plan = await w.service.evaluate('request');
    const results = await Promise.allSettled([w.service.apply(plan.id, 'a'), w.service.apply(plan.id, 'b')]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  it('a stale move (the workload moved since the plan) is skipped with the reason, nothing started', async () => {
    const w = world();
    const plan = await w.service.evaluate('request');
    await w.workloads.update('c1', (x) => void (x.nodeId = 'node-b'));
    await w.service.apply(plan.id, 'alice');
    expect(await w.service.step(plan.id)).toBe(true);
    const done = await w.service.get(plan.id);
    expect(done.moves[0]).toMatchObject({ state: 'skipped' });
    expect(done.moves[0]!.detail).toContain('is on node-b now, not node-c');
    expect(w.started).toEqual([]);
    expect(done.released).toEqual([]);
    expect((await w.nodes.get('node-c'))!.releasable).toBeUndefined();
  });

  it('a notice during apply cancels the moves that had not started; the started one runs on', async () => {
    const r = records();
    // node-c's two workloads are the smallest: emptying it disrupts least.
    await r.workloads.save(wl('c2', 'node-c', { rssBytes: GIB / 16 }));
    await r.workloads.update('c1', (x) => void (x.rssBytes = GIB / 16));
    const w = world({}, new MemoryStore(), r);
    const plan = await w.service.evaluate('request');
    expect(plan.moves.map((m) => m.fromNodeId)).toEqual(['node-c', 'node-c']);
    await w.service.apply(plan.id, 'alice');
    await w.service.step(plan.id); // one at a time (maxConcurrentMoves 1)
    expect(w.started).toHaveLength(1);
    await w.evacuations.save(evacuation('node-c'));
    await w.service.step(plan.id);
    const now = await w.service.get(plan.id);
    expect(now.moves.map((m) => m.state)).toEqual(['started', 'cancelled']);
    expect(now.moves[1]!.detail).toContain('paused: node node-c is under notice (termination');
    expect(w.started).toHaveLength(1);
    await finish(w, 'mig-1');
    expect(await w.service.step(plan.id)).toBe(true);
    expect((await w.service.get(plan.id)).released).toEqual([]);
  });

  it('an empty releasable node is no target when planning', async () => {
    const w = world({ policies: ['consolidate'] });
    await w.nodes.save(node('node-d', { releasable: { at: T0.toISOString(), planId: 'rb-x' } }));
    const plan = await w.service.evaluate('request');
    expect(plan.moves.length).toBeGreaterThan(0);
    expect(plan.moves.some((m) => m.toNodeId === 'node-d')).toBe(false);
    expect((await w.nodes.get('node-d'))!.releasable).toBeDefined();
  });

  it('a releasable node that runs a workload again is releasable no more: mark and annotation cleared', async () => {
    const w = world();
    await w.nodes.update('node-c', (n) => void (n.releasable = { at: T0.toISOString(), planId: 'rb-x' }));
    await w.workloads.save(wl('c9', 'node-c', { state: 'running' }));
    await w.service.evaluate('request');
    expect((await w.nodes.get('node-c'))!.releasable).toBeUndefined();
    expect(w.kube.annotations).toEqual(['node-c spotlift.io/releasable-']);
  });

  it('spread reads CPU from the nodes: the busiest workload of a CPU-bound node moves', async () => {
    const sample = (busy: number, pids: Record<number, number> = {}): CpuSample => ({
      cpuCount: 4,
      busyCpus: busy,
      pids,
    });
    const w = world({ policies: ['spread'] }, new MemoryStore(), undefined, {
      'node-a': sample(3.9, { 101: 3, 102: 0.5 }),
      'node-b': sample(3.5),
      'node-c': sample(0.2),
    });
    await w.workloads.update('a1', (x) => void (x.pid = 101));
    await w.workloads.update('a2', (x) => void (x.pid = 102));
    const plan = await w.service.evaluate('request');
    expect(plan.moves.map((m) => `${m.workloadId}:${m.fromNodeId}>${m.toNodeId}`)).toEqual(['a1:node-a>node-c']);
    expect(plan.moves[0]!.reason).toContain('CPU-bound (3.9 of 4 CPUs busy)');
  });

  it('a pair migrations measured slow (PairLinks, tls) steers the move to the other node', async () => {
    const plain = await world().service.evaluate('request');
    expect(plain.moves.map((m) => `${m.workloadId}>${m.toNodeId}`)).toEqual(['c1>node-a']);
    const links = new InMemoryPairLinks();
    const at = T0.toISOString();
    await links.record({
      sourceNodeId: 'node-c',
      destinationNodeId: 'node-a',
      transport: 'tls',
      bytesPerSec: 2 ** 24,
      at,
    });
    // Measured over another transport, or the other way: not what this move would get.
    await links.record({
      sourceNodeId: 'node-c',
      destinationNodeId: 'node-b',
      transport: 'tcp',
      bytesPerSec: 2 ** 20,
      at,
    });
    await links.record({
      sourceNodeId: 'node-b',
      destinationNodeId: 'node-c',
      transport: 'tls',
      bytesPerSec: 2 ** 20,
      at,
    });
    const plan = await world({}, undefined, undefined, {}, links).service.evaluate('request');
    expect(plan.moves.map((m) => `${m.workloadId}>${m.toNodeId}`)).toEqual(['c1>node-b']);
  });

  /** Only node-c's workloads may move: the plan empties node-c whatever its moves cost. */
  const onlyC = async (r: ReturnType<typeof records>) => {
    for (const id of ['a1', 'a2', 'b1', 'b2']) await r.workloads.update(id, (x) => void (x.movable = false));
  };

  it("the evacuation planner's post-copy trials reach the plan: post-copy predicted only on a pair that passed", async () => {
    const r = records();
    await onlyC(r);
    // 4 GiB dirtied at 2 GiB/s: no pre-copy converges; stop-and-copy freezes for seconds, post-copy does not.
    await r.workloads.update('c1', (x) => {
      x.rssBytes = 4 * GIB;
      x.dirtyRateBytesPerSec = 2 * GIB;
    });
    const plain = await world({}, new MemoryStore(), r).service.evaluate('request');
    expect(plain.moves.map((m) => `${m.workloadId}>${m.toNodeId}`)).toEqual(['c1>node-a']);
    expect(plain.moves[0]!.strategy).not.toBe('post-copy');
    const trials = new InMemoryPostCopyTrials(() => T0.getTime());
    const trial = (sourceNodeId: string, destinationNodeId: string, ok: boolean) =>
      trials.put({ sourceNodeId, destinationNodeId, ok, at: T0.toISOString(), durationMs: 900 }, 3_600_000);
    // Passed the other way only, or failed on this pair: still no post-copy.
    await trial('node-a', 'node-c', true);
    await trial('node-c', 'node-a', false);
    const failed = await world({}, new MemoryStore(), r, {}, undefined, trials).service.evaluate('request');
    expect(failed.moves[0]!.strategy).not.toBe('post-copy');
    await trial('node-c', 'node-a', true);
    const tried = await world({}, new MemoryStore(), r, {}, undefined, trials).service.evaluate('request');
    expect(tried.moves.map((m) => `${m.workloadId}>${m.toNodeId}:${m.strategy}`)).toEqual(['c1>node-a:post-copy']);
    expect(tried.moves[0]!.predictedDowntimeMs).toBeLessThan(plain.moves[0]!.predictedDowntimeMs);
  });

  it("moves leaving one node at once stop at what its measured outbound rate carries, below the budget's", async () => {
    const r = records();
    await onlyC(r);
    await r.workloads.save(wl('c2', 'node-c', { rssBytes: GIB / 16 }));
    await r.workloads.update('c1', (x) => void (x.rssBytes = GIB / 16));
    const links = new InMemoryPairLinks();
    const MiB = 2 ** 20;
    const tls = (destinationNodeId: string, mibps: number, fromS: number, toS: number) =>
      links.record({
        sourceNodeId: 'node-c',
        destinationNodeId,
        transport: 'tls',
        bytesPerSec: mibps * MiB,
        at: new Date(T0.getTime() + toS * 1000).toISOString(),
        startedAt: new Date(T0.getTime() + fromS * 1000).toISOString(),
      });
    // Alone, a move from node-c got 100 MiB/s; two at once 50 each: node-c's link carries one move's worth.
    await tls('node-a', 100, -600, -590);
    await tls('node-a', 50, -20, 0);
    await tls('node-b', 50, -20, 0);
    expect(await links.outbound('node-c', 'tls')).toMatchObject({ bytesPerSec: 100 * MiB, concurrent: 2 });
    const budgets = { budgets: { maxConcurrentMoves: 2 } };
    const w = world(budgets, new MemoryStore(), r, {}, links);
    const plan = await w.service.evaluate('request');
    expect(plan.moves.map((m) => m.fromNodeId)).toEqual(['node-c', 'node-c']);
    expect(plan.maxMovesFrom).toEqual({ 'node-c': 1 });
    await w.service.apply(plan.id, 'alice');
    await w.service.step(plan.id);
    expect(w.started).toHaveLength(1);
    await finish(w, 'mig-1');
    await w.service.step(plan.id);
    expect(w.started).toHaveLength(2);
    // Without the measured figure the budget's two start together.
    const r2 = records();
    await onlyC(r2);
    await r2.workloads.save(wl('c2', 'node-c', { rssBytes: GIB / 16 }));
    await r2.workloads.update('c1', (x) => void (x.rssBytes = GIB / 16));
    const free = world(budgets, new MemoryStore(), r2);
    const plan2 = await free.service.evaluate('request');
    expect(plan2.maxMovesFrom).toBeUndefined();
    await free.service.apply(plan2.id, 'alice');
    await free.service.step(plan2.id);
    expect(free.started).toHaveLength(2);
  });

  it('a node under notice is neither source nor target when planning', async () => {
    const w = world();
    await w.evacuations.save(evacuation('node-c'));
    expect((await w.service.evaluate('request')).moves.every((m) => m.fromNodeId !== 'node-c')).toBe(true);
  });

  it('cancel: a proposed plan is cancelled and can no longer be applied; an applying one stops what had not started', async () => {
    const w = world();
    const plan = await w.service.evaluate('request');
    expect((await w.service.cancel(plan.id, 'alice')).state).toBe('cancelled');
    await expect(w.service.apply(plan.id, 'alice')).rejects.toThrow(ConflictError);
    await expect(w.service.cancel(plan.id, 'alice')).rejects.toThrow(/nothing to cancel/);

    const again = await w.service.evaluate('request');
    await w.service.apply(again.id, 'alice');
    await w.service.cancel(again.id, 'alice');
    expect(await w.service.step(again.id)).toBe(true);
    const done = await w.service.get(again.id);
    expect(done.state).toBe('cancelled');
    expect(done.moves[0]).toMatchObject({ state: 'cancelled', detail: 'plan cancelled' });
    expect(w.started).toEqual([]);
  });

  it('budgets at apply: a move over the hourly budget is skipped with the reason', async () => {
    const store = new MemoryStore();
    const w = world({ budgets: { maxMovesPerHour: 1 } }, store);
    const plan = await w.service.evaluate('request');
    store.moves.push({ workloadId: 'other', at: T0.getTime() - 60_000 });
    await w.service.apply(plan.id, 'alice');
    expect(await w.service.step(plan.id)).toBe(true);
    expect((await w.service.get(plan.id)).moves[0]!.detail).toContain('budget: 1 move(s) in the last hour');
    expect(w.started).toEqual([]);
  });

  it('auto mode applies what it plans', async () => {
    const w = world({ mode: 'auto' });
    const plan = await w.service.evaluate('schedule');
    expect(plan.state).toBe('applying');
    await w.service.step(plan.id);
    expect(w.started.map((s) => s.workloadId)).toEqual(['c1']);
  });

  it('two replicas evaluate once per tick', async () => {
    const store = new MemoryStore();
    const r = records();
    const one = world({}, store, r);
    const two = world({}, store, r);
    const results = await Promise.all([one.service.tickOnce(), two.service.tickOnce()]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.list()).toHaveLength(1);
    one.clock.t = two.clock.t = new Date(T0.getTime() + 300_000);
    await Promise.all([one.service.tickOnce(), two.service.tickOnce()]);
    expect(await store.list()).toHaveLength(2);
  });

  it('a plan left applying by a process that stopped is marked interrupted at the next tick', async () => {
    const w = world();
    const plan = await w.service.evaluate('request');
    await w.service.apply(plan.id, 'alice');
    await w.service.onApplicationShutdown();
    w.store.leases.clear();
    await w.service.tickOnce();
    const p = await w.service.get(plan.id);
    expect(p.state).toBe('interrupted');
    expect(p.moves[0]!.detail).toBe('the applying process stopped');
  });
});

describe('rebalance config and bodies', () => {
  const file = (rebalance: unknown) => ConfigFile.safeParse({ ssh: { privateKeyPath: '/k' }, rebalance });

  it.each([
    ['an aws spot node: 120 s', { provider: 'aws' }, 'spot', 120],
    ['a gcp spot node: 30 s', { provider: 'gcp' }, 'spot', 30],
    ['an azure spot node: 30 s', { provider: 'azure', vmName: 'vm-1' }, 'spot', 30],
    ['a spot node without cloud metadata: no notice to plan for', undefined, 'spot', undefined],
    ['an on-demand node: none', { provider: 'aws' }, 'on-demand', undefined],
  ] as const)('the notice a node is packed within: %s', (_name, metadata, lifecycle, expected) => {
    const n = node('node-x', { lifecycle, ...(metadata ? { metadata } : {}) });
    const input = buildRebalanceInput({
      now: T0,
      policies: ['consolidate'],
      nodes: [n],
      workloads: [],
      evacuations: [],
      freshMemAvailable: {},
      history: [],
      settings: RebalanceSettings.parse({}),
      evacuation: EvacuationSettings.parse({}),
    });
    expect(input.nodes[0]!.noticeSeconds).toBe(expected);
    expect(input.evacuation).toMatchObject({ safetyMarginSeconds: 5, maxParallel: 4, reserveFraction: 0.2 });
  });

  it('poolReserve reaches the planner with its defaults; absent, one reserve for every pool', () => {
    const build = (settings: RebalanceSettings) =>
      buildRebalanceInput({
        now: T0,
        policies: ['consolidate'],
        nodes: [],
        workloads: [],
        evacuations: [],
        freshMemAvailable: {},
        history: [],
        settings,
        evacuation: EvacuationSettings.parse({}),
      });
    expect(build(RebalanceSettings.parse({})).poolReserve).toBeUndefined();
    expect(build(RebalanceSettings.parse({ poolReserve: { fullAtPerNodeDay: 0.2 } })).poolReserve).toEqual({
      fullAtPerNodeDay: 0.2,
      floorFraction: 0,
      windowSeconds: 7 * 86_400,
    });
  });

  it('lists every problem at once: unknown policy, nonsensical budget, bad cron, unknown field', () => {
    const r = file({
      policies: ['consolidate', 'shuffle'],
      budgets: { maxConcurrentMoves: 10, maxMovesPerHour: 2, windows: [{ cron: 'at night', durationSeconds: 3600 }] },
      spread: { overfullFraction: 0.5, targetFraction: 0.7 },
      mdoe: 'auto',
    });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(
      expect.arrayContaining(['rebalance.policies.1', 'rebalance.budgets.windows.0.cron', 'rebalance']),
    );
    const messages = r.error!.issues.map((i) => i.message).join(' | ');
    expect(messages).toContain('a policy is one of de-risk, spread, consolidate');
    expect(messages).toContain('not a cron expression');
  });

  it.each([
    [{ budgets: { maxConcurrentMoves: 10, maxMovesPerHour: 2 } }, 'maxConcurrentMoves cannot exceed maxMovesPerHour'],
    [{ spread: { overfullFraction: 0.5, targetFraction: 0.7 } }, 'targetFraction must be below overfullFraction'],
    [{ budgets: { maxMovesPerHour: 0 } }, 'Too small'],
    [{ poolReserve: { fullAtPerNodeDay: 0 } }, 'Too small'],
    [{ poolReserve: { fullAtPerNodeDay: 0.2, floor: 0.1 } }, 'Unrecognized key'],
  ])('refuses %j', (rebalance, message) => {
    const r = file(rebalance);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message).join(' | ')).toContain(message);
  });

  it('defaults: off, every policy, one move at a time', () => {
    const r = file(undefined);
    expect(r.data!.rebalance).toMatchObject({ mode: 'off', budgets: { maxConcurrentMoves: 1, maxMovesPerHour: 12 } });
  });

  it('POST /rebalance/evaluate body: an unknown policy is refused, none means the configured ones', () => {
    expect(EvaluateBody.safeParse({ policies: ['nope'] }).success).toBe(false);
    expect(EvaluateBody.safeParse({ extra: 1 }).success).toBe(false);
    expect(EvaluateBody.parse(undefined)).toEqual({});
  });
});
