import { candidate, gib, mib, workload } from './fixtures.js';
import { planRebalance } from './plan-rebalance.js';
import { cronProblem, inWindow, startVerdict, windowVerdict } from './rebalance-budgets.js';
import type { RebalanceInput, RebalanceNode, RebalanceWorkload } from './rebalance-types.js';

const NOW = new Date('2026-03-04T12:00:00Z');
const HOUR = 3_600_000;
const node = (
  id: string,
  usedGib: number,
  ws: RebalanceWorkload[] = [],
  over: Partial<RebalanceNode> = {},
): RebalanceNode => ({
  ...candidate(id, { spotPool: `pool-${id}`, postCopyTrial: 'untested' }),
  memoryCapacityBytes: gib(32),
  freeMemoryBytes: gib(32 - usedGib),
  workloads: ws,
  ...over,
});
const w = (id: string, over: Partial<RebalanceWorkload> = {}): RebalanceWorkload => workload(id, over);
const open = { maxConcurrentMoves: 2, maxMovesPerHour: 100, minMoveIntervalSeconds: 0, windows: [] };
const input = (over: Partial<RebalanceInput>): RebalanceInput => ({
  now: NOW,
  policies: [],
  nodes: [],
  budgets: open,
  history: [],
  bandwidthBytesPerSec: gib(1),
  ...over,
});
const pairs = (r: ReturnType<typeof planRebalance>) =>
  r.moves.map((m) => `${m.workloadId}:${m.fromNodeId}>${m.toNodeId}:${m.policy}`);

/** A fleet of three: a busy, b busy, c nearly empty (one small workload). */
const three = (): RebalanceNode[] => [
  node('a', 8, [w('a1', { memoryBytes: gib(4) }), w('a2', { memoryBytes: gib(4) })]),
  node('b', 8, [w('b1', { memoryBytes: gib(4) }), w('b2', { memoryBytes: gib(4) })]),
  node('c', 1, [w('c1', { memoryBytes: gib(1) })]),
];
const recommendation = (pool: string, hoursAgo = 1, nodeId = 'x') => ({
  nodeId,
  spotPool: pool,
  kind: 'recommendation' as const,
  at: NOW.getTime() - hoursAgo * HOUR,
});

describe('planRebalance: each policy', () => {
  it.each([
    [
      'consolidate empties the cheapest node to disrupt and lists it releasable',
      ['consolidate'],
      ['c1:c>a:consolidate'],
      ['c'],
    ],
    ['spread has nothing to relieve when no node is above the threshold', ['spread'], [], []],
    ['de-risk has nothing to do without notices', ['de-risk'], [], []],
    ['no policy, no moves', [], [], []],
  ] as const)('%s', (_name, policies, expected, releasable) => {
    const plan = planRebalance(input({ policies: [...policies], nodes: three() }));
    expect(pairs(plan)).toEqual(expected);
    expect(plan.releasable).toEqual(releasable);
  });

  it('consolidate records gain (one node freed, its price saved) and a predicted live downtime', () => {
    const nodes = three().map((n) => (n.id === 'c' ? { ...n, pricePerHour: 0.2 } : n));
    const plan = planRebalance(input({ policies: ['consolidate'], nodes }));
    expect(plan.totals.nodesFreed).toBe(1);
    expect(plan.totals.costPerHourSaved).toBeCloseTo(0.2);
    const m = plan.moves[0]!;
    expect(m.strategy).toBe('stop-and-copy');
    // 1 GiB at 1 GiB/s plus the model's fixed cost: about a second, not a restart.
    expect(m.predictedDowntimeMs).toBeGreaterThan(900);
    expect(m.predictedDowntimeMs).toBeLessThan(1500);
    expect(m.score).toBeGreaterThan(1);
  });

  it('consolidate moves nothing of a node it cannot empty completely', () => {
    const nodes = [
      node('a', 24, [w('a1', { memoryBytes: gib(24) })]),
      node('b', 24, [w('b1', { memoryBytes: gib(24) })]),
    ];
    const plan = planRebalance(input({ policies: ['consolidate'], nodes }));
    expect(plan.moves).toEqual([]);
    expect(plan.skipped.map((s) => s.nodeId)).toEqual(['a', 'b']);
    expect(plan.skipped[0]!.reason).toContain('nowhere to go');
  });

  it('consolidate empties at most maxNodesPerPlan nodes, and never into a node it empties', () => {
    const nodes = [node('a', 2, [w('a1')]), node('b', 2, [w('b1')]), node('c', 2, [w('c1')])];
    const one = planRebalance(input({ policies: ['consolidate'], nodes }));
    expect(one.releasable).toHaveLength(1);
    const two = planRebalance(input({ policies: ['consolidate'], nodes, consolidate: { maxNodesPerPlan: 2 } }));
    expect(two.releasable).toHaveLength(2);
    const targets = new Set(two.moves.map((m) => m.toNodeId));
    for (const r of two.releasable) expect(targets.has(r)).toBe(false);
  });

  it('spread sheds the least valuable, largest first, down to the target, with the relief as gain', () => {
    const full = node('f', 30, [
      w('crit', { priority: 10, memoryBytes: gib(10) }),
      w('batch-a', { priority: 1, memoryBytes: gib(3) }),
      w('batch-b', { priority: 1, memoryBytes: gib(2) }),
      w('web', { priority: 5, memoryBytes: gib(8) }),
    ]);
    const plan = planRebalance(input({ policies: ['spread'], nodes: [full, node('e', 2)] }));
    expect(pairs(plan)).toEqual(['batch-a:f>e:spread', 'batch-b:f>e:spread']);
    expect(plan.moves[0]!.gain.relief).toBeCloseTo(3 / 32);
  });

  it('spread relieves a CPU-bound node', () => {
    const hot = node('h', 4, [w('h1'), w('h2'), w('h3'), w('h4')], { cpuCount: 2, cpuLoad: 4 });
    const plan = planRebalance(input({ policies: ['spread'], nodes: [hot, node('e', 2)] }));
    expect(plan.moves.length).toBeGreaterThan(0);
    expect(plan.moves[0]!.reason).toContain('CPU-bound');
  });

  it('de-risk moves off a pool with a recent recommendation, most valuable first, to a pool with a better record', () => {
    const nodes = [
      node('r', 4, [w('lo', { priority: 2 }), w('hi', { priority: 9 })], { spotPool: 'hot' }),
      node('r2', 0, [], { spotPool: 'hot' }),
      node('s', 4, [], { spotPool: 'cold' }),
    ];
    // The pool's one recommendation (0.5) makes r2 no source; r itself was named (0.5 + 0.5 = 1).
    const plan = planRebalance(input({ policies: ['de-risk'], nodes, notices: [recommendation('hot', 1, 'r')] }));
    expect(pairs(plan)).toEqual(['hi:r>s:de-risk', 'lo:r>s:de-risk']);
    expect(plan.moves[0]!.gain.riskRemoved).toBeCloseTo(0.9);
    expect(plan.moves[0]!.score).toBeGreaterThan(1);
    expect(plan.moves[0]!.reason).toContain('spot pool hot');
  });

  it('de-risk ignores notices older than the window and prefers on-demand nodes (no risk)', () => {
    const nodes = [
      node('r', 4, [w('x', { priority: 9 })], { spotPool: 'hot' }),
      node('od', 4, [], { lifecycle: 'on-demand' }),
    ];
    const old = planRebalance(input({ policies: ['de-risk'], nodes, notices: [recommendation('hot', 24 * 8, 'r')] }));
    expect(old.moves).toEqual([]);
    const fresh = planRebalance(input({ policies: ['de-risk'], nodes, notices: [recommendation('hot', 1, 'r')] }));
    expect(pairs(fresh)).toEqual(['x:r>od:de-risk']);
  });
});

describe('planRebalance: combinations', () => {
  it('de-risk then consolidate: a node a move landed on is not emptied, a workload moves once', () => {
    const nodes = [
      node('a', 8, [w('a1', { memoryBytes: gib(4) }), w('a2', { memoryBytes: gib(4) })], { spotPool: 'hot' }),
      node('b', 8, [w('b1', { memoryBytes: gib(4) })], { spotPool: 'cold' }),
      node('c', 1, [w('c1', { memoryBytes: gib(1) })], { spotPool: 'cold' }),
    ];
    const plan = planRebalance(
      input({
        policies: ['consolidate', 'de-risk'],
        nodes,
        notices: [recommendation('hot', 1, 'a'), recommendation('hot', 2, 'a')],
      }),
    );
    const ids = plan.moves.map((m) => m.workloadId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(
      plan.moves
        .filter((m) => m.policy === 'de-risk')
        .map((m) => m.workloadId)
        .sort(),
    ).toEqual(['a1', 'a2']);
    const landed = new Set(plan.moves.filter((m) => m.policy === 'de-risk').map((m) => m.toNodeId));
    for (const r of plan.releasable) expect(landed.has(r)).toBe(false);
    // Consolidation never moves into the risky pool either.
    expect(plan.moves.filter((m) => m.policy === 'consolidate').every((m) => m.toNodeId !== 'a')).toBe(true);
  });

  it('never a target: draining, terminating, under notice, failed criu check', () => {
    const nodes = [
      node('c', 1, [w('c1')]),
      node('d', 0, [], { state: 'draining' }),
      node('t', 0, [], { state: 'terminating' }),
      node('n', 0, [], { underNotice: true }),
      node('k', 0, [], { criuOk: false }),
    ];
    const plan = planRebalance(input({ policies: ['consolidate', 'spread', 'de-risk'], nodes }));
    expect(plan.moves).toEqual([]);
    expect(plan.releasable).toEqual([]);
  });

  it('a node under notice is never a source either', () => {
    const nodes = [node('c', 1, [w('c1')], { underNotice: true, spotPool: 'hot' }), node('a', 2)];
    const plan = planRebalance(
      input({ policies: ['consolidate', 'de-risk'], nodes, notices: [recommendation('hot')] }),
    );
    expect(plan.moves).toEqual([]);
  });
});

describe('planRebalance: constraints and the score', () => {
  it('movable: false keeps a workload, and so its whole node, where it is', () => {
    const nodes = three().map((n) =>
      n.id === 'c' ? { ...n, workloads: [w('c1', { movable: false, memoryBytes: gib(1) })] } : n,
    );
    const plan = planRebalance(input({ policies: ['consolidate'], nodes }));
    expect(plan.moves.some((m) => m.fromNodeId === 'c')).toBe(false);
    expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain('movable: false');
  });

  it('maxDowntimeMs: a move predicted above it is never proposed', () => {
    const nodes = three().map((n) =>
      n.id === 'c' ? { ...n, workloads: [w('c1', { memoryBytes: gib(1), maxDowntimeMs: 200 })] } : n,
    );
    const plan = planRebalance(input({ policies: ['consolidate'], nodes }));
    expect(plan.moves.some((m) => m.workloadId === 'c1')).toBe(false);
    expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain('exceeds its maxDowntimeMs 200');
    const roomy = three().map((n) =>
      n.id === 'c' ? { ...n, workloads: [w('c1', { memoryBytes: gib(1), maxDowntimeMs: 5000 })] } : n,
    );
    expect(pairs(planRebalance(input({ policies: ['consolidate'], nodes: roomy })))).toEqual(['c1:c>a:consolidate']);
  });

  it.each([
    [1, 1],
    [10, 1],
    [20, 0],
  ])('threshold %d: a node whose emptying scores ~13 is proposed %d time(s)', (threshold, count) => {
    const plan = planRebalance(input({ policies: ['consolidate'], nodes: three(), scoreThreshold: threshold }));
    expect(plan.releasable.filter((r) => r === 'c')).toHaveLength(count);
    if (!count) expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toMatch(/scores 13\.\d+ < threshold 20/);
  });

  it('a restart-priced move scores far lower than a live one (the benchmark baseline)', () => {
    const restart = () => ({ strategy: 'restart' as const, downtimeSeconds: 60, totalSeconds: 60 });
    const plan = planRebalance(input({ policies: ['consolidate'], nodes: three(), predict: restart }));
    expect(plan.moves).toEqual([]);
    expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain(
      `scores ${(100 / (60 * 5 + 2)).toFixed(2)} < threshold 1`,
    );
  });
});

describe('budgets and windows (fixed clock)', () => {
  const win = (cron: string, durationSeconds: number, kind: 'allow' | 'forbid') => ({ cron, durationSeconds, kind });

  it.each([
    ['inside a daily 2 h window from 11:00', win('0 11 * * *', 7200, 'allow'), true],
    ['after a daily 30 min window from 11:00', win('0 11 * * *', 1800, 'allow'), false],
    ['a window starting exactly now', win('0 12 * * *', 60, 'allow'), true],
    ['a weekend window on a Wednesday', win('0 0 * * 6', 2 * 86_400, 'allow'), false],
  ])('inWindow: %s', (_n, window, expected) => {
    expect(inWindow(window, NOW)).toBe(expected);
  });

  it('windowVerdict: forbid beats allow; with allow windows only inside one', () => {
    expect(windowVerdict([win('0 11 * * *', 7200, 'allow')], NOW)).toBeUndefined();
    expect(windowVerdict([win('0 11 * * *', 7200, 'allow'), win('30 11 * * *', 3600, 'forbid')], NOW)).toContain(
      'forbidden',
    );
    expect(windowVerdict([win('0 2 * * *', 3600, 'allow')], NOW)).toContain('outside every allowed window');
  });

  it('cronProblem names a bad expression and accepts a good one', () => {
    expect(cronProblem('0 2 * * *')).toBeUndefined();
    expect(cronProblem('every night')).toBeDefined();
  });

  it('startVerdict: moves per hour and moves at once', () => {
    const h = [1, 2, 3].map((i) => ({ workloadId: `w${i}`, at: NOW.getTime() - i * 60_000 }));
    const b = { ...open, maxMovesPerHour: 4, maxConcurrentMoves: 1 };
    expect(startVerdict(b, h, NOW)).toBeUndefined();
    expect(startVerdict(b, h, NOW, 1)).toContain('4 move(s) in the last hour');
    expect(startVerdict(b, [], NOW, 0, 1)).toContain('1 move(s) running');
    // An hour later the old moves no longer count.
    expect(startVerdict(b, h, new Date(NOW.getTime() + HOUR), 1)).toBeUndefined();
  });

  it('a closed window defers every move, with the reason, and proposes none', () => {
    const plan = planRebalance(
      input({
        policies: ['consolidate'],
        nodes: three(),
        budgets: { ...open, windows: [win('0 2 * * *', 3600, 'allow')] },
      }),
    );
    expect(plan.moves).toEqual([]);
    expect(plan.skipped.find((s) => s.nodeId === 'c')).toMatchObject({ deferred: true });
    expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain('outside every allowed window');
  });

  it('moves per hour: a consolidation that would overrun the hour is deferred whole', () => {
    const nodes = [
      node('a', 8, [w('a1'), w('a2')]),
      node('b', 8, [w('b1'), w('b2')]),
      node('c', 2, [w('c1'), w('c2')]),
    ];
    const history = [{ workloadId: 'old', at: NOW.getTime() - 10 * 60_000 }];
    const plan = planRebalance(
      input({ policies: ['consolidate'], nodes, history, budgets: { ...open, maxMovesPerHour: 2 } }),
    );
    expect(plan.moves).toEqual([]);
    expect(plan.skipped.every((s) => s.deferred)).toBe(true);
  });

  it('the minimum interval holds back a workload that moved recently', () => {
    const history = [{ workloadId: 'c1', at: NOW.getTime() - 5 * 60_000 }];
    const plan = planRebalance(
      input({ policies: ['consolidate'], nodes: three(), history, budgets: { ...open, minMoveIntervalSeconds: 3600 } }),
    );
    expect(plan.moves.some((m) => m.workloadId === 'c1')).toBe(false);
    expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain('moved 300.00 s ago');
  });

  it('spread admits moves up to the hourly budget and defers the rest', () => {
    const full = node('f', 31, [
      w('x1', { memoryBytes: gib(4) }),
      w('x2', { memoryBytes: gib(4) }),
      w('x3', { memoryBytes: gib(4) }),
    ]);
    const plan = planRebalance(
      input({
        policies: ['spread'],
        nodes: [full, node('e', 0)],
        budgets: { ...open, maxMovesPerHour: 1 },
        spread: { targetFraction: 0.5 },
      }),
    );
    expect(plan.moves).toHaveLength(1);
    expect(plan.skipped.filter((s) => s.deferred).length).toBeGreaterThan(0);
  });

  it("the predicted downtime follows the pair's measured bandwidth", () => {
    const c = node('c', 1, [w('c1', { memoryBytes: mib(64), dirtyRateBytesPerSec: mib(1) })]);
    const a1 = [w('a1', { memoryBytes: gib(4) })];
    const fast = planRebalance(input({ policies: ['consolidate'], nodes: [node('a', 4, a1), c] }));
    const slow = planRebalance(
      input({ policies: ['consolidate'], nodes: [node('a', 4, a1, { bandwidthFromSourceBytesPerSec: mib(64) }), c] }),
    );
    // 64 MiB over the pair's 1 GiB/s vs 64 MiB/s, plus the model's fixed 0.1 s.
    expect(fast.moves[0]!.predictedDowntimeMs).toBe(163);
    expect(slow.moves[0]!.predictedDowntimeMs).toBe(1100);
  });
});

describe('planRebalance: measured bandwidth per pair', () => {
  const small = () => node('c', 1, [w('c1', { memoryBytes: mib(64), dirtyRateBytesPerSec: mib(1) })]);
  const twin = (id: string) => node(id, 4, [w(`${id}1`, { memoryBytes: gib(4) })]);

  it.each([
    ['no measurement: the fleet figure, ties by id', undefined, ['c1:c>a:consolidate'], 163],
    [
      'c to a measured slow: the move goes to b, at the fleet figure',
      { c: { a: mib(16) } },
      ['c1:c>b:consolidate'],
      163,
    ],
    [
      'c to b measured fast too: b, predicted on its own pair',
      { c: { a: mib(16), b: gib(2) } },
      ['c1:c>b:consolidate'],
      131,
    ],
    ['a pair measured the other way (a to c) does not count', { a: { c: mib(16) } }, ['c1:c>a:consolidate'], 163],
  ] as const)('%s', (_name, pairBandwidth, expected, downtimeMs) => {
    const plan = planRebalance(
      input({
        policies: ['consolidate'],
        nodes: [twin('a'), twin('b'), small()],
        ...(pairBandwidth ? { pairBandwidth } : {}),
      }),
    );
    expect(pairs(plan)).toEqual(expected);
    expect(plan.moves[0]!.predictedDowntimeMs).toBe(downtimeMs);
  });

  it("a slow measured pair puts a move past the workload's maxDowntimeMs: not proposed, the plan changes", () => {
    const c = node('c', 1, [w('c1', { memoryBytes: mib(64), dirtyRateBytesPerSec: mib(1), maxDowntimeMs: 500 })]);
    const nodes = [twin('a'), c];
    expect(pairs(planRebalance(input({ policies: ['consolidate'], nodes })))).toEqual(['c1:c>a:consolidate']);
    const slow = planRebalance(input({ policies: ['consolidate'], nodes, pairBandwidth: { c: { a: mib(64) } } }));
    // c stays (its one way out is too slow for c1); a, the other node, is emptied into it instead.
    expect(pairs(slow)).toEqual(['a1:a>c:consolidate']);
    expect(slow.skipped.find((x) => x.nodeId === 'c')!.reason).toMatch(/exceeds its maxDowntimeMs 500/);
  });
});

describe('planRebalance: post-copy trials per pair', () => {
  // 4 GiB dirtied faster than 1 GiB/s sends it: pre-copy cannot converge, stop-and-copy freezes ~4 s. c (16 GiB)
  // has no room for a's 16 GiB: c is the node to empty, into a.
  const small = { memoryCapacityBytes: gib(16), freeMemoryBytes: gib(12) };
  const hot = (over: Partial<RebalanceWorkload> = {}) =>
    node('c', 4, [w('c1', { memoryBytes: gib(4), dirtyRateBytesPerSec: gib(2), ...over })], small);
  const twin = (id: string) => node(id, 16, [w(`${id}1`, { memoryBytes: gib(16) })]);

  it.each([
    ['no trial anywhere: untested, no post-copy', undefined, 'stop-and-copy'],
    ['the pair c to a passed: post-copy, a short freeze', { c: { a: 'ok' } }, 'post-copy'],
    ['the pair c to a failed: no post-copy', { c: { a: 'failed' } }, 'stop-and-copy'],
    ['only the other way (a to c) passed: c to a stays untested', { a: { c: 'ok' } }, 'stop-and-copy'],
    ['another pair from c passed (c to b): not this one', { c: { b: 'ok' } }, 'stop-and-copy'],
  ] as const)('%s', (_name, pairPostCopyTrial, strategy) => {
    const plan = planRebalance(
      input({
        policies: ['consolidate'],
        nodes: [twin('a'), hot()],
        defaultDowntimeBudgetSeconds: 1,
        ...(pairPostCopyTrial ? { pairPostCopyTrial } : {}),
      }),
    );
    expect(pairs(plan)).toEqual(['c1:c>a:consolidate']);
    expect(plan.moves[0]!.strategy).toBe(strategy);
    if (strategy === 'post-copy') expect(plan.moves[0]!.predictedDowntimeMs).toBeLessThan(1000);
    else expect(plan.moves[0]!.predictedDowntimeMs).toBeGreaterThan(4000);
  });

  it("a pair's passed trial keeps a move under maxDowntimeMs that stop-and-copy would break", () => {
    const nodes = [twin('a'), hot({ maxDowntimeMs: 1000 })];
    expect(planRebalance(input({ policies: ['consolidate'], nodes })).moves).toEqual([]);
    const tried = planRebalance(input({ policies: ['consolidate'], nodes, pairPostCopyTrial: { c: { a: 'ok' } } }));
    expect(pairs(tried)).toEqual(['c1:c>a:consolidate']);
  });
});

describe('planRebalance: moves leaving one node at once, from its measured outbound rate', () => {
  // a carries four workloads that only fit on e together (de-risk sends them all off a's pool).
  const source = () =>
    node(
      'a',
      8,
      ['a1', 'a2', 'a3', 'a4'].map((id) => w(id, { memoryBytes: gib(2), priority: 8 })),
    );
  const notices = [recommendation('pool-a', 1, 'a'), recommendation('pool-a', 1, 'a')];
  it.each([
    ['no measured outbound: no cap (the budgets alone)', undefined, undefined, {}],
    ['700 MiB/s out of a, one move gets 350 (fleet figure): two at once', { a: mib(700) }, undefined, { a: 2 }],
    ['the same total, one move measured at 700 to e: one at once', { a: mib(700) }, { a: { e: mib(700) } }, { a: 1 }],
    ['a measured figure below one move rounds up to one', { a: mib(100) }, undefined, { a: 1 }],
    ['a figure for another node caps nothing here', { b: mib(100) }, undefined, {}],
  ] as const)('%s', (_name, nodeOutbound, pairBandwidth, expected) => {
    const plan = planRebalance(
      input({
        policies: ['de-risk'],
        nodes: [source(), node('e', 0, [], { lifecycle: 'on-demand' })],
        notices,
        bandwidthBytesPerSec: mib(350),
        ...(nodeOutbound ? { nodeOutbound } : {}),
        ...(pairBandwidth ? { pairBandwidth } : {}),
      }),
    );
    expect(plan.moves.map((m) => m.fromNodeId)).toEqual(['a', 'a', 'a', 'a']);
    expect(plan.maxMovesFrom).toEqual(expected);
  });
});

describe('planRebalance: never packs a node beyond what leaves within its notice', () => {
  // 500 MiB/s out, 5 s margin, 1.5 s per wave of four: a 30 s notice lets ~11.75 GiB leave, a 120 s one ~56 GiB.
  const evacuation = {
    safetyMarginSeconds: 5,
    perMigrationOverheadSeconds: 1.5,
    maxParallel: 4,
    sourceBandwidthBytesPerSec: mib(500),
  };
  const big = (id: string, gb: number) => w(id, { memoryBytes: gib(gb) });
  const fleet = (aNotice: number, bNotice: number) => [
    node('a', 11, [big('a1', 11)], { noticeSeconds: aNotice }),
    node('b', 10, [big('b1', 10)], { noticeSeconds: bNotice }),
    node('c', 2, [big('c1', 2)], { noticeSeconds: 30 }),
  ];
  it.each([
    ['without a model it packs the fullest node', false, 30, 30, ['c1:c>a:consolidate']],
    ['a 30 s node at 11 GiB takes no 2 GiB more: the 120 s one (10 GiB) does', true, 30, 120, ['c1:c>b:consolidate']],
    ['two 120 s nodes: packing as before', true, 120, 120, ['c1:c>a:consolidate']],
    ['two 30 s nodes near their limit: nothing moves', true, 30, 30, []],
  ] as const)('%s', (_name, withModel, aNotice, bNotice, expected) => {
    const plan = planRebalance(
      input({ policies: ['consolidate'], nodes: fleet(aNotice, bNotice), ...(withModel ? { evacuation } : {}) }),
    );
    expect(pairs(plan)).toEqual(expected);
    if (!expected.length) expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain('nowhere to go');
  });

  it('a node is not emptied when the room it takes away leaves another unable to evacuate', () => {
    // a (120 s) carries 20 GiB: in time for its link, but only c's free memory could receive it.
    const nodes = [
      node('a', 20, [big('a1', 10), big('a2', 10)], { noticeSeconds: 120 }),
      node('b', 31, [big('b1', 31)], { lifecycle: 'on-demand' }),
      node('c', 1, [big('c1', 1)], { lifecycle: 'on-demand' }),
    ];
    const plan = planRebalance(input({ policies: ['consolidate'], nodes, evacuation }));
    expect(plan.moves).toEqual([]);
    expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toMatch(
      /leave a unable to evacuate.*could not be received/,
    );
    // Without a notice on a nothing holds c's emptying back.
    const calm = nodes.map((n) => (n.id === 'a' ? { ...n, noticeSeconds: undefined } : n));
    expect(pairs(planRebalance(input({ policies: ['consolidate'], nodes: calm, evacuation })))).toEqual([
      'c1:c>a:consolidate',
    ]);
  });

  it.each([
    ['a 30 s node that refilled to 20 GiB sheds down to what leaves in time', 30, 2],
    ['the same on a 120 s node is fine', 120, 0],
  ] as const)('spread: %s', (_name, notice, expectedMoves) => {
    const nodes = [
      node('f', 20, [big('f1', 5), big('f2', 5), big('f3', 5), big('f4', 5)], { noticeSeconds: notice }),
      node('e', 0, [], { lifecycle: 'on-demand' }),
    ];
    const plan = planRebalance(input({ policies: ['spread'], nodes, evacuation }));
    expect(plan.moves).toHaveLength(expectedMoves);
    for (const m of plan.moves) expect(m.reason).toContain('could not be evacuated in time');
  });
});

describe('planRebalance: the notice reserve sized per pool', () => {
  // 30 s notice, 500 MiB/s, one wave: 11.75 GiB leave in time, 9.03 GiB with a 20 % reserve, 10.5 GiB with 10 %.
  const evacuation = {
    safetyMarginSeconds: 5,
    perMigrationOverheadSeconds: 1.5,
    maxParallel: 4,
    sourceBandwidthBytesPerSec: mib(500),
    reserveFraction: 0.2,
  };
  const nodes = [
    node('a', 8.5, [w('a1', { memoryBytes: gib(8.5) })], { noticeSeconds: 30 }),
    // Empty and on-demand: releasable, never a consolidation's target, but room an evacuation of a could use.
    node('b', 0, [], { lifecycle: 'on-demand' }),
    // Too small to take a's 8.5 GiB: c is the one to empty, into a or nowhere.
    node('c', 2.5, [w('c1', { memoryBytes: gib(2.5) })], {
      noticeSeconds: 120,
      memoryCapacityBytes: gib(8),
      freeMemoryBytes: gib(5.5),
    }),
  ];
  const interruption = (pool: string, nodeId: string, hoursAgo = 48) => ({
    nodeId,
    spotPool: pool,
    kind: 'interruption' as const,
    at: NOW.getTime() - hoursAgo * HOUR,
  });
  // Two interruptions in a's pool over a, x and y for a week: 2 / 21 = 0.095 notices per node-day.
  const hot = [interruption('pool-a', 'x'), interruption('pool-a', 'y')];
  it.each([
    ['one reserve for every pool: a keeps 20 % of its notice, c stays', undefined, [], []],
    ["a's pool saw no notice this week: a packs up to its notice", 0.2, [], ['c1:c>a:consolidate']],
    ["a's pool is hot (0.095 per node-day, full from 0.05): the whole reserve", 0.05, hot, []],
    ['half way to the full rate: 10 % kept, 11 GiB still too much', 0.19, hot, []],
    ['notices older than the week do not count', 0.05, [interruption('pool-a', 'x', 8 * 24)], ['c1:c>a:consolidate']],
    ["notices on another pool do not count for a's", 0.05, [interruption('pool-c', 'x')], ['c1:c>a:consolidate']],
  ] as const)('%s', (_name, fullAtPerNodeDay, notices, expected) => {
    const plan = planRebalance(
      input({
        policies: ['consolidate'],
        nodes,
        evacuation,
        notices: [...notices],
        // De-risk's window is an hour: a's pool is never avoided as risky here, only its reserve changes.
        riskWindowSeconds: 3600,
        ...(fullAtPerNodeDay !== undefined ? { poolReserve: { fullAtPerNodeDay } } : {}),
      }),
    );
    expect(pairs(plan)).toEqual(expected);
    if (!expected.length) expect(plan.skipped.find((s) => s.nodeId === 'c')!.reason).toContain('nowhere to go');
  });
});

describe('planRebalance: an empty node stays releasable', () => {
  const evacuation = {
    safetyMarginSeconds: 5,
    perMigrationOverheadSeconds: 1.5,
    maxParallel: 4,
    sourceBandwidthBytesPerSec: mib(500),
  };
  const big = (id: string, gb: number) => w(id, { memoryBytes: gib(gb) });
  it.each([
    ['a node running work has room: spread lands there, not on the empty node', 4, ['f1:f>g:spread', 'f2:f>g:spread']],
    ['only the empty node has room: it takes the moves', 30, ['f1:f>e:spread', 'f2:f>e:spread']],
  ] as const)('spread: %s', (_name, gUsed, expected) => {
    // f, on a 30 s pool, carries more than leaves within its notice; e runs nothing; g runs one workload.
    const nodes = [
      node('e', 0, [], { lifecycle: 'on-demand' }),
      node('f', 20, [big('f1', 5), big('f2', 5), big('f3', 5), big('f4', 5)], { noticeSeconds: 30 }),
      node('g', gUsed, [big('g1', gUsed)], { lifecycle: 'on-demand' }),
    ];
    expect(pairs(planRebalance(input({ policies: ['spread'], nodes, evacuation })))).toEqual(expected);
  });

  it.each([
    ['the only room is on an empty node: nothing moves (it would trade one node for another)', false, [], ['e']],
    ['a node running work has room: the workload goes there', true, ['a1:a>b:consolidate'], ['e', 'a']],
  ] as const)('consolidate: %s', (_name, withB, expected, releasable) => {
    const nodes = [node('a', 2, [big('a1', 2)]), node('e', 0), ...(withB ? [node('b', 8, [big('b1', 8)])] : [])];
    const plan = planRebalance(input({ policies: ['consolidate'], nodes }));
    expect(pairs(plan)).toEqual(expected);
    expect(plan.releasable).toEqual(releasable);
  });
});

describe('planRebalance: CPU read from the nodes', () => {
  const hot = (shares: number[]) =>
    node(
      'h',
      8,
      shares.map((c, i) => w(`h${i + 1}`, { cpuCores: c })),
      { cpuCount: 4, cpuLoad: shares.reduce((s, c) => s + c, 0) },
    );
  it.each([
    ['one busy workload: only it moves, to the node with CPU to spare', [2.5, 0.5, 0.4, 0.4], ['h1:h>idle:spread']],
    ['equal shares: one moves, enough to come under the target (0.8)', [1, 1, 1, 0.9], ['h1:h>idle:spread']],
    ['below the threshold (0.9 of 4 CPUs): nothing', [1.5, 1.0, 0.5, 0.5], []],
  ] as const)('spread: %s', (_name, shares, expected) => {
    const nodes = [
      hot([...shares]),
      node('busy', 2, [], { cpuCount: 4, cpuLoad: 3 }),
      node('idle', 2, [], { cpuCount: 4, cpuLoad: 0.2 }),
    ];
    const plan = planRebalance(input({ policies: ['spread'], nodes }));
    expect(pairs(plan)).toEqual(expected);
    for (const m of plan.moves) expect(m.reason).toContain('CPU-bound');
  });

  it('a memory spread move does not land on a node it would push past the CPU target', () => {
    const full = node('f', 30, [w('f1', { memoryBytes: gib(6), cpuCores: 2 })]);
    const nodes = [
      full,
      node('hot', 2, [], { cpuCount: 4, cpuLoad: 2 }),
      node('cool', 8, [], { cpuCount: 4, cpuLoad: 0 }),
    ];
    expect(pairs(planRebalance(input({ policies: ['spread'], nodes })))).toEqual(['f1:f>cool:spread']);
  });
});
