import { exhaustiveBest } from '../test/exhaustive-plan.js';
import type { EvacuationInput, EvacuationPlan, PlannedMigration } from './evacuation-types.js';
import { candidate, mib, sourceNode, workload } from './fixtures.js';
import { planEvacuation } from './plan-evacuation.js';
import type { PostCopyTrial } from './types.js';

/**
 * The lab of issue 16 as the model sees it: one stream ~300 MiB/s (stop-and-copy froze 1.7 s at 512 MiB),
 * 1.5 s of fixed cost per migration, parallel dumps on the source slowing each other by 1.25 per extra one.
 */
const lab = (trial: PostCopyTrial, over: Partial<EvacuationInput> = {}): EvacuationInput => ({
  deadlineSeconds: 110,
  source: sourceNode({ softDirty: false }),
  sourceOutboundBytesPerSec: mib(1000),
  perMigrationMaxBytesPerSec: mib(300),
  perMigrationOverheadSeconds: 1.5,
  parallelDumpSlowdown: 1.25,
  workloads: ['w1', 'w2', 'w3'].map((id) => workload(id, { memoryBytes: mib(512), dirtyRateBytesPerSec: mib(5) })),
  destinations: [candidate('b', { postCopyTrial: trial, bandwidthFromSourceBytesPerSec: mib(300) })],
  ...over,
});
const line = (p: EvacuationPlan, id: string): PlannedMigration => p.migrations.find((m) => m.workloadId === id)!;
const savedCount = (p: EvacuationPlan): number => p.migrations.filter((m) => !m.willMiss).length;

describe('planEvacuation, objective downtime', () => {
  const cases: Array<{
    name: string;
    in: EvacuationInput;
    strategies: string[];
    peak: number;
    why: RegExp;
  }> = [
    {
      name: 'slack, post-copy trial passed: one at a time, post-copy',
      in: lab('ok'),
      strategies: ['post-copy', 'post-copy', 'post-copy'],
      peak: 1,
      why: /alone: one at a time/,
    },
    {
      name: 'slack, no trial: one at a time, stop-and-copy',
      in: lab('untested'),
      strategies: ['stop-and-copy', 'stop-and-copy', 'stop-and-copy'],
      peak: 1,
      why: /alone: one at a time/,
    },
    {
      name: 'slack, soft-dirty source and a quiet workload: hybrid (rounds, then a small lazy final set)',
      in: lab('ok', { source: sourceNode({ softDirty: true }) }),
      strategies: ['hybrid', 'hybrid', 'hybrid'],
      peak: 1,
      why: /alone/,
    },
    {
      name: 'slack, soft-dirty source, trial failed: pre-copy (short final freeze, no page fill)',
      in: lab('failed', { source: sourceNode({ softDirty: true }) }),
      strategies: ['pre-copy', 'pre-copy', 'pre-copy'],
      peak: 1,
      why: /alone/,
    },
    {
      name: 'tight: one at a time would miss one, so all three run at once',
      in: lab('untested', { deadlineSeconds: 8 }),
      strategies: ['stop-and-copy', 'stop-and-copy', 'stop-and-copy'],
      peak: 3,
      why: /alongside .*with 2 at once the plan would save less/,
    },
  ];
  it.each(cases)('$name', (c) => {
    const plan = planEvacuation(c.in);
    expect(savedCount(plan)).toBe(3);
    expect(['w1', 'w2', 'w3'].map((id) => line(plan, id).strategy)).toEqual(c.strategies);
    expect(plan.peakConcurrency).toBe(c.peak);
    expect(plan.summary).toContain(`up to ${c.peak} at once`);
    for (const m of plan.migrations) {
      expect(m.explanation).toMatch(c.why);
      expect(m.explanation).toContain(`Strategy ${m.strategy}`);
      expect(m.predictedFinishSeconds!).toBeLessThanOrEqual(plan.deadlineSeconds + 1e-6);
    }
    expect(plan.objective.kind).toBe('downtime');
    expect(plan.objective.totalDowntimeSeconds).toBeCloseTo(
      plan.migrations.reduce((s, m) => s + (m.predictedDowntimeSeconds ?? 0), 0),
    );
  });

  it("prices post-copy's page fill: the fill is recorded and weighed, and a heavy weight turns it down", () => {
    const cheap = planEvacuation(lab('ok'));
    const w1 = line(cheap, 'w1');
    expect(w1.predictedStallSeconds!).toBeGreaterThan(1.5);
    expect(w1.strategyReason).toMatch(/least downtime cost: post-copy .* page fill\) vs stop-and-copy/);
    expect(cheap.objective.weightedCostSeconds).toBeCloseTo(
      3 * 5 * (w1.predictedDowntimeSeconds! + 0.25 * w1.predictedStallSeconds!),
    );
    const dear = planEvacuation(lab('ok', { postCopyStallWeight: 1 }));
    expect(line(dear, 'w1').strategy).toBe('stop-and-copy');
  });

  it("never plans a freeze longer than a workload's maxDowntime, and says so when nothing fits", () => {
    const capped = lab('untested', {
      source: sourceNode({ softDirty: true }),
      workloads: [workload('w1', { memoryBytes: mib(512), dirtyRateBytesPerSec: mib(5), maxDowntimeSeconds: 0.5 })],
    });
    const plan = planEvacuation(capped);
    expect(line(plan, 'w1').strategy).toBe('pre-copy');
    expect(line(plan, 'w1').predictedDowntimeSeconds!).toBeLessThanOrEqual(0.5);
    const none = planEvacuation({ ...capped, source: sourceNode({ softDirty: false }) });
    expect(line(none, 'w1')).toMatchObject({ willMiss: true, missReason: expect.stringMatching(/maxDowntime/) });
    // Tight: three at once would freeze the capped one too long; it goes first, alone, the others after it.
    const tight = planEvacuation(
      lab('untested', {
        deadlineSeconds: 14,
        workloads: [
          workload('w1', { memoryBytes: mib(512), maxDowntimeSeconds: 2.5 }),
          workload('w2', { memoryBytes: mib(512) }),
          workload('w3', { memoryBytes: mib(512) }),
        ],
      }),
    );
    expect(savedCount(tight)).toBe(3);
    expect(line(tight, 'w1').predictedDowntimeSeconds!).toBeLessThanOrEqual(2.5);
  });

  it("a failed trial on the best-scored pair does not keep the workloads off post-copy where another pair's passed", () => {
    // b is in the source's zone (placement scores it first) but its trial failed; c's passed.
    const pairs = {
      destinations: [
        candidate('b', { postCopyTrial: 'failed', bandwidthFromSourceBytesPerSec: mib(300) }),
        candidate('c', { postCopyTrial: 'ok', zone: 'zone-b', bandwidthFromSourceBytesPerSec: mib(300) }),
      ],
    };
    const plan = planEvacuation(lab('ok', pairs));
    expect(savedCount(plan)).toBe(3);
    for (const id of ['w1', 'w2', 'w3']) {
      expect(line(plan, id)).toMatchObject({ strategy: 'post-copy', destinationId: 'c' });
      expect(line(plan, id).destinationReason).toMatch(
        /c \(post-copy here costs .* vs stop-and-copy .* on b, better-scored\)/,
      );
    }
    // The finish objective keeps placement's order: b, by stop-and-copy.
    const finish = planEvacuation(lab('ok', { ...pairs, objective: 'finish' }));
    expect(finish.migrations.map((m) => [m.destinationId, m.strategy])).toEqual(Array(3).fill(['b', 'stop-and-copy']));
  });

  it("the issue's three 512 MiB workloads, 120 s notice: at least 3x less total downtime than the finish objective", () => {
    const today = planEvacuation(lab('untested', { objective: 'finish' }));
    const now = planEvacuation(lab('untested'));
    expect(savedCount(today)).toBe(3);
    expect(savedCount(now)).toBe(3);
    expect(today.peakConcurrency).toBe(3);
    expect(today.objective.totalDowntimeSeconds / now.objective.totalDowntimeSeconds).toBeGreaterThanOrEqual(3);
  });

  it('the finish objective is the old one: same plan shape as before issue 16', () => {
    const plan = planEvacuation(lab('ok', { objective: 'finish' }));
    expect(plan.objective.kind).toBe('finish');
    expect(plan.parallelism).toBe(3);
    expect(plan.summary).not.toContain('least-downtime');
  });
});

/** A seeded generator (mulberry32) so a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('planEvacuation against every order x strategy x parallelism (offline exhaustive search)', () => {
  const trials: PostCopyTrial[] = ['ok', 'failed', 'untested'];
  const cases = Array.from({ length: 60 }, (_, seed) => {
    const r = rng(seed + 1);
    const n = 2 + Math.floor(r() * 3);
    const workloads = Array.from({ length: n }, (_, i) =>
      workload(`w${i}`, {
        memoryBytes: mib(128 + Math.floor(r() * 896)),
        dirtyRateBytesPerSec: mib(Math.floor(r() * 60)),
        priority: 1 + Math.floor(r() * 10),
      }),
    );
    const input = lab(trials[Math.floor(r() * 3)]!, {
      source: sourceNode({ softDirty: r() < 0.5 }),
      deadlineSeconds: 4 + r() * 30,
      perMigrationOverheadSeconds: 0.5 + r() * 1.5,
      parallelDumpSlowdown: r() * 1.5,
      workloads,
    });
    return { name: `seed ${seed + 1}: ${n} workloads, ${input.deadlineSeconds.toFixed(1)} s`, input };
  });
  it.each(cases)('$name: saves as much as the best plan, at most 1.2x its weighted downtime', ({ input }) => {
    const plan = planEvacuation(input);
    const best = exhaustiveBest(input);
    const done = plan.migrations.filter((m) => !m.willMiss).reduce((s, m) => s + m.value, 0);
    expect(done).toBeGreaterThanOrEqual(best.workSaved * (1 - 1e-9));
    expect(plan.objective.weightedCostSeconds).toBeLessThanOrEqual(1.2 * best.weightedCostSeconds + 1e-6);
  });
});
