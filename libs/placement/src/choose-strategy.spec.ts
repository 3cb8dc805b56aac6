import { chooseStrategy, unsupportedReason, type StrategyInput } from './choose-strategy.js';
import { gib, mib } from './fixtures.js';
import type { ConcreteStrategy } from './types.js';

const base: StrategyInput = {
  memoryBytes: gib(1),
  dirtyRateBytesPerSec: mib(64),
  bandwidthBytesPerSec: mib(500),
  downtimeBudgetSeconds: 0.3,
  capabilities: { softDirtyOnSource: true, postCopyTrial: 'ok' },
};
const noPre = { softDirtyOnSource: false, postCopyTrial: 'ok' } as const;
const noPost = { softDirtyOnSource: true, postCopyTrial: 'failed' } as const;
const neither = { softDirtyOnSource: false, postCopyTrial: 'untested' } as const;

describe('chooseStrategy (auto)', () => {
  const cases: Array<{
    name: string;
    over: Partial<StrategyInput>;
    want: ConcreteStrategy;
    reason?: string;
    fallback?: string;
  }> = [
    {
      name: 'small workload, loose budget: stop-and-copy',
      over: { memoryBytes: mib(64), downtimeBudgetSeconds: 1 },
      want: 'stop-and-copy',
      reason: 'simplest',
    },
    { name: 'large workload, tight budget, pre-copy converges', over: {}, want: 'pre-copy' },
    {
      name: 'pre-copy unsupported: post-copy, and the fallback is recorded',
      over: { capabilities: noPre },
      want: 'post-copy',
      fallback: 'mem_dirty_track',
    },
    {
      name: 'neither live strategy: stop-and-copy with the least downtime',
      over: { capabilities: neither },
      want: 'stop-and-copy',
      reason: 'no supported strategy meets',
    },
    {
      name: 'rounds capped before the freeze fits: hybrid (the rounds still shrank the lazy set)',
      over: { model: { maxRounds: 4 }, dirtyRateBytesPerSec: mib(300), downtimeBudgetSeconds: 0.15 },
      want: 'hybrid',
    },
    {
      name: 'dirty rate above bandwidth: hybrid is pointless, post-copy',
      over: { dirtyRateBytesPerSec: mib(800) },
      want: 'post-copy',
    },
    {
      name: 'tight deadline: pre-copy rounds do not fit, post-copy does',
      over: { memoryBytes: gib(4), dirtyRateBytesPerSec: mib(300), timeLeftSeconds: 9.5 },
      want: 'post-copy',
    },
    {
      name: 'no strategy fits the deadline: the fastest, flagged',
      over: { memoryBytes: gib(8), timeLeftSeconds: 5, capabilities: noPost },
      want: 'stop-and-copy',
      reason: 'no supported strategy finishes',
    },
  ];
  it.each(cases)('$name', ({ over, want, reason, fallback }) => {
    const d = chooseStrategy({ ...base, ...over });
    expect(d.strategy).toBe(want);
    if (reason) expect(d.reason).toContain(reason);
    if (fallback) expect(d.fallbacks.join(' ')).toContain(fallback);
    expect(d.predictedTotalSeconds).toBeGreaterThanOrEqual(d.predictedDowntimeSeconds);
    expect(d.alternatives).toHaveLength(4);
  });

  it('flags a missed deadline and a missed budget', () => {
    const d = chooseStrategy({ ...base, memoryBytes: gib(8), timeLeftSeconds: 5, capabilities: noPost });
    expect(d).toMatchObject({ meetsDeadline: false, meetsBudget: false });
  });

  it('follows the pre-copy model: round i sends what round i-1 let dirty', () => {
    const d = chooseStrategy({
      ...base,
      requested: 'pre-copy',
      downtimeBudgetSeconds: 0.11,
      model: { fixedCostSeconds: 0.1 },
    });
    // M/B = 2.048 s; dirty 64 MiB/s -> 131 MiB, 16.8 MiB, 2.1 MiB, 0.27 MiB...
    const b = mib(500);
    let v = gib(1);
    let bytes = 0;
    let rounds = 0;
    while (0.1 + (mib(64) * (v / b)) / b > 0.11) {
      bytes += v;
      v = mib(64) * (v / b);
      rounds++;
    }
    bytes += v;
    const final = mib(64) * (v / b);
    expect(d.rounds).toBe(rounds + 1);
    expect(d.finalBytes).toBeCloseTo(final, 0);
    expect(d.predictedBytes).toBeCloseTo(bytes + final, 0);
    expect(d.predictedDowntimeSeconds).toBeLessThanOrEqual(0.11);
  });

  it('caps the rounds', () => {
    // r = D/B just under the 0.7 shrink limit and an impossible budget: only the cap stops it.
    const d = chooseStrategy({
      ...base,
      requested: 'pre-copy',
      dirtyRateBytesPerSec: mib(340),
      downtimeBudgetSeconds: 0,
      model: { maxRounds: 6 },
    });
    expect(d.rounds).toBe(6);
  });

  it('stops rounds that no longer shrink', () => {
    const d = chooseStrategy({
      ...base,
      requested: 'pre-copy',
      dirtyRateBytesPerSec: mib(450),
      downtimeBudgetSeconds: 0,
    });
    expect(d.rounds).toBe(1);
  });
});

describe('chooseStrategy (explicit)', () => {
  const cases: Array<{ requested: ConcreteStrategy; caps: StrategyInput['capabilities']; want: ConcreteStrategy }> = [
    { requested: 'pre-copy', caps: noPre, want: 'stop-and-copy' },
    { requested: 'post-copy', caps: noPost, want: 'pre-copy' },
    { requested: 'post-copy', caps: neither, want: 'stop-and-copy' },
    { requested: 'hybrid', caps: noPost, want: 'pre-copy' },
    { requested: 'hybrid', caps: noPre, want: 'post-copy' },
    { requested: 'hybrid', caps: base.capabilities, want: 'hybrid' },
    { requested: 'stop-and-copy', caps: base.capabilities, want: 'stop-and-copy' },
  ];
  it.each(cases)(
    '$requested on $caps.softDirtyOnSource/$caps.postCopyTrial runs $want',
    ({ requested, caps, want }) => {
      const d = chooseStrategy({ ...base, requested, capabilities: caps });
      expect(d.strategy).toBe(want);
      expect(d.reason).toContain(requested === want ? 'requested' : 'fell back');
    },
  );

  it('explains what to fix for post-copy', () => {
    expect(unsupportedReason('post-copy', noPost)).toContain('fs.pipe-max-size');
    expect(unsupportedReason('post-copy', neither)).toContain('no post-copy trial');
    expect(unsupportedReason('stop-and-copy', neither)).toBeUndefined();
  });

  it('rejects a non-positive bandwidth', () => {
    expect(() => chooseStrategy({ ...base, bandwidthBytesPerSec: 0 })).toThrow(RangeError);
  });
});
