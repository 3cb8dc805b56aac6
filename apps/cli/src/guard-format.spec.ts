import type { GuardReport } from '@spotlift/domain';
import { guardDetails } from './guard-format.js';

describe('guardDetails', () => {
  it('shows the RPO, the freeze cost, the kept checkpoints and why a restore waits', () => {
    const r: GuardReport = {
      settings: { intervalSeconds: 10, keep: 2, maxFreezeMs: 500 },
      rpoSeconds: 4.25,
      lastGoodCheckpointId: 'cp-2',
      checkpoints: [{ id: 'cp-2', frozenAt: '2026-12-07T01:00:00.000Z', freezeMs: 312.5, storedBytes: 3 * 2 ** 20 }],
      overhead: { meanFreezeMs: 312.5, freezeMsPerHour: 112_500 },
      loss: { at: '2026-12-07T01:00:05.000Z', action: 'wait', reason: "node 'node-a' is not confirmed gone" },
    };
    const text = guardDetails('wl-1', r);
    expect(text).toMatch(/every \/ keep +10 s \/ 2/);
    expect(text).toMatch(/RPO +4\.3 s \(cp-2\)/);
    expect(text).toMatch(/freeze +312\.5 ms per checkpoint, 112\.5 s per hour/);
    expect(text).toMatch(/node loss +wait: node 'node-a' is not confirmed gone/);
    expect(text).toMatch(/cp-2 +2026-12-07T01:00:00.000Z +312\.5 ms +3\.0 MiB/);
  });

  it('before the first checkpoint: says so, no table', () => {
    const text = guardDetails('wl-1', { settings: { intervalSeconds: 10, keep: 2 }, checkpoints: [], overhead: {} });
    expect(text).toMatch(/RPO +no checkpoint yet/);
    expect(text).not.toMatch(/CHECKPOINT/);
  });
});
