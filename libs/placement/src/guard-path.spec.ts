import type { EvacuationInput, PlannedMigration } from './evacuation-types.js';
import { candidate, gib, mib, sourceNode, workload } from './fixtures.js';
import { planEvacuation } from './plan-evacuation.js';
import type { GuardCopy, PlacementWorkload } from './types.js';

/** node-c is the storage node (1 GiB/s from the source, as the destinations); overhead 0.5 s per move. */
const input = (w: PlacementWorkload, over: Partial<EvacuationInput> = {}): EvacuationInput => ({
  deadlineSeconds: 5,
  source: sourceNode({ softDirty: true }),
  sourceOutboundBytesPerSec: gib(1),
  workloads: [w],
  destinations: [candidate('b'), candidate('c')],
  perMigrationOverheadSeconds: 0.5,
  storageNodeId: 'c',
  ...over,
});
const guard = (over: Partial<GuardCopy> = {}): GuardCopy => ({
  checkpointId: 'cp-g',
  storageNodeId: 'c',
  ageSeconds: 10,
  ...over,
});
const lineOf = (i: EvacuationInput): PlannedMigration => planEvacuation(i).migrations[0]!;

describe('the guard path of a notice too short for a live move', () => {
  // 8 GiB at 1 GiB/s: any live move needs 8.5 s, the deadline is 5 s away.
  const big = (over: Partial<PlacementWorkload> = {}) =>
    workload('w', { memoryBytes: gib(8), dirtyRateBytesPerSec: mib(64), ...over });
  const cases: Array<{
    name: string;
    in: EvacuationInput;
    fallback?: PlannedMigration['fallback'];
    willMiss: boolean;
    lastBytes?: number;
    dumpSeconds?: number;
    rpoSeconds?: number;
    reason?: RegExp;
  }> = [
    {
      name: 'too short for live, soft-dirty: an incremental last checkpoint of what was dirtied since (64 MiB/s x 10 s)',
      in: input(big({ guardCopy: guard() })),
      fallback: 'guard-restore',
      willMiss: true,
      lastBytes: mib(640),
      dumpSeconds: 0.5 + 0.625,
      rpoSeconds: 0,
      reason: /incremental last checkpoint on cp-g \(640 MiB dirtied in 10\.00 s\).* no work lost/,
    },
    {
      name: 'the take time measured on the guard checkpoint replaces the configured overhead',
      in: input(big({ guardCopy: guard({ takeSeconds: 9, pagesBytes: gib(8) }) })),
      fallback: 'guard-restore',
      willMiss: true,
      dumpSeconds: 1 + 0.625,
    },
    {
      name: 'dirty rate x age capped by RSS: an old guard checkpoint means a dump of all of it, too long: it stands in',
      in: input(big({ guardCopy: guard({ ageSeconds: 1000 }) })),
      fallback: 'guard-checkpoint',
      willMiss: true,
      lastBytes: gib(8),
      rpoSeconds: 1000,
      reason: /would take .* only 5\.00 s left: guard checkpoint cp-g stands in as it is/,
    },
    {
      name: 'no soft-dirty on the source: the last checkpoint is full, 8 GiB does not fit: the guard checkpoint stands in',
      in: input(big({ guardCopy: guard() }), { source: sourceNode({ softDirty: false }) }),
      fallback: 'guard-checkpoint',
      willMiss: true,
      lastBytes: gib(8),
      rpoSeconds: 10,
      reason: /a full last checkpoint .*does not track dirty memory/,
    },
    {
      name: 'no soft-dirty, a small workload: the full last checkpoint fits where a live move with its restore does not',
      in: input(workload('w', { memoryBytes: gib(4), guardCopy: guard({ takeSeconds: 4.2, pagesBytes: gib(4) }) }), {
        source: sourceNode({ softDirty: false }),
        perMigrationOverheadSeconds: 2,
      }),
      fallback: 'guard-restore',
      willMiss: true,
      lastBytes: gib(4),
      dumpSeconds: 0.2 + 4,
    },
    {
      name: 'soft-dirty, but the chain is encrypted at rest: the last checkpoint is full, 8 GiB does not fit',
      in: input(big({ guardCopy: guard({ encrypted: true }) })),
      fallback: 'guard-checkpoint',
      willMiss: true,
      lastBytes: gib(8),
      rpoSeconds: 10,
      reason: /a full last checkpoint \(8.0 GiB: cp-g is encrypted at rest/,
    },
    {
      name: 'no guard checkpoint: as today (a checkpoint to storage)',
      in: input(big()),
      fallback: 'checkpoint-to-storage',
      willMiss: true,
    },
    {
      name: 'a live move fits: the guard copy changes nothing',
      in: input(workload('w', { memoryBytes: gib(1), guardCopy: guard() })),
      willMiss: false,
    },
  ];
  it.each(cases)('$name', (c) => {
    const m = lineOf(c.in);
    expect(m.willMiss).toBe(c.willMiss);
    expect(m.fallback).toBe(c.fallback);
    if (!c.fallback?.startsWith('guard')) {
      expect(m.guardPath).toBeUndefined();
      return;
    }
    expect(m.guardPath!.checkpointId).toBe('cp-g');
    expect(m.fallbackNodeId).toBe('c');
    if (c.lastBytes !== undefined) expect(m.guardPath!.lastBytes).toBe(c.lastBytes);
    if (c.dumpSeconds !== undefined) expect(m.guardPath!.dumpSeconds).toBeCloseTo(c.dumpSeconds, 6);
    if (c.rpoSeconds !== undefined) expect(m.guardPath!.rpoSeconds).toBe(c.rpoSeconds);
    if (c.reason) expect(m.guardPath!.reason).toMatch(c.reason);
  });

  it('guard-restore predicts the dump then the restore of the chain (the guard checkpoint plus the last one)', () => {
    const m = lineOf(input(big({ guardCopy: guard() })));
    expect(m.predictedBytes).toBe(mib(640));
    expect(m.guardPath!.restoreSeconds).toBeCloseTo(0.5 + 8 + 0.625, 6);
    expect(m.predictedFinishSeconds).toBeCloseTo(m.guardPath!.dumpSeconds + m.guardPath!.restoreSeconds, 6);
  });

  it('the last dump shares the source link with the live moves running meanwhile', () => {
    // Two live 1 GiB moves at once (peak 2): the dump gets a third of the link.
    const w = big({ guardCopy: guard() });
    const others = [
      workload('x', { memoryBytes: gib(1), priority: 9 }),
      workload('y', { memoryBytes: gib(1), priority: 9 }),
    ];
    const plan = planEvacuation({ ...input(w), workloads: [w, ...others], deadlineSeconds: 2.5 });
    const m = plan.migrations.find((l) => l.workloadId === 'w')!;
    expect(m.fallback).toBe('guard-restore');
    expect(m.guardPath!.dumpSeconds).toBeCloseTo(0.5 + 0.625 * (1 + plan.peakConcurrency), 6);
  });
});
