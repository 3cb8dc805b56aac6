/**
 * Pre-copy convergence on given dirty-page sequences. The first sequence is the qemu lab's real run
 * (libs/engine/test/fixtures/qemu-precopy.json); the others are shapes a workload can take, with the
 * same round-1 figures so only the dirty pattern differs.
 */
import type { PreCopyRound } from '@spotlift/domain';
import { QEMU_PRECOPY } from '../../test/live-harness.js';
import { type ConvergenceOptions, decideAfterRound, roundsBandwidth } from './convergence.js';

const MiB = 2 ** 20;

/** Rounds from (pages written, seconds moving them) pairs; 4 KiB pages. */
function rounds(seq: Array<[pages: number, seconds: number]>): PreCopyRound[] {
  return seq.map(([pages, seconds], i) => ({
    round: i + 1,
    pagesScanned: 65779,
    pagesWritten: pages,
    pagesSkippedParent: i === 0 ? 0 : 65551 - pages,
    bytes: pages * 4096,
    durationMs: seconds * 1000 + 100,
    frozenMs: 100,
    bandwidthBytesPerSec: seconds > 0 ? (pages * 4096) / seconds : 0,
  }));
}

const opts: ConvergenceOptions = { budgetMs: 1000, fixedFreezeMs: 300, maxRounds: 8, minShrink: 0.7 };

/** Feeds rounds one at a time like the engine does; returns where it stopped and why. */
function runUntilStop(all: PreCopyRound[], o: ConvergenceOptions = opts) {
  for (let n = 1; n <= all.length; n++) {
    const d = decideAfterRound(all.slice(0, n), o);
    if (d.stop) return { rounds: n, ...d };
  }
  throw new Error('never stopped');
}

// The qemu lab's 256 MiB workload, 16 MiB hot set: 65551 pages in 15.7 s, then 4285 pages a round.
const qemu = QEMU_PRECOPY.preCopy.rounds.map((r, i): PreCopyRound => ({
  round: i + 1,
  pagesScanned: r.stats.pagesScanned,
  pagesWritten: r.stats.pagesWritten,
  pagesSkippedParent: r.stats.pagesSkippedParent,
  bytes: r.stats.pagesWritten * 4096,
  durationMs: r.ms,
  frozenMs: r.stats.frozenTimeUs / 1000,
  bandwidthBytesPerSec: (r.stats.pagesWritten * 4096) / ((r.stats.memdumpTimeUs + r.stats.memwriteTimeUs) / 1e6),
}));

describe('decideAfterRound', () => {
  it('qemu hot set, 1 s budget: round 2 shrinks but misses the budget, round 3 does not shrink -> stop at 3', () => {
    const r = runUntilStop(qemu);
    expect(r.rounds).toBe(3);
    expect(r.reason).toMatch(/^rounds stopped shrinking: round 3 wrote 4285 pages, round 2 4285/);
    // The prediction against what CRIU then measured in the VM: final dump frozen 1.36 s with 4286 pages.
    expect(r.predictedFreezeMs).toBeGreaterThan(1_200);
    expect(r.predictedFreezeMs).toBeLessThan(1_500);
    expect(QEMU_PRECOPY.preCopy.final.stats.frozenTimeUs / 1000).toBeCloseTo(1360, -1);
  });

  it('qemu hot set, 1.5 s budget: converged after round 2', () => {
    const r = runUntilStop(qemu, { ...opts, budgetMs: 1500 });
    expect(r.rounds).toBe(2);
    expect(r.reason).toMatch(/^converged: predicted final freeze \d+ ms fits the 1500 ms budget after 2 round/);
  });

  it('a decaying dirty set converges once the freeze fits', () => {
    // 100 MiB/s link; each round a third of the last: 16 MiB, 5 MiB, 1.8 MiB, 0.6 MiB.
    const seq = rounds([
      [65536, 2.56],
      [4096, 0.16],
      [1365, 0.053],
      [455, 0.018],
      [152, 0.006],
    ]);
    const r = runUntilStop(seq, { ...opts, budgetMs: 330 });
    expect(r.rounds).toBe(4);
    expect(r.stop).toBe(true);
    expect(r.reason).toMatch(/^converged/);
    expect(r.predictedFinalBytes).toBe(455 * 4096);
  });

  it('a workload dirtying faster than the link: round 2 barely shrinks -> stop at 2', () => {
    const seq = rounds([
      [65536, 2.56],
      [60000, 2.34],
      [59000, 2.3],
    ]);
    const r = runUntilStop(seq);
    expect(r.rounds).toBe(2);
    expect(r.reason).toMatch(/stopped shrinking: round 2 wrote 60000 pages, round 1 65536/);
  });

  it('stops at the round limit when every round shrinks but the budget is out of reach', () => {
    const seq = rounds([
      [65536, 2.56],
      [40000, 1.56],
      [24000, 0.94],
      [14000, 0.55],
      [8000, 0.31],
      [4500, 0.18],
    ]);
    const r = runUntilStop(seq, { ...opts, budgetMs: 100, maxRounds: 4 });
    expect(r.rounds).toBe(4);
    expect(r.reason).toMatch(/^round limit \(4\) reached/);
  });

  it('stops when another round would not fit before the deadline', () => {
    const d = decideAfterRound(qemu.slice(0, 2), { ...opts, timeLeftMs: 2_500 });
    expect(d.stop).toBe(true);
    expect(d.reason).toMatch(/^the deadline leaves 2500 ms, another round and the final dump need about \d+ ms/);
    expect(decideAfterRound(qemu.slice(0, 2), { ...opts, timeLeftMs: 60_000 }).stop).toBe(false);
  });

  it('stops at once when a round found nothing dirty', () => {
    const d = decideAfterRound(
      rounds([
        [65536, 2.56],
        [0, 0],
      ]),
      { ...opts, budgetMs: 0 },
    );
    expect(d).toMatchObject({ stop: true, predictedFinalBytes: 0 });
    expect(d.reason).toMatch(/no dirty page/);
  });

  it('a lazy final (hybrid) is judged by the lazy transfer, without the fixed freeze', () => {
    const seq = rounds([
      [65536, 2.56],
      [2560, 0.1],
    ]);
    const lazy = decideAfterRound(seq, { ...opts, budgetMs: 150, lazyFinal: true });
    expect(lazy.stop).toBe(true);
    expect(lazy.predictedFreezeMs).toBeCloseTo(100, 0);
    expect(lazy.reason).toMatch(/lazy transfer of the remaining dirty pages/);
    expect(decideAfterRound(seq, { ...opts, budgetMs: 150 }).stop).toBe(false);
  });

  it('weights the bandwidth by the bytes each round moved', () => {
    const seq = rounds([
      [65536, 2.56],
      [256, 1],
    ]);
    expect(roundsBandwidth(seq) / MiB).toBeCloseTo(257 / 3.56, 1);
    expect(() => decideAfterRound([], opts)).toThrow(RangeError);
  });
});
