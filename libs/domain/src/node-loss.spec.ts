/** Node loss decisions with a fixed clock: silence AND confirmation, then which guard checkpoint, once. */
import type { CheckpointRecord } from './checkpoint.js';
import type { NodeLossConfirmation } from './models.js';
import {
  decideLossRestore,
  nodeLossVerdict,
  staleContainerAction,
  staleCopyAction,
  type LossFacts,
  type LossNode,
} from './node-loss.js';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();
const OPERATOR: NodeLossConfirmation = { source: 'operator', at: ago(1), by: 'ops' };

function node(over: Partial<LossNode> = {}): LossNode {
  return { id: 'node-a', state: 'unreachable', unreachableSince: ago(60), ...over };
}

function cp(id: string, createdSecondsAgo: number, over: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id,
    mode: 'guard',
    workloadId: 'w1',
    sourceNodeId: 'node-a',
    storageNodeId: 'node-c',
    imageDir: `/cp/w1/${id}`,
    state: 'stored',
    phases: [],
    criu: {},
    bytes: { pages: 0, images: 0 },
    createdAt: ago(createdSecondsAgo),
    frozenAt: ago(createdSecondsAgo - 1),
    updatedAt: ago(createdSecondsAgo - 2),
    ...over,
  };
}

const facts = (n: LossNode, over: Partial<LossFacts> = {}): LossFacts => ({
  node: n,
  thresholdMs: 30_000,
  now: NOW,
  ...over,
});

describe('nodeLossVerdict', () => {
  const table: [string, LossFacts, boolean, RegExp][] = [
    [
      'answers, not confirmed',
      facts(node({ state: 'ready', unreachableSince: undefined })),
      false,
      /answers over SSH$/,
    ],
    [
      'answers, confirmed by an operator: refused, it may still run the workload',
      facts(node({ state: 'ready', unreachableSince: undefined, lost: OPERATOR })),
      false,
      /confirmed gone \(operator\) but still answers/,
    ],
    [
      'silent below the threshold, confirmed',
      facts(node({ unreachableSince: ago(10), lost: OPERATOR })),
      false,
      /below the 30 s threshold until 2026-12-06T12:00:20.000Z$/,
    ],
    [
      'silent below the threshold, not confirmed: both reasons',
      facts(node({ unreachableSince: ago(10) })),
      false,
      /below the 30 s threshold .* and not confirmed gone/,
    ],
    [
      'silent beyond the threshold, not confirmed',
      facts(node()),
      false,
      /not confirmed gone: a silence may be a partition/,
    ],
    [
      'a notice whose deadline has not passed yet is no confirmation',
      facts(node(), { noticeDeadline: { at: ago(-5), evacuationId: 'ev-1' } }),
      false,
      /not confirmed gone/,
    ],
    ['silent beyond the threshold, confirmed by an operator', facts(node({ lost: OPERATOR })), true, /operator/],
    [
      'a terminating node (under notice) silent beyond the threshold, its deadline passed',
      facts(node({ state: 'terminating' }), { noticeDeadline: { at: ago(5), evacuationId: 'ev-1' } }),
      true,
      /notice-deadline/,
    ],
    [
      'silent beyond the threshold, a notice deadline passed',
      facts(node(), { noticeDeadline: { at: ago(5), evacuationId: 'ev-1' } }),
      true,
      /notice-deadline/,
    ],
  ];
  it.each(table)('%s', (_name, input, lost, why) => {
    const v = nodeLossVerdict(input);
    expect(v.lost).toBe(lost);
    expect(v.lost ? v.confirmation.source : v.reason).toMatch(why);
  });

  it('a passed notice deadline names its evacuation as the confirmation', () => {
    const v = nodeLossVerdict(facts(node(), { noticeDeadline: { at: ago(5), evacuationId: 'ev-1' } }));
    expect(v).toMatchObject({ lost: true, confirmation: { by: 'ev-1', source: 'notice-deadline' }, silentMs: 60_000 });
  });
});

describe('decideLossRestore', () => {
  const lost = nodeLossVerdict(facts(node({ lost: OPERATOR })));
  const base = { verdict: lost, nodeId: 'node-a', now: NOW };

  it('waits with the verdict’s reason while the node is not lost', () => {
    const verdict = nodeLossVerdict(facts(node()));
    const d = decideLossRestore({ ...base, verdict, checkpoints: [cp('a', 20)] });
    expect(d).toEqual({ action: 'wait', reason: verdict.lost ? '' : verdict.reason });
  });

  it('restores the newest stored guard checkpoint, with its age as the RPO', () => {
    const checkpoints = [
      cp('old', 40),
      cp('new', 20),
      cp('failed', 5, { state: 'failed' }),
      cp('forensic', 3, { mode: 'forensic' }),
    ];
    expect(decideLossRestore({ ...base, checkpoints })).toMatchObject({
      action: 'restore',
      checkpointId: 'new',
      rpoSeconds: 19,
    });
  });

  it('sticks to the claimed checkpoint, and waits when that one is gone', () => {
    const checkpoints = [cp('old', 40), cp('new', 20)];
    expect(decideLossRestore({ ...base, checkpoints, claimedCheckpointId: 'old' })).toMatchObject({
      action: 'restore',
      checkpointId: 'old',
    });
    expect(decideLossRestore({ ...base, checkpoints, claimedCheckpointId: 'zzz' })).toEqual({
      action: 'wait',
      reason: 'checkpoint zzz claimed for this loss is no longer stored',
    });
  });

  it('never starts a second restore next to one under way (the older stored one is not tried)', () => {
    const restoring = cp('new', 20, {
      state: 'restoring',
      restore: {
        attempt: 1,
        destinationNodeId: 'node-b',
        destinationReason: 'x',
        requestedAt: ago(1),
        phases: [],
        takeover: { fromNodeId: 'node-a', stalePid: 42 },
      },
    });
    expect(decideLossRestore({ ...base, checkpoints: [cp('old', 40), restoring] })).toEqual({
      action: 'in-progress',
      checkpointId: 'new',
      reason: "restoring new to 'node-b'",
    });
  });

  it('waits, saying so, when there is no guard checkpoint to restore', () => {
    expect(decideLossRestore({ ...base, checkpoints: [cp('f', 5, { state: 'failed' })] })).toEqual({
      action: 'wait',
      reason: "node 'node-a' is lost but the workload has no stored guard checkpoint to restore",
    });
  });
});

describe('staleContainerAction', () => {
  const id = 'c'.repeat(64);
  const t = { fromNodeId: 'node-a', stalePid: 42, staleContainer: id };
  it.each([
    ['Podman there knows no such container: gone', undefined, 'gone', /no longer exists on node-a/],
    ['the very container: removed', { id }, 'remove', undefined],
    ['the ref resolves to another container: left alone', { id: 'd'.repeat(64) }, 'gone', /another container/],
  ] as const)('%s', (_n, found, action, why) => {
    const a = staleContainerAction(t, found);
    expect(a.action).toBe(action);
    if (why) expect(a.action === 'gone' && a.outcome).toMatch(why);
  });
});

describe('staleCopyAction', () => {
  const t = {
    fromNodeId: 'node-a',
    stalePid: 42,
    staleIdentity: { bootId: 'b', pidNs: 'p', startTime: '1000' },
  };
  it.each([
    ['nothing under the pid: gone', undefined, 'gone', /no longer runs on node-a/],
    ['the same process (same start time): killed', { startTime: '1000' }, 'kill', undefined],
    ['another process under the reused pid: left alone', { startTime: '2000' }, 'gone', /another process now/],
    ['no start time readable: killed (the pid was the workload’s)', {}, 'kill', undefined],
  ] as const)('%s', (_n, found, action, why) => {
    const a = staleCopyAction(t, found);
    expect(a.action).toBe(action);
    if (why) expect(a.action === 'gone' && a.outcome).toMatch(why);
  });
});
