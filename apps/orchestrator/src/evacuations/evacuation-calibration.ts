/**
 * The planner's fixed costs calibrated from completed migrations (issue 16), instead of the config's guesses:
 * per migration, the time that moved no pages (`perMigrationOverheadSeconds`: queueing, preflight, CRIU
 * start, restore, verify) and the freeze that moved no pages (`fixedCostSeconds`: parasite, non-memory state,
 * resume). Stop-and-copy migrations only, where the freeze is pages + fixed cost; the page time is each
 * migration's own measured page throughput. Page bandwidth per pair comes from PairLinks (evacuation-capabilities.ts).
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
        m.strategy === 'stop-and-copy' &&
        m.downtimeMs !== undefined &&
        m.resumedAt !== undefined &&
        m.bytes.pages > 0 &&
        (m.throughput?.pagesBytesPerSec ?? 0) > 0,
    )
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))
    .slice(0, NEWEST)
    .map((m) => {
      const pageSeconds = m.bytes.pages / m.throughput!.pagesBytesPerSec!;
      const total = (Date.parse(m.resumedAt!) - Date.parse(m.createdAt)) / 1000;
      return { overhead: Math.max(0, total - pageSeconds), fixed: Math.max(0, m.downtimeMs! / 1000 - pageSeconds) };
    });
  if (samples.length < MIN_SAMPLES) return { samples: samples.length };
  return {
    perMigrationOverheadSeconds: median(samples.map((s) => s.overhead)),
    fixedCostSeconds: median(samples.map((s) => s.fixed)),
    samples: samples.length,
  };
}
