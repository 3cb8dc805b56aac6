/**
 * A fluid model of concurrent migrations leaving one node. Each migration first spends a fixed overhead
 * (no bandwidth: preflight, CRIU start-up, restore of non-memory state), then streams its bytes. Streams
 * share the source's outbound link and each destination's inbound link max-min fairly (what TCP flows
 * roughly converge to), and each stream is capped by its own ceiling (pair bandwidth, CRIU pipeline).
 */

/** One migration in the model. The simulator mutates `overheadLeftSeconds` and `bytesLeft`. */
export interface SimJob {
  id: string;
  destinationId: string;
  /** Ceiling for this stream alone: min(pair bandwidth, per-migration pipeline rate). */
  capBytesPerSec: number;
  overheadLeftSeconds: number;
  bytesLeft: number;
  startedAt: number;
  transferStartedAt?: number;
}

/** Shared links: the source's outbound capacity and each destination's inbound capacity (absent: unlimited). */
export interface Links {
  sourceBytesPerSec: number;
  inboundBytesPerSec: Readonly<Record<string, number>>;
  /**
   * CPU contention on the source: with n migrations running, each stream's own ceiling is divided by
   * 1 + contention x (n - 1). CRIU's dump pipeline (parasite, page pipes, TLS) is CPU-bound, so parallel dumps
   * slow each other even when the link has room (issue 16: three parallel 512 MiB dumps froze 5.6-6.1 s each,
   * one alone 1.7 s, i.e. about 1.25 here). Absent: 0, bytes only.
   */
  contention?: number;
}

/** When a job ended in the model. */
export interface SimFinish {
  id: string;
  finishedAt: number;
  transferStartedAt: number;
}

const EPS = 1e-9;

/** Max-min fair rates (progressive filling) for jobs in their transfer phase; others get 0. */
export function maxMinRates(jobs: readonly SimJob[], links: Links): number[] {
  const rates = jobs.map(() => 0);
  const live = new Set<number>();
  jobs.forEach((j, i) => {
    if (j.overheadLeftSeconds <= EPS && j.bytesLeft > 0) live.add(i);
  });
  const slow = 1 + (links.contention ?? 0) * Math.max(0, jobs.length - 1);
  const cap = (i: number): number => jobs[i]!.capBytesPerSec / slow;
  let src = links.sourceBytesPerSec;
  const dst = new Map<string, number>();
  for (const i of live) {
    const d = jobs[i]!.destinationId;
    dst.set(d, links.inboundBytesPerSec[d] ?? Number.POSITIVE_INFINITY);
  }
  while (live.size > 0) {
    const perDest = new Map<string, number>();
    for (const i of live) perDest.set(jobs[i]!.destinationId, (perDest.get(jobs[i]!.destinationId) ?? 0) + 1);
    let inc = src / live.size;
    for (const [d, n] of perDest) inc = Math.min(inc, dst.get(d)! / n);
    for (const i of live) inc = Math.min(inc, cap(i) - rates[i]!);
    if (!Number.isFinite(inc)) throw new RangeError('transfer model needs a finite source bandwidth');
    inc = Math.max(0, inc);
    for (const i of live) rates[i]! += inc;
    src -= inc * live.size;
    for (const [d, n] of perDest) dst.set(d, dst.get(d)! - inc * n);
    // Freeze every stream that hit a bottleneck: its own cap, its destination, or the source.
    for (const i of [...live]) {
      const j = jobs[i]!;
      const saturated =
        src <= EPS * links.sourceBytesPerSec || dst.get(j.destinationId)! <= EPS || cap(i) - rates[i]! <= EPS;
      if (saturated) live.delete(i);
    }
  }
  return rates;
}

/**
 * Advance the model to its next event (an overhead ending or a stream completing). Mutates `jobs`
 * in place, removes finished ones, and returns the new time and what finished.
 */
export function advance(jobs: SimJob[], links: Links, now: number): { now: number; finished: SimFinish[] } {
  if (jobs.length === 0) return { now, finished: [] };
  // A job with no overhead streams from the moment it exists (its freeze starts there for stop-and-copy).
  for (const j of jobs)
    if (j.overheadLeftSeconds <= EPS && j.transferStartedAt === undefined) j.transferStartedAt = now;
  const rates = maxMinRates(jobs, links);
  let dt = Number.POSITIVE_INFINITY;
  jobs.forEach((j, i) => {
    if (j.overheadLeftSeconds > EPS) dt = Math.min(dt, j.overheadLeftSeconds);
    else if (j.bytesLeft <= 0) dt = 0;
    else if (rates[i]! > 0) dt = Math.min(dt, j.bytesLeft / rates[i]!);
  });
  if (!Number.isFinite(dt)) throw new RangeError('transfer model is stuck: a stream has no bandwidth');
  const t = now + dt;
  const finished: SimFinish[] = [];
  jobs.forEach((j, i) => {
    if (j.overheadLeftSeconds > EPS) {
      j.overheadLeftSeconds -= dt;
      if (j.overheadLeftSeconds <= EPS) {
        j.overheadLeftSeconds = 0;
        j.transferStartedAt = t;
      }
    } else {
      // Snap to zero within a relative epsilon so the completing stream does not leave a float crumb.
      const sent = rates[i]! * dt;
      j.bytesLeft = j.bytesLeft - sent <= Math.max(1e-6, j.bytesLeft * 1e-12) ? 0 : j.bytesLeft - sent;
    }
  });
  for (let i = jobs.length - 1; i >= 0; i--) {
    const j = jobs[i]!;
    if (j.overheadLeftSeconds === 0 && j.bytesLeft <= 0) {
      finished.push({ id: j.id, finishedAt: t, transferStartedAt: j.transferStartedAt ?? t });
      jobs.splice(i, 1);
    }
  }
  finished.reverse();
  return { now: t, finished };
}

/** Copy jobs so a what-if run does not disturb the caller's state. */
export function cloneJobs(jobs: readonly SimJob[]): SimJob[] {
  return jobs.map((j) => ({ ...j }));
}

/** Run a copy of the model to completion with no new arrivals; finish time per job id. */
export function finishTimes(jobs: readonly SimJob[], links: Links, now: number): Map<string, SimFinish> {
  const work = cloneJobs(jobs);
  const out = new Map<string, SimFinish>();
  let t = now;
  while (work.length > 0) {
    const step = advance(work, links, t);
    t = step.now;
    for (const f of step.finished) out.set(f.id, f);
  }
  return out;
}
