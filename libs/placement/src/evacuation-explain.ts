/**
 * The plan's explanation per job, for people reading the evacuation record: when it starts and why then,
 * whether it runs alone or alongside others and why, and why this strategy (the admission's reason).
 */
import type { PlannedMigration } from './evacuation-types.js';
import { fmtSeconds } from './format.js';

/** What the chosen plan is compared with to explain its parallelism. */
export interface TimingContext {
  kind: 'downtime' | 'finish';
  deadline: number;
  /** Slots the chosen plan uses. */
  k: number;
  workSaved: number;
  /** The cheapest plan found with one slot fewer, if one was tried. */
  fewer?: { k: number; workSaved: number; misses: number; cost: number };
}

const overlaps = (a: PlannedMigration, b: PlannedMigration): boolean =>
  (a.startSeconds ?? 0) < (b.predictedFinishSeconds ?? 0) - 1e-9 &&
  (b.startSeconds ?? 0) < (a.predictedFinishSeconds ?? 0) - 1e-9;

/** Sets `concurrentWith` and `explanation` on the scheduled lines that are not already running. */
export function explainTiming(lines: PlannedMigration[], t: TimingContext): void {
  const live = lines.filter((m) => !m.willMiss && m.startSeconds !== undefined);
  const lastFinish = Math.max(0, ...live.map((m) => m.predictedFinishSeconds ?? 0));
  for (const m of live) {
    const others = live.filter((o) => o !== m && overlaps(o, m)).map((o) => o.workloadId);
    if (others.length) m.concurrentWith = others;
    else delete m.concurrentWith;
    if (m.inFlight || m.completed) continue;
    const start = m.startSeconds ?? 0;
    const before = live.find((o) => o !== m && Math.abs((o.predictedFinishSeconds ?? -1) - start) < 1e-6);
    const when = `starts at ${fmtSeconds(start)}${before ? ` as ${before.workloadId} ends` : start > 1e-9 ? ' when a slot frees' : ''}`;
    const slack = `the last move finishes at ${fmtSeconds(lastFinish)}, ${fmtSeconds(t.deadline - lastFinish)} before the deadline`;
    let why: string;
    if (!others.length) {
      why =
        t.kind === 'downtime'
          ? `alone: one at a time freezes each workload least and still saves everything this plan saves (${slack})`
          : `alone (${slack})`;
    } else if (t.fewer && t.fewer.workSaved < t.workSaved * (1 - 1e-9)) {
      why = `alongside ${others.join(', ')}: with ${t.fewer.k} at once the plan would save less before the deadline (${t.fewer.misses} predicted miss(es))`;
    } else if (t.kind === 'downtime') {
      why = `alongside ${others.join(', ')}: ${t.k} at once is the least weighted downtime found that saves this much (${slack})`;
    } else {
      why = `alongside ${others.join(', ')}: up to ${t.k} at once finishes earliest (objective 'finish'; ${slack})`;
    }
    m.explanation = `${when}, ${why}. Strategy ${m.strategy ?? '?'}: ${m.strategyReason ?? ''}`;
  }
}
