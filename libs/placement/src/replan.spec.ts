import type { EvacuationInput, EvacuationPlan, PlannedMigration } from './evacuation-types.js';
import { candidate, gib, sourceNode, workload } from './fixtures.js';
import { planEvacuation } from './plan-evacuation.js';
import { replan } from './replan.js';

const input: EvacuationInput = {
  deadlineSeconds: 20,
  source: sourceNode({ softDirty: false }),
  sourceOutboundBytesPerSec: gib(1),
  perMigrationMaxBytesPerSec: gib(0.5),
  perMigrationOverheadSeconds: 0.5,
  maxParallel: 2,
  destinations: [candidate('b'), candidate('c', { zone: 'zone-b' })],
  workloads: [
    workload('w1', { memoryBytes: gib(2), priority: 9 }),
    workload('w2', { memoryBytes: gib(3), priority: 5 }),
    workload('w3', { memoryBytes: gib(4), priority: 3 }),
  ],
};
const line = (p: EvacuationPlan, id: string): PlannedMigration => p.migrations.find((m) => m.workloadId === id)!;

describe('replan', () => {
  const plan = planEvacuation(input);
  const first = [...plan.migrations].sort((a, b) => a.predictedFinishSeconds! - b.predictedFinishSeconds!)[0]!;
  const t = first.predictedFinishSeconds!;

  it('starts from a plan that saves everything', () => {
    expect(plan.predictedMisses).toBe(0);
    expect(plan.parallelism).toBe(2);
  });

  it('keeps completed work, pins running jobs, and agrees with the plan when all went as predicted', () => {
    const next = replan(plan, [{ workloadId: first.workloadId, outcome: 'completed' }], t);
    expect(line(next, first.workloadId)).toMatchObject({ completed: true, willMiss: false });
    expect(next.plannedAtSeconds).toBe(t);
    expect(next.workSaved).toBeCloseTo(plan.workSaved);
    for (const m of next.migrations.filter(
      (x) => !x.completed && (line(plan, x.workloadId).startSeconds ?? Infinity) <= t,
    )) {
      expect(m).toMatchObject({ inFlight: true, destinationId: line(plan, m.workloadId).destinationId });
      expect(m.predictedFinishSeconds!).toBeCloseTo(line(plan, m.workloadId).predictedFinishSeconds!, 3);
    }
    expect(next.history.completed).toEqual([first.workloadId]);
  });

  it('plans a failed workload again, away from the node where it failed', () => {
    const failedOn = first.destinationId!;
    const next = replan(plan, [{ workloadId: first.workloadId, outcome: 'failed' }], t);
    const again = line(next, first.workloadId);
    expect(again.completed).toBeUndefined();
    expect(again.willMiss).toBe(false);
    expect(again.destinationId).not.toBe(failedOn);
    expect(again.startSeconds!).toBeGreaterThanOrEqual(t);
    expect(next.history.failedOn[first.workloadId]).toEqual([failedOn]);
  });

  it('uses reported progress: a running job that sent nothing finishes later', () => {
    const running = plan.migrations.find((m) => m.workloadId !== first.workloadId && m.startSeconds! <= t)!;
    const next = replan(plan, [{ workloadId: first.workloadId, outcome: 'completed' }], t, {
      bytesSent: { [running.workloadId]: 0 },
    });
    expect(line(next, running.workloadId).predictedFinishSeconds!).toBeGreaterThan(
      running.predictedFinishSeconds! + 0.1,
    );
  });

  it('commits completed memory on the destination unless fresh probes are given', () => {
    const tiny: EvacuationInput = {
      ...input,
      destinations: [candidate('b', { freeMemoryBytes: gib(4) }), candidate('c', { zone: 'zone-b' })],
    };
    const p = planEvacuation({ ...tiny, workloads: [workload('x', { memoryBytes: gib(2) })] });
    expect(line(p, 'x').destinationId).toBe('b');
    const withMore: EvacuationInput = {
      ...p.input,
      workloads: [...p.input.workloads, workload('y', { memoryBytes: gib(2) })],
    };
    const next = replan({ ...p, input: withMore }, [{ workloadId: 'x', outcome: 'completed' }], 5);
    expect(line(next, 'y').destinationId).toBe('c');
  });
});
