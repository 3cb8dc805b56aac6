import { chooseDestination, cpuCompatible, requiredMemoryBytes, type ExclusionCode } from './choose-destination.js';
import { candidate, gib, sourceNode, workload } from './fixtures.js';
import type { CandidateNode, PlacementWorkload } from './types.js';

describe('chooseDestination: hard filters', () => {
  const cases: Array<{ name: string; node: CandidateNode; w?: PlacementWorkload; code: ExclusionCode }> = [
    { name: 'the source itself', node: candidate('src'), code: 'is-source' },
    {
      name: 'a terminating node, however roomy',
      node: candidate('t', { state: 'terminating', freeMemoryBytes: gib(512) }),
      code: 'terminating',
    },
    { name: 'a draining node', node: candidate('d', { state: 'draining' }), code: 'not-ready' },
    { name: 'an unreachable node', node: candidate('u', { state: 'unreachable' }), code: 'not-ready' },
    { name: 'broken CRIU', node: candidate('c', { criuOk: false }), code: 'criu-unavailable' },
    { name: 'too little memory', node: candidate('m', { freeMemoryBytes: gib(1) }), code: 'insufficient-memory' },
    {
      name: 'memory reserved by in-flight migrations',
      node: candidate('r', { freeMemoryBytes: gib(4), reservedMemoryBytes: gib(3) }),
      code: 'insufficient-memory',
    },
    {
      name: 'a CPU without avx2',
      node: candidate('x', { cpu: { flags: ['sse4_2', 'avx', 'aes'] } }),
      code: 'cpu-incompatible',
    },
    { name: 'a CPU of unknown compatibility', node: candidate('q', { cpu: {} }), code: 'cpu-incompatible' },
    {
      name: 'a missing required label',
      node: candidate('l', { labels: { gpu: 'no' } }),
      w: workload('w', { requiredLabels: { gpu: 'yes' } }),
      code: 'missing-label',
    },
    {
      name: 'the same anti-affinity group',
      node: candidate('g', { antiAffinityGroups: ['db'] }),
      w: workload('w', { antiAffinityGroup: 'db' }),
      code: 'anti-affinity',
    },
  ];
  it.each(cases)('excludes $name', ({ node, w, code }) => {
    const d = chooseDestination(w ?? workload('w'), sourceNode(), [node]);
    expect(d.ok).toBe(false);
    expect(d.excluded[0]?.reasons.map((r) => r.code)).toContain(code);
    expect(d.ok ? '' : d.reason).toContain(node.id);
  });

  it('lists every reason for every candidate when nothing fits', () => {
    const d = chooseDestination(workload('w', { memoryBytes: gib(8) }), sourceNode(), [
      candidate('a', { state: 'terminating', freeMemoryBytes: gib(2) }),
      candidate('b', { criuOk: false }),
    ]);
    expect(d.ok).toBe(false);
    expect(d.excluded).toEqual([
      {
        nodeId: 'a',
        reasons: [
          expect.objectContaining({ code: 'terminating' }),
          expect.objectContaining({ code: 'insufficient-memory' }),
        ],
      },
      { nodeId: 'b', reasons: [expect.objectContaining({ code: 'criu-unavailable' })] },
    ]);
  });

  it('accepts an unverified CPU only when asked to, and honours excluded nodes and avoided pools', () => {
    const q = candidate('q', { cpu: {} });
    expect(chooseDestination(workload('w'), sourceNode(), [q], { allowUnverifiedCpu: true }).ok).toBe(true);
    expect(chooseDestination(workload('w'), sourceNode(), [candidate('a')], { excludeNodeIds: ['a'] }).ok).toBe(false);
    expect(chooseDestination(workload('w'), sourceNode(), [candidate('a')], { avoidSpotPools: ['pool-2'] }).ok).toBe(
      false,
    );
  });

  it('checks CPU flags as a superset, then the model', () => {
    expect(cpuCompatible({ flags: ['a'] }, { flags: ['a', 'b'] })).toBe(true);
    expect(cpuCompatible({ flags: ['a', 'c'] }, { flags: ['a', 'b'] })).toBe(false);
    expect(cpuCompatible({ model: 'EPYC 7B13' }, { model: 'EPYC 7B13' })).toBe(true);
    expect(cpuCompatible({ model: 'EPYC 7B13' }, { model: 'Xeon 8375C' })).toBe(false);
    expect(cpuCompatible({}, { model: 'x' })).toBeUndefined();
  });

  it('needs the memory plus headroom', () => {
    expect(requiredMemoryBytes(gib(1))).toBe(Math.ceil(gib(1.1) + 128 * 1024 * 1024));
    const exact = candidate('e', { freeMemoryBytes: requiredMemoryBytes(gib(1)) });
    expect(chooseDestination(workload('w'), sourceNode(), [exact]).ok).toBe(true);
  });
});

describe('chooseDestination: soft scores', () => {
  const cases: Array<{ name: string; w?: PlacementWorkload; nodes: CandidateNode[]; want: string }> = [
    { name: 'same zone preferred', nodes: [candidate('a', { zone: 'zone-b' }), candidate('b')], want: 'b' },
    { name: 'same spot pool avoided', nodes: [candidate('a', { spotPool: 'pool-1' }), candidate('b')], want: 'b' },
    {
      name: 'on-demand for a critical workload',
      w: workload('w', { priority: 9 }),
      nodes: [candidate('a'), candidate('z', { lifecycle: 'on-demand', spotPool: undefined })],
      want: 'z',
    },
    {
      name: 'no on-demand preference for a low-priority workload (tie goes to the lower id)',
      w: workload('w', { priority: 2 }),
      nodes: [candidate('z', { lifecycle: 'on-demand', spotPool: undefined }), candidate('a')],
      want: 'a',
    },
    {
      name: 'more free memory',
      nodes: [candidate('a', { freeMemoryBytes: gib(8) }), candidate('b', { freeMemoryBytes: gib(64) })],
      want: 'b',
    },
    {
      name: 'higher bandwidth',
      nodes: [
        candidate('a', { bandwidthFromSourceBytesPerSec: gib(0.25) }),
        candidate('b', { bandwidthFromSourceBytesPerSec: gib(1.2) }),
      ],
      want: 'b',
    },
    {
      name: 'deterministic tie-break by node id',
      nodes: [candidate('n2'), candidate('n1'), candidate('n3')],
      want: 'n1',
    },
    {
      name: 'zone outweighs a little more memory',
      nodes: [
        candidate('far', { zone: 'zone-c', freeMemoryBytes: gib(40) }),
        candidate('near', { freeMemoryBytes: gib(30) }),
      ],
      want: 'near',
    },
  ];
  it.each(cases)('$name', ({ w, nodes, want }) => {
    const d = chooseDestination(w ?? workload('w'), sourceNode(), nodes);
    expect(d.ok && d.nodeId).toBe(want);
    if (d.ok) {
      expect(d.reason).toContain(want);
      const s = d.score;
      expect(s.total).toBeCloseTo(s.zone + s.spotPool + s.lifecycle + s.memory + s.bandwidth);
      expect(d.ranked.map((r) => r.nodeId)).toHaveLength(nodes.length);
    }
  });

  it('says when the chosen node shares the source spot pool', () => {
    const d = chooseDestination(workload('w'), sourceNode(), [candidate('only', { spotPool: 'pool-1' })]);
    expect(d.ok && d.reason).toContain('SAME spot pool');
  });
});

describe('chooseDestination: releasable nodes (emptied by rebalancing) only when nothing else fits', () => {
  const src = sourceNode();
  it.each([
    [
      'the roomier releasable node loses to any other that fits',
      [
        candidate('rel', { freeMemoryBytes: gib(64), releasable: true }),
        candidate('other', { freeMemoryBytes: gib(8) }),
      ],
      'other',
    ],
    [
      'nothing else fits: the releasable node, saying so',
      [
        candidate('rel', { freeMemoryBytes: gib(64), releasable: true }),
        candidate('small', { freeMemoryBytes: gib(1) }),
      ],
      'rel',
    ],
    [
      'two releasable nodes only: the better of them',
      [
        candidate('rel-a', { freeMemoryBytes: gib(8), releasable: true }),
        candidate('rel-b', { freeMemoryBytes: gib(64), releasable: true }),
      ],
      'rel-b',
    ],
  ] as const)('%s', (_name, nodes, expected) => {
    const d = chooseDestination(workload('w', { memoryBytes: gib(4) }), src, nodes);
    expect(d.ok && d.nodeId).toBe(expected);
    expect(d.reason.includes('releasable, but no other node fits')).toBe(expected.startsWith('rel'));
  });
});
