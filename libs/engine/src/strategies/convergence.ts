import type { PreCopyRound } from '@spotlift/domain';

/** What decides whether pre-copy runs another round. Times in ms, sizes in bytes. */
export interface ConvergenceOptions {
  /** The job's downtime budget. */
  budgetMs: number;
  /** Freeze cost of the final dump beyond its pages (seize, parasite, non-memory images). */
  fixedFreezeMs: number;
  maxRounds: number;
  /** A round writing more than this fraction of the previous round's pages is "not shrinking". */
  minShrink: number;
  /** Time left until the job's deadline; absent without a deadline. */
  timeLeftMs?: number;
  /**
   * Hybrid: the final round is lazy, so the freeze does not grow with the dirty set; what the rounds buy is
   * a short lazy phase. The budget then bounds the lazy transfer of the remaining dirty pages.
   */
  lazyFinal?: boolean;
}

export interface ConvergenceDecision {
  stop: boolean;
  /** Why, for the job record and the operator. */
  reason: string;
  /** Final freeze (or, lazy final: lazy transfer) predicted if the final dump ran now. */
  predictedFreezeMs: number;
  /** Dirty bytes the final dump is predicted to carry. */
  predictedFinalBytes: number;
  /** The bandwidth the prediction used. */
  bandwidthBytesPerSec: number;
}

/**
 * Bandwidth over all rounds so far (bytes over the time spent moving them), so that round 1, which moved
 * the most, weighs the most: small rounds are dominated by fixed costs and would understate it.
 */
export function roundsBandwidth(rounds: readonly PreCopyRound[]): number {
  let bytes = 0;
  let seconds = 0;
  for (const r of rounds) {
    if (r.bytes <= 0 || !(r.bandwidthBytesPerSec > 0)) continue;
    bytes += r.bytes;
    seconds += r.bytes / r.bandwidthBytesPerSec;
  }
  return seconds > 0 ? bytes / seconds : 0;
}

const ms = (x: number) => `${Math.round(x)} ms`;

/**
 * After each round: stop when the predicted final freeze fits the budget, when rounds stop shrinking, at the
 * round limit, or when another round would not fit before the deadline. The final dump is predicted to carry
 * what the last round carried (the pages one round's time lets the workload dirty), sent at the measured
 * bandwidth. Pure: the same rounds give the same answer, in the engine and in tests.
 */
export function decideAfterRound(rounds: readonly PreCopyRound[], o: ConvergenceOptions): ConvergenceDecision {
  const last = rounds.at(-1);
  if (!last) throw new RangeError('decideAfterRound needs at least one round');
  const prev = rounds.at(-2);
  const n = rounds.length;
  const bw = roundsBandwidth(rounds);
  const finalBytes = last.bytes;
  const sendMs = bw > 0 ? (finalBytes / bw) * 1000 : finalBytes > 0 ? Infinity : 0;
  const predicted = o.lazyFinal ? sendMs : o.fixedFreezeMs + sendMs;
  const base = { predictedFreezeMs: predicted, predictedFinalBytes: finalBytes, bandwidthBytesPerSec: bw };
  const what = o.lazyFinal ? 'lazy transfer of the remaining dirty pages' : 'final freeze';
  const stop = (reason: string): ConvergenceDecision => ({ ...base, stop: true, reason });

  if (last.pagesWritten === 0) return stop(`converged: round ${n} found no dirty page`);
  if (predicted <= o.budgetMs) {
    return stop(`converged: predicted ${what} ${ms(predicted)} fits the ${ms(o.budgetMs)} budget after ${n} round(s)`);
  }
  if (prev && last.pagesWritten > o.minShrink * prev.pagesWritten) {
    return stop(
      `rounds stopped shrinking: round ${n} wrote ${last.pagesWritten} pages, round ${n - 1} ${prev.pagesWritten} ` +
        `(more than ${Math.round(o.minShrink * 100)}%); predicted ${what} ${ms(predicted)} against a ${ms(o.budgetMs)} budget`,
    );
  }
  if (n >= o.maxRounds) {
    return stop(
      `round limit (${o.maxRounds}) reached; predicted ${what} ${ms(predicted)} against a ${ms(o.budgetMs)} budget`,
    );
  }
  if (o.timeLeftMs !== undefined) {
    // Another round takes about as long as this one and leaves at least the same freeze to pay.
    const needed = last.durationMs + predicted + o.fixedFreezeMs;
    if (needed > o.timeLeftMs) {
      return stop(
        `the deadline leaves ${ms(Math.max(0, o.timeLeftMs))}, another round and the final dump need about ${ms(needed)}`,
      );
    }
  }
  return {
    ...base,
    stop: false,
    reason: `round ${n} wrote ${last.pagesWritten} pages; predicted ${what} ${ms(predicted)} exceeds the ${ms(o.budgetMs)} budget`,
  };
}
