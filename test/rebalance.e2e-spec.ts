/**
 * Capacity rebalancing on the lab, real CRIU, two orchestrator replicas on one Redis: a consolidate plan
 * empties node-c by real migrations and marks it releasable; de-risk moves workloads off a node whose pool
 * just got a rebalance recommendation; a termination notice during an apply cancels what had not started and
 * the evacuation moves the rest; both replicas evaluate once per schedule tick together; bad input is answered.
 */
import type { EvacuationRecord, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import { runningCopies } from './support/faults-lab.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6470;
const TICK_MS = 10_000;

interface Plan {
  id: string;
  trigger: string;
  createdAt: string;
  state: string;
  releasable: string[];
  released: string[];
  moves: Array<{
    workloadId: string;
    fromNodeId: string;
    toNodeId: string;
    policy: string;
    state: string;
    detail?: string;
    migrationId?: string;
  }>;
  skipped: Array<{ reason: string }>;
}

let env: E2eEnv;
const ids: Record<string, string> = {};

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    replicas: 1,
    config: (lab) => ({
      ...lab,
      rebalance: {
        mode: 'plan',
        intervalMs: TICK_MS,
        policies: ['consolidate'],
        // The lab's nodes share this machine's memory: fill destinations up to all of it.
        consolidate: { targetFraction: 1 },
        budgets: { maxConcurrentMoves: 1, maxMovesPerHour: 100, minMoveIntervalSeconds: 0 },
      },
    }),
  });
  // node-c carries the least (one small workload): emptying it disrupts least, so consolidation picks it.
  for (const [name, node, memMiB] of [
    ['rb-a1', 'node-a', 16],
    ['rb-a2', 'node-a', 16],
    ['rb-b1', 'node-b', 16],
    ['rb-b2', 'node-b', 16],
    ['rb-c1', 'node-c', 4],
  ] as const)
    ids[name] = (await env.launch(name, node, { memMiB })).workload.id;
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 120_000);

const api = <T>(method: string, path: string, body?: unknown) => env.orch.api<T>(method, path, body);
const workload = async (id: string) => (await api<WorkloadRecord>('GET', `/workloads/${id}`)).body;

async function evaluate(policies: string[]): Promise<Plan> {
  const res = await api<Plan>('POST', '/rebalance/evaluate', { policies });
  expect(res.status).toBe(201);
  return res.body;
}

async function applied(id: string, timeoutMs = 90_000): Promise<Plan> {
  return until(
    `plan ${id} to end`,
    async () => {
      const p = (await api<Plan>('GET', `/rebalance/plans/${id}`)).body;
      return p.state === 'applying' || p.state === 'proposed' ? undefined : p;
    },
    timeoutMs,
    250,
  );
}

describe('capacity rebalancing (lab, real CRIU)', () => {
  it('consolidate empties node-c by a real migration and marks it releasable; applying twice is a 409', async () => {
    const plan = await evaluate(['consolidate']);
    expect(plan.releasable).toEqual(['node-c']);
    expect(plan.moves.map((m) => [m.workloadId, m.fromNodeId])).toEqual([[ids['rb-c1'], 'node-c']]);
    const since = Date.now();
    expect((await api('POST', `/rebalance/plans/${plan.id}/apply`)).status).toBe(202);
    const again = await api<{ message: string }>('POST', `/rebalance/plans/${plan.id}/apply`);
    expect(again.status).toBe(409);
    const done = await applied(plan.id);
    expect(done.moves[0]).toMatchObject({ state: 'completed' });
    expect(done.released).toEqual(['node-c']);
    expect((await api<NodeRecord>('GET', '/nodes/node-c')).body.releasable).toMatchObject({ planId: plan.id });
    expect((await workload(ids['rb-c1']!)).nodeId).toBe(plan.moves[0]!.toNodeId);
    const m = (await api<MigrationRecord>('GET', `/migrations/${done.moves[0]!.migrationId}`)).body;
    expect(m.state).toBe('completed');
    expect(env.collector.isSeqGapFree('rb-c1', since - 2_000)).toBe(true);
    const metrics = await (
      await fetch(`${env.orch.baseUrl}/metrics`, { headers: { authorization: `Bearer ${env.orch.token}` } })
    ).text();
    expect(metrics).toMatch(/spotlift_rebalance_nodes_released_total 1/);
    expect(metrics).toMatch(/spotlift_rebalance_moves_total\{policy="consolidate",outcome="completed"\} 1/);
    // Applying a plan that ended, and a plan that does not exist.
    expect((await api('POST', `/rebalance/plans/${plan.id}/apply`)).status).toBe(409);
    expect((await api('POST', '/rebalance/plans/rb-nope/apply')).status).toBe(404);
  }, 120_000);

  it('de-risk moves the workloads off a node whose pool just got a rebalance recommendation', async () => {
    const notice = await api<{ evacuation: EvacuationRecord }>('POST', '/notices', {
      nodeId: 'node-b',
      kind: 'rebalance',
      secondsUntil: 600,
      reason: 'EC2 rebalance recommendation',
    });
    expect(notice.status).toBe(202);
    expect(notice.body.evacuation.policy).toBe('record');
    const plan = await evaluate(['de-risk']);
    const onB = plan.moves.filter((m) => m.fromNodeId === 'node-b');
    expect(onB.length).toBeGreaterThanOrEqual(2);
    // Never into the released node-c, never into the risky pool.
    expect(plan.moves.every((m) => m.toNodeId === 'node-a')).toBe(true);
    expect((await api('POST', `/rebalance/plans/${plan.id}/apply`)).status).toBe(202);
    const done = await applied(plan.id, 120_000);
    expect(done.moves.map((m) => m.state)).toEqual(done.moves.map(() => 'completed'));
    for (const m of done.moves) expect((await workload(m.workloadId)).nodeId).toBe('node-a');
  }, 150_000);

  it('a termination notice during an apply cancels the moves not started; the evacuation wins', async () => {
    // A recommendation and a maintenance event make node-a the riskiest (2 against node-b's 1): de-risk plans every
    // workload on it towards node-b (never the releasable node-c).
    for (const kind of ['rebalance', 'maintenance'])
      expect((await api('POST', '/notices', { nodeId: 'node-a', kind, secondsUntil: 600, reason: kind })).status).toBe(
        202,
      );
    const plan = await evaluate(['de-risk']);
    expect(plan.moves.filter((m) => m.fromNodeId === 'node-a').length).toBeGreaterThanOrEqual(3);
    expect(plan.moves.every((m) => m.toNodeId === 'node-b')).toBe(true);
    expect((await api('POST', `/rebalance/plans/${plan.id}/apply`)).status).toBe(202);
    const first = await until(
      'the first move to start (or every move to end)',
      async () => {
        const p = (await api<Plan>('GET', `/rebalance/plans/${plan.id}`)).body;
        return p.moves.some((m) => m.state === 'started') || p.state !== 'applying' ? p : undefined;
      },
      30_000,
      100,
    );
    if (first.state !== 'applying') console.log(JSON.stringify(first, null, 1));
    expect(first.state).toBe('applying');
    const noticeAt = Date.now();
    const term = await api<{ evacuation: EvacuationRecord }>('POST', '/notices', {
      nodeId: 'node-a',
      kind: 'termination',
      secondsUntil: 120,
      reason: 'spot interruption',
    });
    expect(term.status).toBe(202);
    const done = await applied(plan.id, 120_000);
    const cancelled = done.moves.filter((m) => m.state === 'cancelled');
    expect(cancelled.length).toBeGreaterThanOrEqual(1);
    expect(cancelled[0]!.detail).toMatch(/paused: node node-a is (terminating|under notice)/);
    // Nothing started after the notice (a pass already under way when it came may finish its start).
    for (const m of done.moves as Array<{ startedAt?: string }>)
      if (m.startedAt) expect(new Date(m.startedAt).getTime()).toBeLessThan(noticeAt + 1_500);
    const evac = await until(
      'the evacuation to finish',
      async () => {
        const e = (await api<EvacuationRecord>('GET', `/evacuations/${term.body.evacuation.id}`)).body;
        return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
      },
      110_000,
      500,
    );
    if (evac.state !== 'completed') console.log(JSON.stringify({ events: evac.events, jobs: evac.jobs }, null, 1));
    expect(evac.state).not.toBe('failed');
    // Whoever moved it (the rebalance move under way or the evacuation), every workload left node-a, once.
    for (const name of Object.keys(ids)) {
      await until(
        `${name} off node-a`,
        async () => ((await workload(ids[name]!)).nodeId !== 'node-a' ? true : undefined),
        30_000,
        250,
      );
      expect(runningCopies(name)).toHaveLength(1);
    }
  }, 240_000);

  it('two replicas evaluate once per schedule tick', async () => {
    const ticks = async () =>
      (await api<Plan[]>('GET', '/rebalance/plans')).body.filter((p) => p.trigger === 'schedule');
    const before = (await ticks()).length;
    await until(
      'two more scheduled plans',
      async () => ((await ticks()).length >= before + 2 ? true : undefined),
      3 * TICK_MS + 5_000,
      500,
    );
    const slots = (await ticks()).map((p) => Math.floor(new Date(p.createdAt).getTime() / TICK_MS));
    expect(new Set(slots).size).toBe(slots.length);
  }, 60_000);

  it('bad input: an unknown policy, an unknown field, cancelling a finished plan', async () => {
    const bad = await api<{ message: string }>('POST', '/rebalance/evaluate', { policies: ['shuffle'] });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('a policy is one of de-risk, spread, consolidate');
    expect((await api('POST', '/rebalance/evaluate', { policy: 'consolidate' })).status).toBe(400);
    const last = (await api<Plan[]>('GET', '/rebalance/plans')).body.find((p) => p.state === 'applied')!;
    expect((await api('POST', `/rebalance/plans/${last.id}/cancel`)).status).toBe(409);
  });

  it('DELETE /nodes/:id/releasable keeps node-c: the mark goes, a second DELETE changes nothing, an unknown node 404', async () => {
    expect((await api<NodeRecord>('GET', '/nodes/node-c')).body.releasable).toBeDefined();
    const kept = await api<NodeRecord>('DELETE', '/nodes/node-c/releasable');
    expect(kept.status).toBe(200);
    expect(kept.body.releasable).toBeUndefined();
    expect((await api<NodeRecord>('GET', '/nodes/node-c')).body.releasable).toBeUndefined();
    expect((await api('DELETE', '/nodes/node-c/releasable')).status).toBe(200);
    expect((await api('DELETE', '/nodes/nope/releasable')).status).toBe(404);
  });
});
