import type { MigrationRecord } from '@spotlift/domain';
import { calibrateFromMigrations } from './evacuation-calibration.js';

const MIB = 2 ** 20;
const T0 = Date.UTC(2026, 11, 6, 12);

/** A completed migration of `mib` MiB at 256 MiB/s that took `totalS` seconds and froze `downS`. */
function done(
  i: number,
  mib: number,
  totalS: number,
  downS: number,
  over: Partial<MigrationRecord> = {},
): MigrationRecord {
  return {
    id: `mig-${i}`,
    workloadId: `wl-${i}`,
    sourceNodeId: 'node-a',
    destinationNodeId: 'node-b',
    destinationReason: '',
    strategy: 'stop-and-copy',
    transport: 'tls',
    state: 'completed',
    phases: [],
    criu: {},
    bytes: { pages: mib * MIB, images: 0 },
    throughput: { pagesBytesPerSec: 256 * MIB },
    downtimeMs: downS * 1000,
    createdAt: new Date(T0 + i * 60_000).toISOString(),
    resumedAt: new Date(T0 + i * 60_000 + totalS * 1000).toISOString(),
    updatedAt: new Date(T0 + i * 60_000 + totalS * 1000).toISOString(),
    ...over,
  };
}

describe('calibrateFromMigrations', () => {
  it('takes the medians of time and freeze without pages from completed stop-and-copy migrations', () => {
    // 512 MiB at 256 MiB/s = 2 s of pages: overheads 1, 2, 9 s; freezes without pages 0.2, 0.3, 0.4 s.
    const c = calibrateFromMigrations([done(1, 512, 3, 2.2), done(2, 512, 4, 2.3), done(3, 512, 11, 2.4)]);
    expect(c.samples).toBe(3);
    expect(c.perMigrationOverheadSeconds).toBeCloseTo(2);
    expect(c.fixedCostSeconds).toBeCloseTo(0.3);
  });

  it.each([
    // 512 MiB at 256 MiB/s = 2 s of pages, arriving after resume: the move ends with the pages phase.
    ['post-copy', 0.3, 5, 0.3],
    ['hybrid', 0.4, 6, 0.4],
  ] as const)(
    'reads completed %s migrations by their pages phase (as recorded: no stream throughput): whole freeze fixed',
    (strategy, downS, endS, fixed) => {
      const lazy = (i: number) =>
        done(i, 512, 1, downS, {
          strategy,
          throughput: undefined,
          phases: [
            {
              name: 'pages',
              startedAt: new Date(T0 + i * 60_000 + 1000).toISOString(),
              endedAt: new Date(T0 + i * 60_000 + endS * 1000).toISOString(),
              ok: true,
            },
          ],
        });
      const c = calibrateFromMigrations([lazy(1), lazy(2), lazy(3)]);
      expect(c.samples).toBe(3);
      // Pages from 1 s to endS s: the fill is the pages phase; the rest of the move moved no pages.
      expect(c.perMigrationOverheadSeconds).toBeCloseTo(1);
      expect(c.fixedCostSeconds).toBeCloseTo(fixed);
      expect(c.lazyFillBytesPerSec).toBeCloseTo((512 * MIB) / (endS - 1));
    },
  );

  it('gives a lazy fill rate only from three lazy samples or more', () => {
    const c = calibrateFromMigrations([done(1, 512, 3, 2.2), done(2, 512, 4, 2.3), done(3, 512, 11, 2.4)]);
    expect(c.samples).toBe(3);
    expect(c.lazyFillBytesPerSec).toBeUndefined();
  });

  it('keeps the configured figures with fewer than three usable samples (failed, unmeasured, pages unfinished ignored)', () => {
    const c = calibrateFromMigrations([
      done(1, 512, 3, 2.2),
      done(2, 512, 3, 0.3, { strategy: 'post-copy' }),
      done(3, 512, 3, 2.2, { state: 'rolled_back' }),
      done(4, 512, 3, 2.2, { throughput: {} }),
    ]);
    expect(c).toEqual({ samples: 1 });
  });
});
