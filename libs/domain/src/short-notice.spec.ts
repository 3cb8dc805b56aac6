/** A too-short notice for a guarded workload: final checkpoint when it fits, else the guard one with its RPO. */
import type { CheckpointRecord } from './checkpoint.js';
import { decideShortNotice, takeSeconds, type ShortNoticeInput } from './short-notice.js';

const NOW = new Date('2026-12-07T01:00:00.000Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

/** A stored guard checkpoint frozen `secondsAgo`, whose take (dump start to commit end) lasted `takeS`. */
function guardCp(
  id: string,
  secondsAgo: number,
  takeS?: number,
  over: Partial<CheckpointRecord> = {},
): CheckpointRecord {
  const start = secondsAgo;
  return {
    id,
    mode: 'guard',
    workloadId: 'w1',
    sourceNodeId: 'node-a',
    storageNodeId: 'node-c',
    imageDir: `/cp/w1/${id}`,
    state: 'stored',
    phases:
      takeS === undefined
        ? []
        : [
            { name: 'dump', startedAt: ago(start), endedAt: ago(start - 1), ok: true },
            { name: 'commit', startedAt: ago(start - takeS + 0.5), endedAt: ago(start - takeS), ok: true },
          ],
    criu: {},
    bytes: { pages: 0, images: 0 },
    frozenAt: ago(secondsAgo),
    createdAt: ago(secondsAgo + 1),
    updatedAt: ago(secondsAgo - (takeS ?? 0)),
    ...over,
  };
}

const input = (over: Partial<ShortNoticeInput>): ShortNoticeInput => ({
  checkpoints: [guardCp('g1', 40, 8), guardCp('g2', 12, 6)],
  secondsLeft: 20,
  storageAvailable: true,
  now: NOW,
  ...over,
});

describe('decideShortNotice', () => {
  const table: [string, Partial<ShortNoticeInput>, string, RegExp][] = [
    [
      'a final checkpoint fits before the deadline (the newest take lasted 6 s, 20 s left)',
      {},
      'final-dump',
      /a final checkpoint fits: the last guard checkpoint took 6.0 s, 20.0 s left \(g2 stays the fallback\)/,
    ],
    [
      'it does not fit: the guard checkpoint, 12 s of work lost',
      { secondsLeft: 5 },
      'guard-checkpoint',
      /a final checkpoint needs about 6.0 s, 5.0 s left: guard checkpoint g2 is the copy, 12.0 s of work lost \(RPO\)/,
    ],
    [
      'no storage node for a final one: the guard checkpoint',
      { storageAvailable: false },
      'guard-checkpoint',
      /no storage node can take a final checkpoint: guard checkpoint g2/,
    ],
    [
      'the take time of the newest is unknown: not gambled on, the guard checkpoint',
      { checkpoints: [guardCp('g3', 5)] },
      'guard-checkpoint',
      /the time a final checkpoint needs is unknown: guard checkpoint g3 is the copy, 5.0 s/,
    ],
    [
      'no guard checkpoint yet: a final checkpoint is the only copy',
      { checkpoints: [guardCp('f', 3, 2, { state: 'failed' })] },
      'final-dump',
      /no guard checkpoint stored yet/,
    ],
    ['nothing at all', { checkpoints: [], storageAvailable: false }, 'none', /no guard checkpoint stored/],
  ];
  it.each(table)('%s', (_name, over, use, why) => {
    const d = decideShortNotice(input(over));
    expect(d.use).toBe(use);
    expect(d.reason).toMatch(why);
  });

  it('names the newest stored guard checkpoint and its age as the RPO', () => {
    expect(decideShortNotice(input({ secondsLeft: 1 }))).toMatchObject({ checkpointId: 'g2', rpoSeconds: 12 });
  });

  it('a take lasts from the dump’s start to the commit’s end; unknown without both', () => {
    expect(takeSeconds(guardCp('g', 30, 7))).toBe(7);
    expect(takeSeconds(guardCp('g', 30))).toBeUndefined();
  });
});
