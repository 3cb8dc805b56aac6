/**
 * Evacuations that spend the least downtime the deadline allows (issue 16), on the lab with real CRIU:
 * - slack and no post-copy trial stored for the pairs: the trials run first, then the plan chooses post-copy
 *   and moves one workload at a time;
 * - no slack: no trial, stop-and-copy;
 * - the record's executed plan matches what ran, recomputed here from the migration records' own times.
 * Manual evacuations (`POST /evacuations`): the notice path itself is test/evacuation.e2e-spec.ts's.
 */
import type { EvacuationRecord, MigrationRecord } from '@spotlift/domain';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
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

async function evacuate(node: string, secondsUntil: number): Promise<EvacuationRecord> {
  const res = await orch.api<{ evacuation: EvacuationRecord }>('POST', '/evacuations', {
    node,
    secondsUntil,
    reason: 'issue 16 e2e',
  });
  expect(res.status).toBe(202);
  return until(
    'the evacuation to finish',
    async () => {
      const e = (await orch.api<EvacuationRecord>('GET', `/evacuations/${res.body.evacuation.id}`)).body;
      return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
    },
    (secondsUntil + 120) * 1000,
    250,
  );
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
    // Both pairs are tried; a real trial can fail on a loaded machine (the plan then uses the pair that passed).
    expect(trialEvent?.msg).toMatch(/node-a->node-b (ok|failed)/);
    expect(trialEvent?.msg).toMatch(/node-a->node-c (ok|failed)/);
    expect(trialEvent?.msg).toMatch(/node-a->node-[bc] ok/);
    expect(new Date(trialEvent!.at).getTime()).toBeLessThanOrEqual(new Date(done.plannedAt!).getTime());
    expect(done.jobs.map((j) => j.strategy)).toEqual(['post-copy', 'post-copy']);
    for (const j of done.jobs) expect(j.explanation).toMatch(/alone: one at a time.*Strategy post-copy/);
    const ms = await migrationsOf(done);
    expect(ms.map((m) => m.strategy)).toEqual(['post-copy', 'post-copy']);
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
});
