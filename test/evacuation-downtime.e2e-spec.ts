/**
 * Evacuations that spend the least downtime the deadline allows (issue 16), on the lab with real CRIU:
 * - slack and no post-copy trial stored for the pairs: the trials run first, then the plan chooses post-copy
 *   and moves one workload at a time;
 * - no slack: no trial, stop-and-copy;
 * - the record's executed plan matches what ran, recomputed here from the migration records' own times;
 * - trials ahead of notices ON (an orchestrator of its own, the product's default): booting runs every pair's
 *   trial, a re-registration re-runs the node's pairs but none with a node under notice, and a notice with
 *   slack then evacuates without a trial first, the record saying which stored trials it used.
 * Manual evacuations (`POST /evacuations`): the notice path itself is test/evacuation.e2e-spec.ts's.
 */
import { randomBytes } from 'node:crypto';
import type { EvacuationRecord, MigrationRecord, PostCopyTrialRecord } from '@spotlift/domain';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import { startOrchestrator, type Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6465;

let env: E2eEnv;
let orch: Orchestrator;

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    config: (l) => ({ ...l, evacuation: { safetyMarginSeconds: 2, trialBudgetSeconds: 30 } }),
  });
  orch = env.orch;
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 120_000);

/** Waits for an evacuation's end state on `o`. */
function finished(o: Orchestrator, id: string, withinMs: number): Promise<EvacuationRecord> {
  return until(
    'the evacuation to finish',
    async () => {
      const e = (await o.api<EvacuationRecord>('GET', `/evacuations/${id}`)).body;
      return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
    },
    withinMs,
    250,
  );
}

async function evacuate(node: string, secondsUntil: number): Promise<EvacuationRecord> {
  const res = await orch.api<{ evacuation: EvacuationRecord }>('POST', '/evacuations', {
    node,
    secondsUntil,
    reason: 'issue 16 e2e',
  });
  expect(res.status).toBe(202);
  return finished(orch, res.body.evacuation.id, (secondsUntil + 120) * 1000);
}

/** Most migrations running at one instant, from the migration records (created -> resumed, or last update). */
function peakFromMigrations(ms: readonly MigrationRecord[]): number {
  const spans = ms.map((m) => [Date.parse(m.createdAt), Date.parse(m.resumedAt ?? m.updatedAt)] as const);
  return Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));
}

async function migrationsOf(e: EvacuationRecord): Promise<MigrationRecord[]> {
  return Promise.all(
    e.jobs
      .filter((j) => j.migrationId !== undefined)
      .map(async (j) => (await orch.api<MigrationRecord>('GET', `/migrations/${j.migrationId}`)).body),
  );
}

describe('evacuations choose the least downtime the deadline allows (real CRIU)', () => {
  it('slack, trials missing: the trials run first, post-copy is chosen, one at a time; the executed plan matches', async () => {
    for (const name of ['dt-a1', 'dt-a2']) await env.launch(name, 'node-a', { memMiB: 64 });
    const done = await evacuate('node-a', 120);
    expect(done.state).toBe('completed');
    const trialEvent = done.events.find((e) => /ran the missing post-copy trials first/.test(e.msg));
    // Both pairs are tried; a real trial can fail on a loaded machine: the plan then moves to the pair that passed
    // (it did not before: CI of stop 19 saw the best-scored pair fail its trial and both moves go stop-and-copy).
    expect(trialEvent?.msg).toMatch(/node-a->node-b (ok|failed)/);
    expect(trialEvent?.msg).toMatch(/node-a->node-c (ok|failed)/);
    expect(trialEvent?.msg).toMatch(/node-a->node-[bc] ok/);
    expect(new Date(trialEvent!.at).getTime()).toBeLessThanOrEqual(new Date(done.plannedAt!).getTime());
    expect(done.jobs.map((j) => j.strategy)).toEqual(['post-copy', 'post-copy']);
    for (const j of done.jobs) expect(j.explanation).toMatch(/alone: one at a time.*Strategy post-copy/);
    const ms = await migrationsOf(done);
    expect(ms.map((m) => m.strategy)).toEqual(['post-copy', 'post-copy']);
    for (const m of ms) expect(trialEvent!.msg).toMatch(new RegExp(`node-a->${m.destinationNodeId} ok`));
    // What the record says ran is what the migrations' own times say.
    expect(done.executed!.peakConcurrency).toBe(peakFromMigrations(ms));
    expect(done.executed!.peakConcurrency).toBe(1);
    expect(done.executed!.summary).toMatch(/up to 1 at once \(2 post-copy\)/);
    for (const m of ms) {
      const line = done.executed!.jobs.find((j) => j.migrationId === m.id)!;
      expect(line).toMatchObject({ strategy: 'post-copy', downtimeMs: m.downtimeMs, concurrentWith: [] });
      expect(line.timeToAllPagesMs).toBe(m.postCopy?.pagesAfterResumeMs);
      expect(line.predictedDowntimeMs).toBeGreaterThan(0);
    }
    expect(done.executed!.totalDowntimeMs).toBe(ms.reduce((s, m) => s + (m.downtimeMs ?? 0), 0));
  });

  it('no slack: no trial, stop-and-copy', async () => {
    // node-b -> * has no stored trial; 12 s less the 2 s margin leaves less slack than a trial's 30 s budget.
    for (const name of ['dt-b1', 'dt-b2']) await env.launch(name, 'node-b', { memMiB: 64 });
    const done = await evacuate('node-b', 12);
    expect(done.events.some((e) => /ran the missing post-copy trials/.test(e.msg))).toBe(false);
    expect(done.events.find((e) => /no post-copy trial for/.test(e.msg))?.msg).toMatch(/no slack/);
    const ms = await migrationsOf(done);
    // Everything on node-b moves (the first test's workloads too, when it ran first).
    expect(ms.length).toBeGreaterThanOrEqual(2);
    expect(new Set(ms.map((m) => m.strategy))).toEqual(new Set(['stop-and-copy']));
    expect(done.executed!.peakConcurrency).toBe(peakFromMigrations(ms));
  });

  it('trials ahead of notices: pairs tried from registration on, never with a node under notice; a notice with slack needs none', async () => {
    const ahead = await startOrchestrator({
      nodesConfig: { ...env.lab, evacuation: { safetyMarginSeconds: 2, trialRefreshSeconds: 3_600 } },
      redisPort: REDIS_PORT,
      prefix: `ta${randomBytes(3).toString('hex')}`,
    });
    const bootedAt = Date.now();
    const trials = async (node: string) =>
      (await ahead.api<PostCopyTrialRecord[]>('GET', `/nodes/${node}/trials`)).body;
    const pair = (ts: PostCopyTrialRecord[], s: string, d: string) =>
      ts.find((t) => t.sourceNodeId === s && t.destinationNodeId === d);
    const startedMs = (t: PostCopyTrialRecord) => Date.parse(t.at) - t.durationMs;
    try {
      // The pass the nodes' registration started runs node-a->node-b first (pairs in registration order).
      const toB = await until(
        'the trial node-a->node-b',
        async () => pair(await trials('node-a'), 'node-a', 'node-b'),
        90_000,
        250,
      );
      expect(startedMs(toB)).toBeGreaterThanOrEqual(bootedAt - 1_000);
      // node-c under notice now: the pass goes on (node-b->node-a), but no trial with node-c starts from here.
      const cNotice = await ahead.api('POST', '/notices', { nodeId: 'node-c', kind: 'termination', secondsUntil: 600 });
      expect(cNotice.status).toBe(202);
      const cNoticeAt = Date.now();
      await until(
        'the trial node-b->node-a',
        async () => pair(await trials('node-b'), 'node-b', 'node-a'),
        90_000,
        250,
      );

      // A notice with slack: the stored trial is used, none runs first, the record says which and when.
      const pid = await env.start('dt-ahead', 'node-a', { memMiB: 64 });
      expect((await ahead.api('POST', '/workloads', { name: 'dt-ahead', node: 'node-a', pid })).status).toBe(201);
      const noticeAt = Date.now();
      const notice = await ahead.api<{ evacuation: EvacuationRecord }>('POST', '/notices', {
        nodeId: 'node-a',
        kind: 'termination',
        secondsUntil: 120,
      });
      expect(notice.status).toBe(202);
      const done = await finished(ahead, notice.body.evacuation.id, 120_000);
      expect(done.events.some((e) => /ran the missing post-copy trials/.test(e.msg))).toBe(false);
      const why = done.events.find((e) => /no post-copy trial run first/.test(e.msg))?.msg;
      expect(why).toContain(`node-a->node-b ${toB.ok ? 'ok' : 'failed'} at ${toB.at}`);
      expect(Date.parse(toB.at)).toBeLessThan(noticeAt);
      // node-c is under notice: never a destination. Post-copy where the stored trial passed (a real trial can
      // fail on a loaded machine: then stop-and-copy, and the record says the trial failed).
      expect(done.jobs.map((j) => [j.destinationNodeId, j.strategy])).toEqual([
        ['node-b', toB.ok ? 'post-copy' : 'stop-and-copy'],
      ]);
      expect(done.state).toBe('completed');
      // By now the pass has reached node-c's pairs: none started once node-c was under notice.
      const withC = await trials('node-c');
      for (const t of withC) expect(startedMs(t)).toBeLessThan(cNoticeAt);
      console.log(
        `trials ahead: node-a->node-b ${toB.ok ? 'ok' : 'failed'} in ${toB.durationMs} ms, ${((noticeAt - Date.parse(toB.at)) / 1000).toFixed(1)} s before the notice; ` +
          `trials with node-c: ${withC.length} (all started before its notice); evacuation ${done.jobs[0]?.strategy}, downtime ${done.jobs[0]?.downtimeMs} ms`,
      );
    } finally {
      await ahead.close();
    }
  }, 240_000);
});
