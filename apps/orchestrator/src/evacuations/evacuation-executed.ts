/**
 * The evacuation as it ran, from its jobs (each copied from its migration's record): who ran at the same time
 * as whom, when each started and ended, by which strategy, and the measured downtime beside the prediction the
 * job started with. Pure: the plan's text says what was intended, this says what happened (issue 16: a final
 * plan said "up to 1 at once" where three had run at once).
 */
import type { EvacuationJob, EvacuationRecord, ExecutedJob, ExecutedPlan } from '@spotlift/domain';

const seconds = (iso: string | undefined, origin: number): number | undefined =>
  iso ? (Date.parse(iso) - origin) / 1000 : undefined;

/** Jobs that ran a migration (started), with their interval on the plan's clock. */
function intervals(rec: EvacuationRecord, origin: number, nowSeconds: number) {
  return rec.jobs
    .filter((j) => j.migrationId !== undefined && j.startedAt !== undefined)
    .map((j) => ({
      job: j,
      start: seconds(j.startedAt, origin)!,
      end: seconds(j.endedAt, origin) ?? nowSeconds,
    }));
}

/** Most intervals open at one instant (a sweep over starts and ends; an end at t closes before a start at t). */
function peak(spans: ReadonlyArray<{ start: number; end: number }>): number {
  const events = spans.flatMap((s) => [
    { t: s.start, d: 1 },
    { t: s.end, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let most = 0;
  for (const e of events) most = Math.max(most, (open += e.d));
  return most;
}

const ms = (s: number | undefined): number | undefined => (s === undefined ? undefined : Math.round(s * 1000));

function line(job: EvacuationJob, start: number, end: number | undefined, others: string[]): ExecutedJob {
  const opt = <K extends keyof ExecutedJob>(k: K, v: ExecutedJob[K] | undefined): Partial<ExecutedJob> =>
    v === undefined ? {} : { [k]: v };
  return {
    workloadId: job.workloadId,
    state: job.state,
    concurrentWith: others,
    startSeconds: start,
    ...opt('migrationId', job.migrationId),
    ...opt('destinationNodeId', job.destinationNodeId),
    ...opt('strategy', job.strategy),
    ...opt('finishSeconds', end),
    ...opt('predictedFinishSeconds', job.predictedFinishSeconds),
    ...opt('predictedDowntimeMs', ms(job.predictedDowntimeSeconds)),
    ...opt('downtimeMs', job.downtimeMs),
    ...opt('predictedStallMs', ms(job.predictedStallSeconds)),
    ...opt('timeToAllPagesMs', job.timeToAllPagesMs),
  };
}

/** The executed plan at `now` (jobs still running count as running until now). */
export function executedPlan(rec: EvacuationRecord, now: Date): ExecutedPlan | undefined {
  if (!rec.plannedAt) return undefined;
  const origin = Date.parse(rec.plannedAt);
  const spans = intervals(rec, origin, (now.getTime() - origin) / 1000);
  const jobs = spans.map((s) => {
    const others = spans.filter((o) => o !== s && o.start < s.end && s.start < o.end).map((o) => o.job.workloadId);
    return line(s.job, s.start, s.job.endedAt ? s.end : undefined, others);
  });
  const done = jobs.filter((j) => j.downtimeMs !== undefined);
  const totalDowntimeMs = done.reduce((a, j) => a + (j.downtimeMs ?? 0), 0);
  const maxDowntimeMs = Math.max(0, ...done.map((j) => j.downtimeMs ?? 0));
  const predictedTotalDowntimeMs = done.reduce((a, j) => a + (j.predictedDowntimeMs ?? 0), 0);
  const ends = jobs.map((j) => j.finishSeconds).filter((x): x is number => x !== undefined);
  const finishSeconds = ends.length ? Math.max(...ends) : undefined;
  const most = peak(spans);
  const byStrategy = new Map<string, number>();
  for (const j of jobs) byStrategy.set(j.strategy ?? '?', (byStrategy.get(j.strategy ?? '?') ?? 0) + 1);
  const strategies = [...byStrategy].map(([s, n]) => `${n} ${s}`).join(', ');
  const summary =
    `ran ${jobs.length} migration(s), up to ${most} at once (${strategies || 'none'}); ` +
    `downtime ${totalDowntimeMs} ms in total (predicted ${predictedTotalDowntimeMs} ms), max ${maxDowntimeMs} ms` +
    (finishSeconds !== undefined ? `; last ended ${finishSeconds.toFixed(2)} s after the plan` : '');
  return {
    peakConcurrency: most,
    jobs,
    totalDowntimeMs,
    maxDowntimeMs,
    predictedTotalDowntimeMs,
    ...(finishSeconds !== undefined ? { finishSeconds } : {}),
    summary,
  };
}
