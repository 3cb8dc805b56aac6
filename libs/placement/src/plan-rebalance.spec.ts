import { candidate, gib, workload } from './fixtures.js';
import { planRebalance, type RebalanceNode } from './plan-rebalance.js';

const node = (id: string, usedGib: number, over: Partial<RebalanceNode> = {}): RebalanceNode => ({
  ...candidate(id),
  memoryCapacityBytes: gib(32),
  freeMemoryBytes: gib(32 - usedGib),
  workloads: [],
  ...over,
});

describe('planRebalance', () => {
  it('moves workloads off a pool with a rebalance recommendation, most valuable first, never into that pool', () => {
    const risky = node('r1', 6, {
      spotPool: 'pool-hot',
      workloads: [
        workload('lo', { priority: 2, memoryBytes: gib(2) }),
        workload('hi', { priority: 9, memoryBytes: gib(2) }),
      ],
    });
    const sibling = node('r2', 0, { spotPool: 'pool-hot' });
    const safe = node('s1', 4, { spotPool: 'pool-cold' });
    const plan = planRebalance({ nodes: [risky, sibling, safe], atRiskPools: ['pool-hot'] });
    expect(plan.moves.map((m) => [m.workloadId, m.toNodeId])).toEqual([
      ['hi', 's1'],
      ['lo', 's1'],
    ]);
    expect(plan.moves[0]!.reason).toContain('rebalance recommendation');
  });

  it('sheds the least valuable workloads of an overfull node down to the target', () => {
    const full = node('f', 31, {
      workloads: [
        workload('crit', { priority: 10, memoryBytes: gib(10) }),
        workload('batch-a', { priority: 1, memoryBytes: gib(3) }),
        workload('batch-b', { priority: 1, memoryBytes: gib(2) }),
        workload('web', { priority: 5, memoryBytes: gib(8) }),
      ],
    });
    const plan = planRebalance({ nodes: [full, node('e', 2)], overfullFraction: 0.9, targetFraction: 0.8 });
    // 31 of 32 GiB used, target 25.6 GiB: the batch jobs (5 GiB) are not enough, web goes too, crit stays.
    expect(plan.moves.map((m) => m.workloadId)).toEqual(['batch-a', 'batch-b', 'web']);
    expect(plan.moves.every((m) => m.toNodeId === 'e')).toBe(true);
    expect(plan.moves[0]!.reason).toContain('overfull');
  });

  const quiet = [
    { name: 'nothing at risk and nothing overfull', nodes: [node('a', 10), node('b', 10)], pools: [] as string[] },
    {
      name: 'an at-risk pool holding only on-demand nodes',
      nodes: [node('a', 10, { lifecycle: 'on-demand', spotPool: 'p' })],
      pools: ['p'],
    },
  ];
  it.each(quiet)('proposes nothing when $name', ({ nodes, pools }) => {
    expect(planRebalance({ nodes, atRiskPools: pools }).moves).toEqual([]);
  });

  it('reports workloads it cannot place and respects the move cap', () => {
    const risky = node('r', 20, {
      spotPool: 'hot',
      workloads: [1, 2, 3].map((i) => workload(`w${i}`, { memoryBytes: gib(6) })),
    });
    const small = node('s', 20, { spotPool: 'cold' });
    const plan = planRebalance({ nodes: [risky, small], atRiskPools: ['hot'], maxMoves: 5 });
    expect(plan.moves).toHaveLength(0);
    expect(plan.skipped).toHaveLength(3);
    expect(plan.skipped[0]!.reason).toContain('unreserved');
    const capped = planRebalance({
      nodes: [risky, node('big', 0, { spotPool: 'cold', memoryCapacityBytes: gib(64), freeMemoryBytes: gib(64) })],
      atRiskPools: ['hot'],
      maxMoves: 2,
    });
    expect(capped.moves).toHaveLength(2);
    expect(capped.summary).toContain('cap');
  });
});
