import type { CheckpointRecord, CheckpointRestore } from './checkpoint.js';
import { guardCopyOf, guardRestoreStep, lastDumpPlan } from './guard-restore.js';
import type { WorkloadRecord } from './models.js';

const NOW = new Date('2026-12-07T01:00:00.000Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

const workload = (over: Partial<WorkloadRecord> = {}): WorkloadRecord => ({
  id: 'w1',
  name: 'w1',
  nodeId: 'node-a',
  pid: 100,
  state: 'running',
  guard: { intervalSeconds: 10 },
  createdAt: ago(600),
  updatedAt: ago(600),
  ...over,
});

function cp(id: string, secondsAgo: number, over: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id,
    mode: 'guard',
    workloadId: 'w1',
    sourceNodeId: 'node-a',
    storageNodeId: 'node-c',
    imageDir: `/cp/w1/${id}`,
    state: 'stored',
    tree: [100],
    phases: [
      { name: 'dump', startedAt: ago(secondsAgo), endedAt: ago(secondsAgo - 1), ok: true },
      { name: 'commit', startedAt: ago(secondsAgo - 1.5), endedAt: ago(secondsAgo - 2), ok: true },
    ],
    criu: {},
    bytes: { pages: 16 * 2 ** 20, images: 0 },
    frozenAt: ago(secondsAgo),
    createdAt: ago(secondsAgo + 1),
    updatedAt: ago(secondsAgo - 2),
    ...over,
  };
}

describe('guardCopyOf: which guard checkpoint a too-short notice may build on', () => {
  const table: Array<[string, Partial<WorkloadRecord>, CheckpointRecord[], string | undefined, RegExp]> = [
    ['the newest stored one, with its measured take', {}, [cp('g1', 25), cp('g2', 8)], 'g2', /g2 \(8\.0 s old/],
    ['not guarded', { guard: undefined }, [cp('g1', 8)], undefined, /not guarded/],
    ['a container: as before', { kind: 'podman' }, [cp('g1', 8)], undefined, /a container/],
    ['no guard checkpoint stored: as today', {}, [cp('g1', 8, { state: 'failed' })], undefined, /no stored/],
    [
      'a guard dump failed after the last good one: as today',
      {},
      [cp('g1', 25), cp('g2', 8, { state: 'failed' })],
      undefined,
      /g2 failed/,
    ],
    ['too old: beyond 3 intervals', {}, [cp('g1', 31)], undefined, /stale beyond 30 s/],
    ['of another process (the workload moved since)', { pid: 200 }, [cp('g1', 8)], undefined, /another process/],
    [
      'its chain is broken',
      {},
      [cp('g2', 8, { guardChain: { parentId: 'gone', depth: 2, trackMem: true } })],
      undefined,
      /broken at gone/,
    ],
    ['a storage checkpoint is no guard copy', {}, [cp('s1', 5, { mode: 'storage' }), cp('g1', 8)], 'g1', /g1/],
  ];
  it.each(table)('%s', (_name, w, cps, id, reason) => {
    const r = guardCopyOf(workload(w), cps, NOW);
    expect(r.copy?.checkpointId).toBe(id);
    expect(r.reason).toMatch(reason);
  });

  it('reports age, storage node and the take measured on the checkpoint', () => {
    expect(guardCopyOf(workload(), [cp('g1', 8)], NOW).copy).toEqual({
      checkpointId: 'g1',
      storageNodeId: 'node-c',
      ageSeconds: 8,
      takeSeconds: 2,
      pagesBytes: 16 * 2 ** 20,
    });
  });

  it('says when the chain is encrypted at rest (the last dump on it will be full)', () => {
    const encryption = { scheme: 'openssl-aes-256-ctr-pbkdf2' as const, keyId: 'k', wrappedKey: 'w' };
    expect(guardCopyOf(workload(), [cp('g1', 8, { encryption })], NOW).copy?.encrypted).toBe(true);
    expect(guardCopyOf(workload(), [cp('g1', 8)], NOW).copy?.encrypted).toBeUndefined();
  });
});

describe('guardRestoreStep: the sequence of a guard-restore job', () => {
  const restore = (over: Partial<CheckpointRestore> = {}): CheckpointRestore => ({
    attempt: 1,
    destinationNodeId: 'node-b',
    destinationReason: 'placement',
    requestedAt: ago(1),
    phases: [],
    ...over,
  });
  const last = (over: Partial<CheckpointRecord>) => cp('last', 1, { mode: 'storage', ...over });
  const table: Array<[string, Partial<CheckpointRecord>, string]> = [
    ['queued: wait', { state: 'queued' }, 'wait'],
    ['taking: wait', { state: 'taking' }, 'wait'],
    ['the take failed', { state: 'failed', error: 'boom' }, 'take-failed'],
    ['stored, never restored: restore elsewhere', { state: 'stored' }, 'restore'],
    ['restoring: wait', { state: 'restoring', restore: restore() }, 'wait'],
    // One copy: a failed restore whose copy is not proven dead stays restoring; nothing may start next to it.
    [
      'restoring with an error (undo not proven): wait',
      { state: 'restoring', restore: restore({ error: 'x' }) },
      'wait',
    ],
    ['restored elsewhere: done', { state: 'restored', restore: restore() }, 'done'],
    [
      'failed and undone elsewhere: roll back on the source',
      { state: 'stored', restore: restore({ error: 'x' }) },
      'rollback',
    ],
    [
      'restored back on the source: rolled back',
      { state: 'restored', restore: restore({ attempt: 2, destinationNodeId: 'node-a', rollback: true }) },
      'rolled-back',
    ],
    [
      'the rollback failed too: the images are the one copy, never restored twice by the job',
      { state: 'stored', restore: restore({ attempt: 2, destinationNodeId: 'node-a', rollback: true, error: 'y' }) },
      'stored',
    ],
  ];
  it.each(table)('%s', (_name, over, step) => {
    expect(guardRestoreStep(last(over)).do).toBe(step);
  });
});

describe('lastDumpPlan: the last checkpoint on the guard chain', () => {
  const parent = cp('g2', 8, { guardChain: { depth: 1, trackMem: true } });
  it("incremental on the chain's newest safe parent, tracking no memory for a child", () => {
    const next = { kind: 'incremental' as const, link: { parentId: 'g2', depth: 2, trackMem: true }, parent };
    expect(lastDumpPlan(next)).toEqual({ ...next, link: { parentId: 'g2', depth: 2, trackMem: false } });
  });
  it("no soft-dirty on the node: full, with the chain rules' reason", () => {
    const next = { kind: 'full' as const, link: { depth: 1, trackMem: true }, reason: 'the chain reached 4' };
    expect(lastDumpPlan(next)).toEqual({ ...next, link: { depth: 1, trackMem: false } });
  });
});
