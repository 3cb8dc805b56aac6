/** Guard mode's decisions with a fixed clock: when the next take is due, the freeze budget, retention, RPO. */
import type { CheckpointRecord } from './checkpoint.js';
import { decideGuard, guardReport, guardRetention, predictFreezeMs } from './guard.js';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

function cp(id: string, createdSecondsAgo: number, over: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id,
    mode: 'guard',
    workloadId: 'w1',
    sourceNodeId: 'node-a',
    storageNodeId: 'node-c',
    imageDir: `/var/lib/spotlift/checkpoints/w1/${id}`,
    state: 'stored',
    phases: [],
    criu: { dump: { frozenTimeUs: 40_000 } as NonNullable<CheckpointRecord['criu']['dump']> },
    bytes: { pages: 0, images: 0, stored: 1000 },
    rssBytes: 100,
    createdAt: ago(createdSecondsAgo),
    frozenAt: ago(createdSecondsAgo - 1),
    updatedAt: ago(createdSecondsAgo - 2),
    ...over,
  };
}

describe('decideGuard', () => {
  const settings = { intervalSeconds: 30 };

  it('takes the first one at once, then waits an interval from the last take', () => {
    expect(decideGuard({ settings, checkpoints: [], now: NOW })).toEqual({ action: 'take' });
    expect(decideGuard({ settings, checkpoints: [cp('a', 29)], now: NOW }).action).toBe('wait');
    expect(decideGuard({ settings, checkpoints: [cp('a', 30)], now: NOW })).toEqual({ action: 'take' });
  });

  it('counts a skip as a decision: the next try is an interval after it', () => {
    const status = { id: 'w1', lastDecisionAt: ago(10) };
    expect(decideGuard({ settings, checkpoints: [cp('a', 300)], status, now: NOW }).action).toBe('wait');
  });

  it('waits while a guard checkpoint of the workload runs, and while its node is under notice', () => {
    const taking = decideGuard({ settings, checkpoints: [cp('a', 300, { state: 'taking' })], now: NOW });
    expect(taking).toEqual({ action: 'wait', reason: 'guard checkpoint a is taking' });
    const notice = decideGuard({ settings, checkpoints: [], nodeUnderNotice: true, now: NOW });
    expect(notice.action).toBe('wait');
    expect(notice.action === 'wait' && notice.reason).toMatch(/under notice/);
  });

  it('skips one whose freeze, predicted from the last and scaled by memory, is above the budget', () => {
    const checkpoints = [cp('a', 60)]; // 40 ms at 100 bytes
    const budget = { intervalSeconds: 30, maxFreezeMs: 50 };
    expect(decideGuard({ settings: budget, checkpoints, rssBytes: 100, now: NOW })).toEqual({ action: 'take' });
    const d = decideGuard({ settings: budget, checkpoints, rssBytes: 200, now: NOW });
    expect(d).toMatchObject({ action: 'skip', predictedFreezeMs: 80 });
    expect(d.action === 'skip' && d.reason).toMatch(/80 ms .* above maxFreezeMs 50/);
  });

  it('predicts from the newest stored one only', () => {
    const checkpoints = [
      cp('old', 90, { criu: { dump: { frozenTimeUs: 900_000 } as never } }),
      cp('new', 60),
      cp('broken', 30, { state: 'failed', criu: {} }),
    ];
    expect(predictFreezeMs(checkpoints)).toBe(40);
  });

  it('predicts a full dump from the last full one and an incremental one from the last incremental one', () => {
    const full = { depth: 1, trackMem: true };
    const checkpoints = [
      cp('g1', 90, { guardChain: full, criu: { dump: { frozenTimeUs: 15_000_000 } as never } }),
      cp('g2', 60, { guardChain: { parentId: 'g1', depth: 2, trackMem: true } }),
    ];
    expect(predictFreezeMs(checkpoints, 100, 'full')).toBe(15_000);
    expect(predictFreezeMs(checkpoints, 100, 'incremental')).toBe(40);
    expect(predictFreezeMs(checkpoints.slice(0, 1), 100, 'incremental')).toBeUndefined();
    const budget = { intervalSeconds: 30, maxFreezeMs: 5_000 };
    const first = checkpoints.slice(0, 1);
    // After a costly full one, the incremental one it allows is taken; the next full one is not.
    expect(decideGuard({ settings: budget, checkpoints: first, nextDump: 'incremental', now: NOW })).toEqual({
      action: 'take',
    });
    const d = decideGuard({ settings: budget, checkpoints, nextDump: 'full', now: NOW });
    expect(d).toMatchObject({ action: 'skip', predictedFreezeMs: 15_000 });
    expect(d.action === 'skip' && d.reason).toMatch(/from the last full guard checkpoint/);
  });
});

describe('guardRetention', () => {
  it('removes stored ones beyond keep and failed ones older than the newest, never a restored clone', () => {
    const checkpoints = [
      cp('s1', 50),
      cp('f1', 40, { state: 'failed' }),
      cp('s2', 30),
      cp('r1', 25, { state: 'restored' }),
      cp('s3', 20),
      cp('f2', 10, { state: 'failed' }),
      cp('other', 5, { mode: 'forensic' }),
    ];
    expect(
      guardRetention(checkpoints, 2)
        .map((c) => c.id)
        .sort(),
    ).toEqual(['f1', 's1']);
  });
});

describe('guardReport', () => {
  it('reports the RPO from the last good freeze, the freeze overhead and the kept ids', () => {
    const checkpoints = [
      cp('s1', 61, { criu: { dump: { frozenTimeUs: 20_000 } as never } }),
      cp('s2', 31),
      cp('f', 5, { state: 'failed', error: 'storage node unreachable' }),
    ];
    const r = guardReport({ intervalSeconds: 30, keep: 2 }, checkpoints, undefined, NOW);
    expect(r.rpoSeconds).toBe(30);
    expect(r.lastGoodCheckpointId).toBe('s2');
    expect(r.checkpoints.map((c) => c.id)).toEqual(['s2', 's1']);
    expect(r.overhead).toEqual({ meanFreezeMs: 30, freezeMsPerHour: 3600 });
    expect(r.lastFailure).toMatchObject({ id: 'f', error: 'storage node unreachable' });
  });

  it('has no RPO before the first good one and says why one was skipped', () => {
    const status = { id: 'w1', skipped: { at: ago(1), reason: 'predicted freeze' } };
    const r = guardReport({ intervalSeconds: 10 }, [], status, NOW);
    expect(r.rpoSeconds).toBeUndefined();
    expect(r.settings.keep).toBe(2);
    expect(r.skipped?.reason).toBe('predicted freeze');
  });
});
