import { evacuationUpperBound, fractionalKnapsack, sharedMemoryBound } from './evacuation-bound.js';
import type { EvacuationInput, EvacuationPlan, PlannedMigration } from './evacuation-types.js';
import { candidate, gib, sourceNode, workload } from './fixtures.js';
import { planEvacuation } from './plan-evacuation.js';

const input = (over: Partial<EvacuationInput> = {}): EvacuationInput => ({
  deadlineSeconds: 30,
  source: sourceNode({ softDirty: false }),
  sourceOutboundBytesPerSec: gib(1),
  workloads: [],
  destinations: [candidate('b'), candidate('c')],
  perMigrationOverheadSeconds: 0.5,
  ...over,
});
const line = (p: EvacuationPlan, id: string): PlannedMigration => p.migrations.find((m) => m.workloadId === id)!;
const saved = (p: EvacuationPlan): string[] =>
  p.migrations
    .filter((m) => !m.willMiss)
    .map((m) => m.workloadId)
    .sort();

describe('planEvacuation', () => {
  const cases: Array<{
    name: string;
    in: Partial<EvacuationInput>;
    saved: string[];
    missReason?: RegExp;
    parallelism?: number;
  }> = [
    {
      name: 'deadline too short: the miss is predicted, with why',
      in: { deadlineSeconds: 5, workloads: [workload('big', { memoryBytes: gib(8) })] },
      saved: [],
      missReason: /even alone/,
    },
    {
      name: 'priorities respected: only one fits, the critical one goes',
      in: {
        deadlineSeconds: 6,
        workloads: [
          workload('low', { memoryBytes: gib(4), priority: 1 }),
          workload('high', { memoryBytes: gib(4), priority: 9 }),
        ],
      },
      saved: ['high'],
      missReason: /deadline|higher-ranked/,
    },
    {
      name: 'shared bandwidth, no per-stream ceiling: two big ones in parallel would both miss, so one goes alone',
      in: {
        deadlineSeconds: 10,
        workloads: [workload('a', { memoryBytes: gib(8) }), workload('b', { memoryBytes: gib(8), priority: 6 })],
      },
      saved: ['b'],
      missReason: /deadline|higher-ranked/,
      parallelism: 1,
    },
    {
      name: 'shared bandwidth with a per-stream ceiling: parallel saves both, serial would not',
      in: {
        deadlineSeconds: 10,
        perMigrationMaxBytesPerSec: gib(0.5),
        workloads: [workload('a', { memoryBytes: gib(4) }), workload('b', { memoryBytes: gib(4) })],
      },
      saved: ['a', 'b'],
      parallelism: 2,
    },
    {
      name: 'a destination filling up: reservations stop overbooking',
      in: {
        destinations: [candidate('b', { freeMemoryBytes: gib(7) })],
        workloads: [
          workload('w1', { memoryBytes: gib(3) }),
          workload('w2', { memoryBytes: gib(3) }),
          workload('w3', { memoryBytes: gib(3), priority: 1 }),
        ],
      },
      saved: ['w1', 'w2'],
      missReason: /insufficient|needs .* with headroom/,
    },
    {
      name: 'small ones first when they save more than one big one',
      in: {
        deadlineSeconds: 8.6,
        workloads: [
          workload('big', { memoryBytes: gib(7), priority: 5 }),
          ...[1, 2, 3, 4].map((i) => workload(`s${i}`, { memoryBytes: gib(1.8), priority: 5 })),
        ],
      },
      saved: ['s1', 's2', 's3', 's4'],
    },
  ];
  it.each(cases)('$name', (c) => {
    const plan = planEvacuation(input(c.in));
    expect(saved(plan)).toEqual(c.saved);
    for (const m of plan.migrations) {
      if (m.willMiss) {
        expect(m.missReason).toMatch(c.missReason ?? /./);
        expect(m.destinationId).toBeUndefined();
      } else {
        expect(m.predictedFinishSeconds!).toBeLessThanOrEqual(plan.deadlineSeconds + 1e-6);
        expect(m.destinationId).toBeDefined();
      }
    }
    if (c.parallelism !== undefined) expect(plan.parallelism).toBe(c.parallelism);
    expect(plan.upperBound).toBeGreaterThanOrEqual(plan.workSaved);
    expect(plan.predictedMisses).toBe(plan.migrations.filter((m) => m.willMiss).length);
  });

  it('places the filled-up overflow on the next node, never on the same anti-affinity group twice', () => {
    const plan = planEvacuation(
      input({
        destinations: [
          candidate('b', { freeMemoryBytes: gib(7) }),
          candidate('c', { freeMemoryBytes: gib(4), zone: 'zone-b' }),
        ],
        workloads: [
          workload('w1', { memoryBytes: gib(3) }),
          workload('w2', { memoryBytes: gib(3), antiAffinityGroup: 'g' }),
          workload('w3', { memoryBytes: gib(3), antiAffinityGroup: 'g' }),
        ],
      }),
    );
    expect(saved(plan)).toEqual(['w1', 'w2', 'w3']);
    expect(line(plan, 'w2').destinationId).not.toBe(line(plan, 'w3').destinationId);
    const onB = plan.migrations.filter((m) => m.destinationId === 'b').length;
    expect(onB).toBe(2);
  });

  it('packs small workloads into small holes so a large one still fits (best fit by default)', () => {
    // Every queue order puts `small` first (higher priority, value and density).
    const ws = [
      workload('small', { memoryBytes: gib(1), priority: 10 }),
      workload('big', { memoryBytes: gib(8), priority: 1 }),
    ];
    const destinations = [candidate('b', { freeMemoryBytes: gib(9.5) }), candidate('c', { freeMemoryBytes: gib(2) })];
    const packed = planEvacuation(input({ workloads: ws, destinations }));
    expect(line(packed, 'small').destinationId).toBe('c');
    expect(saved(packed)).toEqual(['big', 'small']);
    const spreadIn = input({ workloads: ws, destinations, placement: { memoryFit: 'spread' }, objective: 'finish' });
    const spread = planEvacuation(spreadIn);
    expect(line(spread, 'small').destinationId).toBe('b');
    expect(line(spread, 'big').willMiss).toBe(true);
    // The downtime objective also tries each order reversed, and `big` first leaves `small` the small hole.
    expect(saved(planEvacuation({ ...spreadIn, objective: 'downtime' }))).toEqual(['big', 'small']);
  });

  it('suggests checkpointing misses to the storage node', () => {
    const plan = planEvacuation(
      input({ deadlineSeconds: 3, storageNodeId: 'store-1', workloads: [workload('big', { memoryBytes: gib(8) })] }),
    );
    expect(line(plan, 'big')).toMatchObject({
      willMiss: true,
      fallback: 'checkpoint-to-storage',
      fallbackNodeId: 'store-1',
    });
  });

  it('never plans onto a terminating node and reports a deadline already passed', () => {
    const plan = planEvacuation(
      input({ destinations: [candidate('t', { state: 'terminating' })], workloads: [workload('w')] }),
    );
    expect(line(plan, 'w').missReason).toContain('terminating');
    const late = planEvacuation(input({ deadlineSeconds: -1, workloads: [workload('w')] }));
    expect(line(late, 'w').willMiss).toBe(true);
  });

  it('uses pre-copy for a tight freeze budget only when the whole evacuation still fits', () => {
    const ws = [workload('w', { memoryBytes: gib(2), dirtyRateBytesPerSec: gib(0.3), downtimeBudgetSeconds: 0.3 })];
    const roomy = planEvacuation(
      input({
        source: sourceNode({ softDirty: true }),
        workloads: ws,
        destinations: [candidate('b', { postCopyTrial: 'failed' })],
      }),
    );
    expect(line(roomy, 'w').strategy).toBe('pre-copy');
    expect(roomy.strategies).toBe('all');
    expect(line(roomy, 'w').predictedDowntimeSeconds!).toBeLessThanOrEqual(0.3);
    // Pre-copy needs ~3.4 s here (a second round), post-copy ~2.7 s, stop-and-copy 2.5 s but a 2.1 s freeze.
    const tight = planEvacuation(input({ deadlineSeconds: 3, source: sourceNode({ softDirty: true }), workloads: ws }));
    expect(line(tight, 'w').strategy).toBe('post-copy');
    expect(line(tight, 'w').willMiss).toBe(false);
  });

  it('rejects nonsense input', () => {
    expect(() => planEvacuation(input({ sourceOutboundBytesPerSec: 0 }))).toThrow(RangeError);
    expect(() => planEvacuation(input({ workloads: [workload('a'), workload('a')] }))).toThrow(/unique/);
  });
});

describe('upper bound', () => {
  it('is the fractional knapsack over the source link', () => {
    expect(
      fractionalKnapsack(
        [
          { value: 10, bytes: 10 },
          { value: 30, bytes: 10 },
        ],
        15,
      ),
    ).toBeCloseTo(35);
    const b = evacuationUpperBound(
      input({ deadlineSeconds: 4.5, workloads: [workload('a', { memoryBytes: gib(8), priority: 2 })] }),
    );
    expect(b.capacityBytes).toBe(gib(4));
    expect(b.value).toBeCloseTo(2 * gib(4));
  });

  it("tightens with the destinations' memory shared across sources", () => {
    const groups = [
      { items: [{ value: 80, bytes: 8, memoryBytes: 8 }], capacityBytes: 8 },
      { items: [{ value: 8, bytes: 8, memoryBytes: 8 }], capacityBytes: 8 },
    ];
    expect(sharedMemoryBound(groups, Number.POSITIVE_INFINITY)).toBeCloseTo(88);
    expect(sharedMemoryBound(groups, 8)).toBeCloseTo(80);
    const tight = evacuationUpperBound(
      input({
        destinations: [candidate('b', { freeMemoryBytes: gib(4) })],
        workloads: [workload('a', { memoryBytes: gib(2) }), workload('c', { memoryBytes: gib(3) })],
      }),
    );
    expect(tight.memoryBytes).toBe(gib(4));
    expect(tight.value).toBeLessThanOrEqual(5 * gib(4) + 1);
  });
});
