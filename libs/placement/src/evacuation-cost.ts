/**
 * What a planned migration costs the workload, from its simulated transfer: the freeze (downtime) and, for
 * lazy strategies, the page fill after resume (stall). The plan's objective adds them up, weighted by
 * priority, with the fill counted at `postCopyStallWeight` of a second of downtime per second.
 */
import {
  EVACUATION_DEFAULTS,
  type EvacuationInput,
  type PlanObjective,
  type PlannedMigration,
} from './evacuation-types.js';
import type { ConcreteStrategy } from './types.js';

/** The parts of a strategy decision the cost needs. */
export interface CostedStrategy {
  strategy: ConcreteStrategy;
  /** Bytes the link carries for it (pre-copy rounds and the lazy factor included). */
  predictedBytes: number;
  /** Dirty bytes of the final (frozen or lazy) round. */
  finalBytes: number;
}

/** Freeze and page-fill seconds of one migration whose stream ran from `transferStart` to `finish`. */
export function moveCost(
  d: CostedStrategy,
  transferStart: number,
  finish: number,
  tFix: number,
): { downtime: number; stall: number } {
  const dur = Math.max(0, finish - transferStart);
  if (d.strategy === 'stop-and-copy') return { downtime: tFix + dur, stall: 0 };
  if (d.strategy === 'pre-copy') {
    // The final round goes at the rate the whole transfer averaged.
    const rate = dur > 0 ? d.predictedBytes / dur : Number.POSITIVE_INFINITY;
    return { downtime: tFix + d.finalBytes / rate, stall: 0 };
  }
  if (d.strategy === 'post-copy') return { downtime: tFix, stall: dur };
  // hybrid: the rounds run before the freeze; only the lazy final set arrives after resume.
  const share = d.predictedBytes > 0 ? Math.min(1, d.finalBytes / d.predictedBytes) : 0;
  return { downtime: tFix, stall: dur * share };
}

export const stallWeightOf = (input: EvacuationInput): number =>
  input.postCopyStallWeight ?? EVACUATION_DEFAULTS.postCopyStallWeight;

/** Downtime plus weighted stall: the per-workload figure the `downtime` objective minimises (before priority). */
export const costSeconds = (downtime: number, stall: number, weight: number): number => downtime + weight * stall;

/** The objective's figures over the lines predicted to finish in time (completed ones count as planned). */
export function objectiveOf(
  lines: readonly PlannedMigration[],
  kind: PlanObjective['kind'],
  weight: number,
): PlanObjective {
  const ok = lines.filter((m) => !m.willMiss && m.predictedDowntimeSeconds !== undefined);
  const dt = ok.map((m) => m.predictedDowntimeSeconds ?? 0);
  const stall = ok.reduce((s, m) => s + (m.predictedStallSeconds ?? 0), 0);
  return {
    kind,
    weightedCostSeconds: ok.reduce(
      (s, m) => s + m.priority * costSeconds(m.predictedDowntimeSeconds ?? 0, m.predictedStallSeconds ?? 0, weight),
      0,
    ),
    totalDowntimeSeconds: dt.reduce((a, b) => a + b, 0),
    maxDowntimeSeconds: Math.max(0, ...dt),
    totalStallSeconds: stall,
    stallWeight: weight,
    makespanSeconds: Math.max(0, ...ok.map((m) => m.predictedFinishSeconds ?? 0)),
  };
}
