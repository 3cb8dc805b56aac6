/**
 * The planner's fixed costs calibrated from completed migrations (issue 16), instead of the config's guesses:
 * per migration, the time that moved no pages (`perMigrationOverheadSeconds`: queueing, preflight, CRIU
 * start, restore, verify) and the freeze that moved no pages (`fixedCostSeconds`: parasite, non-memory state,
 * resume). Stop-and-copy: the freeze is pages + fixed cost, the move ends at resume. Post-copy and hybrid: the
 * pages arrive after resume, so the move ends when the `pages` phase does and the whole freeze is fixed cost (the
 * lab showed post-copy moves of 4.5-6 s where the stop-and-copy-only figures predicted ~3.4 s). The page time
 * is each migration's own measured page throughput. Page bandwidth per pair comes from PairLinks (evacuation-capabilities.ts).
 * Pure: the caller passes the records.
 */
import type { MigrationRecord } from '@spotlift/domain';

export interface Calibration {
  perMigrationOverheadSeconds?: number;
  fixedCostSeconds?: number;
  /** Migrations the figures come from. */
  samples: number;
}

/** The newest this many samples count: old runs say little about the fleet today. */
const NEWEST = 20;
/** Fewer samples than this: keep the config's figures (one odd run must not set the model). */
const MIN_SAMPLES = 3;

/** Strategies whose pages arrive after resume (the `pages` phase). */
const LAZY = new Set(['post-copy', 'hybrid']);

/** When the last lazy page arrived: the `pages` phase's end, if it ended well. */
const pagesEnd = (m: MigrationRecord): number | undefined => {
  const p = m.phases.find((x) => x.name === 'pages' && x.ok !== false && x.endedAt !== undefined);
  return p ? Date.parse(p.endedAt!) : undefined;
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export function calibrateFromMigrations(migrations: readonly MigrationRecord[]): Calibration {
  const samples = migrations
    .filter(
      (m) =>
        m.state === 'completed' &&
        m.downtimeMs !== undefined &&
        m.resumedAt !== undefined &&
        m.bytes.pages > 0 &&
        (m.throughput?.pagesBytesPerSec ?? 0) > 0 &&
        (m.strategy === 'stop-and-copy' || (LAZY.has(m.strategy) && pagesEnd(m) !== undefined)),
    )
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))
    .slice(0, NEWEST)
    .map((m) => {
      const pageSeconds = m.bytes.pages / m.throughput!.pagesBytesPerSec!;
      const lazy = LAZY.has(m.strategy);
      const end = lazy ? pagesEnd(m)! : Date.parse(m.resumedAt!);
      const total = (end - Date.parse(m.createdAt)) / 1000;
      const freeze = m.downtimeMs! / 1000;
      return { overhead: Math.max(0, total - pageSeconds), fixed: lazy ? freeze : Math.max(0, freeze - pageSeconds) };
    });
  if (samples.length < MIN_SAMPLES) return { samples: samples.length };
  return {
    perMigrationOverheadSeconds: median(samples.map((s) => s.overhead)),
    fixedCostSeconds: median(samples.map((s) => s.fixed)),
    samples: samples.length,
  };
}
