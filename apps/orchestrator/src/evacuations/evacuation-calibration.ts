/**
 * The planner's fixed costs calibrated from completed migrations (issue 16), instead of the config's guesses:
 * per migration, the time that moved no pages (`perMigrationOverheadSeconds`: queueing, preflight, CRIU
 * start, restore, verify) and the freeze that moved no pages (`fixedCostSeconds`: parasite, non-memory state,
 * resume). Stop-and-copy: the freeze is pages + fixed cost, the page time is the migration's measured page
 * throughput, the move ends at resume. Post-copy and hybrid: the pages arrive after resume, in the `pages`
 * phase (their records carry no stream throughput: that phase's length is the page time), the move ends when
 * it does and the whole freeze is fixed cost; their page rate also sets `lazyFillBytesPerSec`, how fast lazy
 * pages really arrive (the lab filled at a fraction of a stop-and-copy stream: the model's default 1.1x
 * slowdown predicted ~3.4 s post-copy moves that took 4.5-6 s). Page bandwidth per pair comes from PairLinks
 * (evacuation-capabilities.ts). Pure: the caller passes the records.
 */
import type { MigrationRecord } from '@spotlift/domain';

export interface Calibration {
  perMigrationOverheadSeconds?: number;
  fixedCostSeconds?: number;
  /** Median page rate of the lazy (post-copy, hybrid) samples' fills, when at least MIN_SAMPLES of them. */
  lazyFillBytesPerSec?: number;
  /** Migrations the figures come from. */
  samples: number;
}

/** The newest this many samples count: old runs say little about the fleet today. */
const NEWEST = 20;
/** Fewer samples than this: keep the config's figures (one odd run must not set the model). */
const MIN_SAMPLES = 3;

/** Strategies whose pages arrive after resume (the `pages` phase). */
const LAZY = new Set(['post-copy', 'hybrid']);

/** The `pages` phase (lazy pages arriving after resume) as [start, end] epoch ms, if it ended well. */
const pagesPhase = (m: MigrationRecord): [number, number] | undefined => {
  const p = m.phases.find((x) => x.name === 'pages' && x.ok !== false && x.endedAt !== undefined);
  return p ? [Date.parse(p.startedAt), Date.parse(p.endedAt!)] : undefined;
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

interface Sample {
  overhead: number;
  fixed: number;
  /** Lazy samples: pages / fill seconds. */
  lazyRate?: number;
}

function sampleOf(m: MigrationRecord): Sample | undefined {
  if (m.state !== 'completed' || m.downtimeMs === undefined || m.resumedAt === undefined || m.bytes.pages <= 0)
    return undefined;
  const freeze = m.downtimeMs / 1000;
  const created = Date.parse(m.createdAt);
  if (LAZY.has(m.strategy)) {
    const phase = pagesPhase(m);
    if (!phase) return undefined;
    const fill = Math.max(1e-3, (phase[1] - phase[0]) / 1000);
    const total = (phase[1] - created) / 1000;
    return { overhead: Math.max(0, total - fill), fixed: freeze, lazyRate: m.bytes.pages / fill };
  }
  const rate = m.throughput?.pagesBytesPerSec ?? 0;
  if (m.strategy !== 'stop-and-copy' || rate <= 0) return undefined;
  const pageSeconds = m.bytes.pages / rate;
  const total = (Date.parse(m.resumedAt) - created) / 1000;
  return { overhead: Math.max(0, total - pageSeconds), fixed: Math.max(0, freeze - pageSeconds) };
}

export function calibrateFromMigrations(migrations: readonly MigrationRecord[]): Calibration {
  const samples = [...migrations]
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))
    .flatMap((m) => sampleOf(m) ?? [])
    .slice(0, NEWEST);
  if (samples.length < MIN_SAMPLES) return { samples: samples.length };
  const lazy = samples.flatMap((s) => (s.lazyRate !== undefined ? [s.lazyRate] : []));
  return {
    perMigrationOverheadSeconds: median(samples.map((s) => s.overhead)),
    fixedCostSeconds: median(samples.map((s) => s.fixed)),
    ...(lazy.length >= MIN_SAMPLES ? { lazyFillBytesPerSec: median(lazy) } : {}),
    samples: samples.length,
  };
}
