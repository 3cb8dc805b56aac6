import { leaseTimingsProblem, planShard, shardQuota, type ShardView } from './watch-shards.js';

const view = (over: Partial<ShardView>): ShardView => ({
  self: 'r1',
  nodes: [],
  liveReplicas: ['r1'],
  held: [],
  holders: new Map(),
  slack: 0,
  ...over,
});
const nodes = (n: number) => Array.from({ length: n }, (_, i) => `n${String(i).padStart(2, '0')}`);

describe('lease timings', () => {
  it.each([
    [{ leaseMs: 5_000, renewMs: 1_000 }, undefined],
    [{ leaseMs: 2_000, renewMs: 1_000 }, undefined],
    [{ leaseMs: 2_000, renewMs: 1_001 }, /at most half the lease/],
    [{ leaseMs: 999, renewMs: 100 }, /lease \(999 ms\) must be >= 1000/],
    [{ leaseMs: 5_000, renewMs: 99 }, /renewal period \(99 ms\) must be >= 100/],
    [{ leaseMs: 5_000.5, renewMs: 1_000 }, /lease/],
    [{ leaseMs: Number.NaN, renewMs: 1_000 }, /lease/],
  ])('%j -> %s', (t, expected) => {
    const problem = leaseTimingsProblem(t);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });
});

describe('shard quota', () => {
  it.each([
    [10, 1, 0, 10],
    [10, 3, 0, 4],
    [10, 3, 1, 5],
    [9, 3, 0, 3],
    [0, 2, 1, 1],
    // no live replica read yet (first heartbeat failed): the replica counts itself
    [5, 0, 0, 5],
  ])('%i nodes, %i replicas, slack %i -> %i', (n, r, slack, q) => {
    expect(shardQuota(n, r, slack)).toBe(q);
  });
});

describe('one period of a replica', () => {
  it('alone: takes every free node', () => {
    const plan = planShard(view({ nodes: nodes(4) }));
    expect(plan.acquire.sort()).toEqual(nodes(4));
    expect(plan.release).toEqual([]);
  });

  it('takes no node another replica holds, and only up to its share', () => {
    const holders = new Map([
      ['n00', 'r2'],
      ['n01', 'r2'],
    ]);
    const plan = planShard(view({ nodes: nodes(6), liveReplicas: ['r1', 'r2'], holders }));
    expect(plan.quota).toBe(3);
    expect(plan.acquire).toHaveLength(3);
    expect(plan.acquire).not.toContain('n00');
    expect(plan.acquire).not.toContain('n01');
  });

  it('counts what it holds against its share', () => {
    const holders = new Map([
      ['n00', 'r1'],
      ['n01', 'r1'],
    ]);
    const plan = planShard(view({ nodes: nodes(6), liveReplicas: ['r1', 'r2'], held: ['n00', 'n01'], holders }));
    expect(plan.acquire).toHaveLength(1);
  });

  it('gives back removed nodes', () => {
    const holders = new Map([['n00', 'r1']]);
    const plan = planShard(view({ nodes: ['n01'], held: ['n00'], holders }));
    expect(plan.release).toEqual(['n00']);
    expect(plan.acquire).toEqual(['n01']);
  });

  it('gives back what exceeds its share once another replica is live, and keeps the rest', () => {
    const all = nodes(6);
    const holders = new Map(all.map((n) => [n, 'r1'] as const));
    const plan = planShard(view({ nodes: all, liveReplicas: ['r1', 'r2'], held: all, holders, slack: 1 }));
    expect(plan.quota).toBe(4);
    expect(plan.release).toEqual(['n04', 'n05']);
    expect(plan.acquire).toEqual([]);
  });

  it('keeps everything within the slack (no churn for an uneven split)', () => {
    const held = nodes(4);
    const holders = new Map(held.map((n) => [n, 'r1'] as const));
    const plan = planShard(view({ nodes: nodes(7), liveReplicas: ['r1', 'r2'], held, holders, slack: 0 }));
    expect(plan.release).toEqual([]);
  });

  it('two replicas reach for free nodes in different orders', () => {
    const free = nodes(20);
    const a = planShard(view({ self: 'r1', nodes: free, liveReplicas: ['r1', 'r2'] })).acquire;
    const b = planShard(view({ self: 'r2', nodes: free, liveReplicas: ['r1', 'r2'] })).acquire;
    expect(a).not.toEqual(b);
    expect(new Set([...a, ...b]).size).toBeGreaterThan(a.length);
  });
});
