/**
 * Strategy choice for one migration (`auto`), from the node pair's capabilities and the anchors' models
 * (performance-anchors.md section c): stop-and-copy freezes for the whole copy; pre-copy repeats rounds
 * that send what the previous round let dirty; post-copy freezes only for non-memory state and pulls
 * pages after resume; hybrid is pre-copy rounds followed by a lazy final round.
 */
import type { Strategy } from '@spotlift/domain';
import { fmtBytes, fmtRate, fmtSeconds } from './format.js';
import type { ConcreteStrategy, PostCopyTrial } from './types.js';

/** Model constants; defaults follow the anchors and LXD's round limit. */
export interface StrategyModel {
  /** t_fix: freeze, parasite, non-memory state, restore of tasks/files, resume. */
  fixedCostSeconds: number;
  /** W: the hot set rewritten continuously; later rounds never shrink below it. Unknown: no floor. */
  hotSetBytes?: number;
  /** Upper bound on pre-copy rounds including the first full round (LXD default: 10). */
  maxRounds: number;
  /** Stop iterating when a round leaves more than this fraction of the previous round dirty. */
  minShrink: number;
  /** Lazy pages move slower than a stream (demand faults, pre-paging); multiplies their transfer time. */
  lazyTransferFactor: number;
}

/** What {@link chooseStrategy} needs to know about one migration. */
export interface StrategyInput {
  memoryBytes: number;
  dirtyRateBytesPerSec: number;
  /** Throughput expected for this migration's page traffic. */
  bandwidthBytesPerSec: number;
  downtimeBudgetSeconds: number;
  /** Seconds until the source disappears; absent for a migration without deadline. */
  timeLeftSeconds?: number;
  capabilities: { softDirtyOnSource: boolean; postCopyTrial: PostCopyTrial };
  /** `auto` (default) or an explicit wish, honoured when the pair supports it. */
  requested?: Strategy;
  /** Restrict the strategies considered (the planner first restricts to the fewest-bytes ones). */
  allowed?: readonly ConcreteStrategy[];
  model?: Partial<StrategyModel>;
}

/** One strategy's predicted cost. */
export interface StrategyPrediction {
  strategy: ConcreteStrategy;
  supported: boolean;
  unsupportedReason?: string;
  totalSeconds: number;
  downtimeSeconds: number;
  /** Bytes the link must carry, lazy bytes weighted by `lazyTransferFactor`. */
  bytes: number;
  /** Pre-dump rounds before the final one (0 for stop-and-copy and post-copy). */
  rounds: number;
  /** Dirty bytes left for the final (frozen or lazy) round. */
  finalBytes: number;
  meetsBudget: boolean;
  meetsDeadline: boolean;
}

/** The decision and why. */
export interface StrategyDecision {
  strategy: ConcreteStrategy;
  predictedTotalSeconds: number;
  predictedDowntimeSeconds: number;
  predictedBytes: number;
  rounds: number;
  finalBytes: number;
  meetsBudget: boolean;
  meetsDeadline: boolean;
  reason: string;
  /** Strategies that were wanted but cannot run on this pair, each with why. */
  fallbacks: string[];
  alternatives: StrategyPrediction[];
}

export const DEFAULT_STRATEGY_MODEL: StrategyModel = {
  fixedCostSeconds: 0.1,
  maxRounds: 10,
  minShrink: 0.7,
  lazyTransferFactor: 1.1,
};

/** Simplest first: fewer moving parts, and the source keeps a full copy until commit for the first two. */
const PREFERENCE: readonly ConcreteStrategy[] = ['stop-and-copy', 'pre-copy', 'hybrid', 'post-copy'];

/** When an explicit strategy cannot run, try these in order. */
const FALLBACK: Readonly<Record<ConcreteStrategy, readonly ConcreteStrategy[]>> = {
  hybrid: ['pre-copy', 'post-copy', 'stop-and-copy'],
  'post-copy': ['pre-copy', 'stop-and-copy'],
  'pre-copy': ['stop-and-copy'],
  'stop-and-copy': [],
};

/** Why a strategy cannot run on this pair, or undefined when it can. */
export function unsupportedReason(strategy: ConcreteStrategy, caps: StrategyInput['capabilities']): string | undefined {
  const pre = caps.softDirtyOnSource
    ? undefined
    : 'source lacks mem_dirty_track (kernel without CONFIG_MEM_SOFT_DIRTY)';
  const post =
    caps.postCopyTrial === 'ok'
      ? undefined
      : caps.postCopyTrial === 'failed'
        ? 'the post-copy trial on this pair failed (check fs.pipe-max-size and userfaultfd)'
        : 'no post-copy trial has succeeded on this pair yet';
  if (strategy === 'pre-copy') return pre;
  if (strategy === 'post-copy') return post;
  if (strategy === 'hybrid') return pre ?? post;
  return undefined;
}

interface Rounds {
  seconds: number;
  bytes: number;
  rounds: number;
  finalBytes: number;
}

/**
 * Pre-dump rounds: round 0 sends M; round i sends what round i-1 let dirty, min(W, D * t_{i-1}).
 * Stop when the final freeze fits the budget, rounds stop shrinking, the round cap, or the deadline.
 */
function preCopyRounds(input: StrategyInput, m: StrategyModel, lazyFinal: boolean): Rounds {
  const b = input.bandwidthBytesPerSec;
  const d = Math.max(0, input.dirtyRateBytesPerSec);
  const floor = Math.min(m.hotSetBytes ?? input.memoryBytes, input.memoryBytes);
  const finalCost = (v: number): number => (lazyFinal ? (v / b) * m.lazyTransferFactor : v / b);
  let toSend = input.memoryBytes;
  let seconds = 0;
  let bytes = 0;
  let rounds = 0;
  for (;;) {
    const t = toSend / b;
    seconds += t;
    bytes += toSend;
    rounds += 1;
    const dirty = Math.min(floor, d * t);
    const converged = lazyFinal
      ? finalCost(dirty) <= input.downtimeBudgetSeconds
      : m.fixedCostSeconds + dirty / b <= input.downtimeBudgetSeconds;
    const shrinking = dirty <= m.minShrink * toSend;
    // One more round would cost dirty/b now and leave about d*dirty/b for the final round.
    const nextEnd = seconds + dirty / b + m.fixedCostSeconds + finalCost(Math.min(floor, (d * dirty) / b));
    const fitsAnother = input.timeLeftSeconds === undefined || nextEnd <= input.timeLeftSeconds;
    if (converged || !shrinking || rounds >= m.maxRounds || !fitsAnother || dirty <= 0) {
      return { seconds, bytes, rounds, finalBytes: dirty };
    }
    toSend = dirty;
  }
}

function predict(strategy: ConcreteStrategy, input: StrategyInput, m: StrategyModel): StrategyPrediction {
  const b = input.bandwidthBytesPerSec;
  const mem = input.memoryBytes;
  let total: number;
  let downtime: number;
  let bytes: number;
  let rounds = 0;
  let finalBytes = mem;
  if (strategy === 'stop-and-copy') {
    downtime = m.fixedCostSeconds + mem / b;
    total = downtime;
    bytes = mem;
  } else if (strategy === 'post-copy') {
    downtime = m.fixedCostSeconds;
    total = downtime + (mem / b) * m.lazyTransferFactor;
    bytes = mem * m.lazyTransferFactor;
  } else {
    const lazy = strategy === 'hybrid';
    const r = preCopyRounds(input, m, lazy);
    rounds = r.rounds;
    finalBytes = r.finalBytes;
    const finalCopy = (r.finalBytes / b) * (lazy ? m.lazyTransferFactor : 1);
    downtime = m.fixedCostSeconds + (lazy ? 0 : finalCopy);
    total = r.seconds + m.fixedCostSeconds + finalCopy;
    bytes = r.bytes + r.finalBytes * (lazy ? m.lazyTransferFactor : 1);
  }
  const why = unsupportedReason(strategy, input.capabilities);
  return {
    strategy,
    supported: why === undefined,
    ...(why !== undefined ? { unsupportedReason: why } : {}),
    totalSeconds: total,
    downtimeSeconds: downtime,
    bytes,
    rounds,
    finalBytes,
    meetsBudget: downtime <= input.downtimeBudgetSeconds,
    meetsDeadline: input.timeLeftSeconds === undefined || total <= input.timeLeftSeconds,
  };
}

function decision(
  p: StrategyPrediction,
  reason: string,
  fallbacks: string[],
  all: StrategyPrediction[],
): StrategyDecision {
  return {
    strategy: p.strategy,
    predictedTotalSeconds: p.totalSeconds,
    predictedDowntimeSeconds: p.downtimeSeconds,
    predictedBytes: p.bytes,
    rounds: p.rounds,
    finalBytes: p.finalBytes,
    meetsBudget: p.meetsBudget,
    meetsDeadline: p.meetsDeadline,
    reason,
    fallbacks,
    alternatives: all,
  };
}

const summary = (p: StrategyPrediction): string =>
  `${p.strategy}: downtime ${fmtSeconds(p.downtimeSeconds)}, total ${fmtSeconds(p.totalSeconds)}` +
  (p.rounds > 0 ? `, ${p.rounds} round(s)` : '');

/**
 * Pick the strategy for one migration and say why. `auto`: the simplest supported strategy that meets
 * both the downtime budget and the deadline; else the least downtime among those meeting the deadline;
 * else the fastest. An explicit strategy the pair cannot run falls back along a fixed chain.
 */
export function chooseStrategy(input: StrategyInput): StrategyDecision {
  if (!(input.bandwidthBytesPerSec > 0) || !(input.memoryBytes >= 0)) {
    throw new RangeError('chooseStrategy needs a positive bandwidth and a non-negative memory size');
  }
  const m = { ...DEFAULT_STRATEGY_MODEL, ...input.model };
  const allowed = input.allowed ?? PREFERENCE;
  const all = PREFERENCE.map((s) => predict(s, input, m));
  // Hybrid whose rounds did not shrink the lazy set is post-copy that sent the memory twice: drop it.
  const pointless = (p: StrategyPrediction): boolean =>
    p.strategy === 'hybrid' && p.finalBytes > m.minShrink * input.memoryBytes;
  const usable = all.filter((p) => p.supported && allowed.includes(p.strategy) && !pointless(p));
  const fallbacks = all
    .filter((p) => !p.supported && allowed.includes(p.strategy))
    .map((p) => `${p.strategy} unavailable: ${p.unsupportedReason ?? ''}`);
  const requested = input.requested ?? 'auto';
  const ctx = `(${fmtBytes(input.memoryBytes)}, dirty ${fmtRate(input.dirtyRateBytesPerSec)}, link ${fmtRate(input.bandwidthBytesPerSec)})`;
  if (requested !== 'auto') {
    for (const s of [requested, ...FALLBACK[requested]]) {
      const p = all.find((x) => x.strategy === s)!;
      if (!p.supported) continue;
      const via =
        s === requested
          ? 'requested'
          : `requested ${requested} unavailable (${unsupportedReason(requested, input.capabilities) ?? ''}); fell back`;
      return decision(p, `${via}: ${summary(p)} ${ctx}`, fallbacks, all);
    }
  }
  // stop-and-copy is always supported, so `usable` is only empty if the caller's allow-list excludes it.
  const pool = usable.length > 0 ? usable : all.filter((p) => p.strategy === 'stop-and-copy');
  const left = input.timeLeftSeconds === undefined ? '' : ` and the ${fmtSeconds(input.timeLeftSeconds)} left`;
  const both = pool.filter((p) => p.meetsBudget && p.meetsDeadline);
  if (both.length > 0) {
    const p = both[0]!;
    const reason = `${summary(p)} fits the ${fmtSeconds(input.downtimeBudgetSeconds)} budget${left}; simplest that does ${ctx}`;
    return decision(p, reason, fallbacks, all);
  }
  const onTime = pool.filter((p) => p.meetsDeadline);
  if (onTime.length > 0) {
    const p = onTime.reduce((a, b) => (b.downtimeSeconds < a.downtimeSeconds - 1e-9 ? b : a));
    const reason = `no supported strategy meets the ${fmtSeconds(input.downtimeBudgetSeconds)} budget; least downtime in time: ${summary(p)} ${ctx}`;
    return decision(p, reason, fallbacks, all);
  }
  const p = pool.reduce((a, b) => (b.totalSeconds < a.totalSeconds - 1e-9 ? b : a));
  const reason = `no supported strategy finishes in the ${fmtSeconds(input.timeLeftSeconds ?? 0)} left; fastest: ${summary(p)} ${ctx}`;
  return decision(p, reason, fallbacks, all);
}
