/** Incremental guard dumps: when the next one may build on the last (tables), and retention keeping chains whole. */
import type { CheckpointRecord, GuardChainLink } from './checkpoint.js';
import { guardRetention } from './guard.js';
import { guardChain, guardChildOf, planGuardDump, type GuardDumpInput } from './guard-chain.js';

const T0 = Date.parse('2026-12-06T12:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

function cp(id: string, t: number, link?: GuardChainLink, over: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id,
    mode: 'guard',
    workloadId: 'w1',
    sourceNodeId: 'node-a',
    storageNodeId: 'node-c',
    imageDir: `/var/lib/spotlift/checkpoints/w1/${id}`,
    state: 'stored',
    phases: [],
    criu: {},
    bytes: { pages: 0, images: 0 },
    tree: [4242],
    createdAt: at(t),
    updatedAt: at(t + 1),
    ...(link ? { guardChain: link } : {}),
    ...over,
  };
}

const FULL: GuardChainLink = { depth: 1, trackMem: true };
const base: GuardDumpInput = {
  checkpoints: [],
  nodeId: 'node-a',
  pid: 4242,
  storageNodeId: 'node-c',
  memDirtyTrack: true,
  maxChain: 3,
};

describe('planGuardDump', () => {
  const incremental: [string, Partial<GuardDumpInput>, string, number][] = [
    ['after a tracked full dump', { checkpoints: [cp('g1', 0, FULL)] }, 'g1', 2],
    [
      'on the newest of a chain, queued ones ignored',
      {
        checkpoints: [
          cp('g1', 0, FULL),
          cp('g2', 10, { parentId: 'g1', depth: 2, trackMem: true }),
          cp('g0', -10, FULL),
          cp('q', 20, undefined, { state: 'queued' }),
        ],
      },
      'g2',
      3,
    ],
    [
      'a forensic copy in between does not count',
      { checkpoints: [cp('g1', 0, FULL), cp('f', 5, undefined, { mode: 'forensic', state: 'failed' })] },
      'g1',
      2,
    ],
  ];
  it.each(incremental)('incremental %s', (_, over, parentId, depth) => {
    const plan = planGuardDump({ ...base, ...over });
    expect(plan).toMatchObject({ kind: 'incremental', link: { parentId, depth, trackMem: true } });
  });

  const full: [string, Partial<GuardDumpInput>, RegExp, boolean][] = [
    ['no soft-dirty on the node', { memDirtyTrack: false, checkpoints: [cp('g1', 0, FULL)] }, /no soft-dirty/, false],
    ['encrypted at rest', { encrypted: true, checkpoints: [cp('g1', 0, FULL)] }, /encrypted/, false],
    ['a Podman container', { container: true, checkpoints: [cp('g1', 0, FULL)] }, /container/, false],
    ['the first one', {}, /first guard checkpoint/, true],
    [
      'the last one failed (its dump may have reset the dirty bits)',
      { checkpoints: [cp('g1', 0, FULL), cp('g2', 10, undefined, { state: 'failed' })] },
      /g2 is failed: the chain is broken/,
      true,
    ],
    ['the workload moved since', { nodeId: 'node-b', checkpoints: [cp('g1', 0, FULL)] }, /taken on node-a/, true],
    ['another process now', { pid: 77, checkpoints: [cp('g1', 0, FULL)] }, /another process/, true],
    [
      'another storage node',
      { storageNodeId: 'node-d', checkpoints: [cp('g1', 0, FULL)] },
      /storage node node-c/,
      true,
    ],
    [
      'the last one did not track memory (older record, or a node without soft-dirty then)',
      { checkpoints: [cp('g1', 0)] },
      /without --track-mem/,
      true,
    ],
    [
      'the chain is full',
      {
        checkpoints: [
          cp('g1', 0, FULL),
          cp('g2', 10, { parentId: 'g1', depth: 2, trackMem: true }),
          cp('g3', 20, { parentId: 'g2', depth: 3, trackMem: true }),
        ],
      },
      /chain reached 3/,
      true,
    ],
  ];
  it.each(full)('full: %s', (_, over, reason, trackMem) => {
    const plan = planGuardDump({ ...base, ...over });
    expect(plan.kind).toBe('full');
    expect(plan).toMatchObject({ link: { depth: 1, trackMem } });
    expect(plan.kind === 'full' && plan.reason).toMatch(reason);
  });
});

describe('guardChain', () => {
  it('walks from a checkpoint to its full dump, and names a missing parent', () => {
    const all = [
      cp('g1', 0, FULL),
      cp('g2', 10, { parentId: 'g1', depth: 2, trackMem: true }),
      cp('g3', 20, { parentId: 'g2', depth: 3, trackMem: true }),
    ];
    expect(guardChain(all[2]!, all)).toEqual({ ids: ['g3', 'g2', 'g1'] });
    expect(guardChain(all[2]!, [all[0]!, all[2]!])).toEqual({ ids: ['g3'], missing: 'g2' });
    expect(guardChain(all[0]!, all)).toEqual({ ids: ['g1'] });
  });
});

describe('guardRetention with chains', () => {
  const chainOf = (ids: string[], t0: number) =>
    ids.map((id, i) => cp(id, t0 + i * 10, i === 0 ? FULL : { parentId: ids[i - 1]!, depth: i + 1, trackMem: true }));
  const removed = (all: CheckpointRecord[], keep: number) =>
    guardRetention(all, keep)
      .map((c) => c.id)
      .sort();

  it('keeps the parents of the kept ones, removes whole older chains', () => {
    const all = [...chainOf(['a1', 'a2', 'a3'], 0), ...chainOf(['b1', 'b2', 'b3'], 100)];
    // keep 2: b3, b2 and the full b1 they build on stay; the a chain goes whole
    expect(removed(all, 2)).toEqual(['a1', 'a2', 'a3']);
    // keep 1 alone still keeps b3's chain
    expect(removed(all, 1)).toEqual(['a1', 'a2', 'a3']);
    // keep 4: b3 b2 b1 a3 kept, so a2 and a1 are needed too
    expect(removed(all, 4)).toEqual([]);
  });

  it('removes a chain children first (a parent is never removed while its child is stored)', () => {
    const all = [...chainOf(['a1', 'a2', 'a3'], 0), ...chainOf(['b1'], 100)];
    const order = guardRetention(all, 1).map((c) => c.id);
    expect(order).toEqual(['a3', 'a2', 'a1']);
    let left = all;
    for (const id of order) {
      expect(guardChildOf(id, left)).toBeUndefined(); // what DELETE /checkpoints/:id checks
      left = left.filter((c) => c.id !== id);
    }
    expect(guardChildOf('a1', all)?.id).toBe('a2');
    expect(guardChildOf('a2', [...all.filter((c) => c.id !== 'a3'), { ...all[2]!, state: 'failed' }])).toBeUndefined();
  });

  it('keeps what an in-flight dump or a restored checkpoint builds on', () => {
    const all = [
      ...chainOf(['a1', 'a2'], 0),
      cp('a3', 20, { parentId: 'a2', depth: 3, trackMem: true }, { state: 'restored' }),
      ...chainOf(['b1'], 100),
      cp('b2', 110, { parentId: 'b1', depth: 2, trackMem: true }, { state: 'taking' }),
    ];
    expect(removed(all, 1)).toEqual([]);
  });

  it("keeps the chain a short notice's last checkpoint (a storage one) builds on; a failed one holds nothing", () => {
    const last = cp('z', 50, { parentId: 'a2', depth: 3, trackMem: false }, { mode: undefined });
    const all = [...chainOf(['a1', 'a2'], 0), ...chainOf(['b1'], 100)];
    expect(removed([...all, last], 1)).toEqual([]);
    expect(removed([...all, { ...last, state: 'failed' }], 1)).toEqual(['a1', 'a2']);
  });

  it('full dumps without chains: as before, beyond keep', () => {
    const all = [cp('s1', 0), cp('s2', 10), cp('s3', 20)];
    expect(removed(all, 2)).toEqual(['s1']);
  });
});
