import { requiredMemoryBytes } from './choose-destination.js';
import type { EvacuationInput } from './evacuation-types.js';
import { candidate, gib, mib, sourceNode, workload } from './fixtures.js';
import { planEvacuation } from './plan-evacuation.js';
import { replan } from './replan.js';

/** mulberry32: a tiny seeded generator, so every run checks the same instances. */
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

function instance(seed: number): EvacuationInput {
  const r = rng(seed);
  const n = 3 + Math.floor(r() * 12);
  return {
    deadlineSeconds: 5 + r() * 40,
    source: sourceNode({ softDirty: r() < 0.5 }),
    sourceOutboundBytesPerSec: gib(0.5 + r()),
    perMigrationMaxBytesPerSec: r() < 0.5 ? gib(0.3 + r() * 0.5) : undefined,
    perMigrationOverheadSeconds: r() * 2,
    maxParallel: 1 + Math.floor(r() * 6),
    destinations: ['b', 'c', 'd'].map((id) =>
      candidate(id, {
        freeMemoryBytes: gib(2 + r() * 12),
        inboundBandwidthBytesPerSec: gib(0.4 + r()),
        zone: r() < 0.5 ? 'zone-a' : 'zone-b',
        postCopyTrial: r() < 0.5 ? 'ok' : 'failed',
      }),
    ),
    workloads: Array.from({ length: n }, (_, i) =>
      workload(`w${i}`, {
        memoryBytes: mib(64 + Math.floor(r() * 6000)),
        dirtyRateBytesPerSec: mib(r() * 200),
        priority: 1 + Math.floor(r() * 10),
        ...(r() < 0.3 ? { antiAffinityGroup: 'g' } : {}),
      }),
    ),
  };
}

describe('plan invariants on seeded random evacuations', () => {
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))('seed %i', (seed) => {
    const input = instance(seed);
    const plan = planEvacuation(input);
    const kept = plan.migrations.filter((m) => !m.willMiss);
    // Every planned migration finishes in time and the bound is a bound.
    for (const m of kept) expect(m.predictedFinishSeconds!).toBeLessThanOrEqual(input.deadlineSeconds + 1e-6);
    expect(plan.upperBound).toBeGreaterThanOrEqual(plan.workSaved * (1 - 1e-9));
    expect(plan.workSaved).toBeCloseTo(kept.reduce((s, m) => s + m.value, 0));
    // No destination is overbooked: each placement left its own headroom free.
    for (const d of input.destinations) {
      let used = 0;
      for (const m of kept.filter((x) => x.destinationId === d.id).sort((a, b) => a.order! - b.order!)) {
        expect(d.freeMemoryBytes - used).toBeGreaterThanOrEqual(requiredMemoryBytes(m.memoryBytes));
        used += m.memoryBytes;
      }
      const groups = kept.filter(
        (m) =>
          m.destinationId === d.id && input.workloads.find((w) => w.id === m.workloadId)!.antiAffinityGroup === 'g',
      );
      expect(groups.length).toBeLessThanOrEqual(1);
    }
    // Never more at once than allowed.
    expect(plan.peakConcurrency).toBeLessThanOrEqual(plan.parallelism);
    expect(plan.parallelism).toBeLessThanOrEqual(input.maxParallel!);
    // Each workload appears once.
    expect(plan.migrations.map((m) => m.workloadId).sort()).toEqual(input.workloads.map((w) => w.id).sort());
    // A re-plan when the first job completes keeps the same guarantees.
    const first = [...kept].sort((a, b) => a.predictedFinishSeconds! - b.predictedFinishSeconds!)[0];
    if (!first) return;
    const next = replan(plan, [{ workloadId: first.workloadId, outcome: 'completed' }], first.predictedFinishSeconds!);
    for (const m of next.migrations.filter((x) => !x.willMiss && !x.completed)) {
      expect(m.predictedFinishSeconds!).toBeLessThanOrEqual(input.deadlineSeconds + 1e-6);
      expect(m.predictedFinishSeconds!).toBeGreaterThanOrEqual(first.predictedFinishSeconds! - 1e-6);
    }
    expect(next.upperBound).toBeGreaterThanOrEqual(next.workSaved * (1 - 1e-9));
    expect(next.migrations).toHaveLength(input.workloads.length);
  });
});
