/**
 * Admission of one workload into a running pass: choose its destination and strategy, then check on the
 * shared-bandwidth model that it and every migration admitted before it still finish by the deadline.
 * This is the knapsack-style check that makes the greedy skip an item rather than let it make others late.
 */
import { reservedBytes, type CapacityLedger } from './capacity-ledger.js';
import { chooseDestination } from './choose-destination.js';
import {
  chooseStrategy,
  DEFAULT_STRATEGY_MODEL,
  type StrategyDecision,
  type StrategyModel,
  type StrategyPrediction,
} from './choose-strategy.js';
import { costSeconds, moveCost, stallWeightOf, type CostedStrategy } from './evacuation-cost.js';
import { streamCap, streamCapOf } from './evacuation-model.js';
import { EVACUATION_DEFAULTS, type EvacuationInput, type PlannedMigration } from './evacuation-types.js';
import { fmtRate, fmtSeconds } from './format.js';
import { finishTimes, type Links, type SimJob } from './transfer-sim.js';
import type { CandidateNode, ConcreteStrategy, PlacementWorkload } from './types.js';

/** Slack on time comparisons, seconds: the model's float arithmetic must not flip a decision. */
export const EPS = 1e-6;
/** Destinations tried per admission: the best few by placement score, in case the best one is crowded. */
const TRIES = 3;
/** `downtime` objective: another destination replaces the better-scored one only below this share of its cost. */
const CLEARLY_CHEAPER = 0.8;

/** A migration already running when the pass starts. */
export interface PinnedJob {
  migration: PlannedMigration;
  sim: SimJob;
}

/** Everything one pass needs; the ledger and groups already account for pinned and completed work. */
export interface ScheduleContext {
  input: EvacuationInput;
  now: number;
  deadline: number;
  parallelism: number;
  allowed: readonly ConcreteStrategy[];
  queue: readonly PlacementWorkload[];
  pinned: readonly PinnedJob[];
  ledger: CapacityLedger;
  groups: Readonly<Record<string, readonly string[]>>;
  failedOn: Readonly<Record<string, readonly string[]>>;
  /** Per workload, the destinations that pass the filters that cannot change during a plan (optional speed-up). */
  eligible?: ReadonlyMap<string, readonly CandidateNode[]>;
  /**
   * `downtime`: try the allowed strategies cheapest first (downtime + weighted page fill) and take the first that
   * keeps everyone in time and within their caps. `finish` (default): `chooseStrategy`'s simplest-in-budget pick.
   */
  objective?: 'downtime' | 'finish';
}

/** What was admitted, as far as later admissions must keep it within its downtime cap. */
export interface Pick {
  decision: CostedStrategy;
  maxDowntimeSeconds?: number;
}

/** The state of a pass as it unfolds. */
export interface State {
  now: number;
  active: SimJob[];
  mustMeet: Set<string>;
  ledger: CapacityLedger;
  groups: Record<string, string[]>;
  /** Destinations by id as placement sees them now; refreshed only where something changed. */
  view: Map<string, CandidateNode>;
  byId: Map<string, CandidateNode>;
  /** The fastest stream any destination offers (for the timing pre-check). */
  bestCap: number;
  /** Admitted jobs by workload id (pinned in-flight jobs have none: their freeze is not ours to change). */
  picks: Map<string, Pick>;
}

/** Whether a workload may start now, and with what (or why not). */
export type Admission =
  | { ok: true; job: SimJob; decision: StrategyDecision; destinationReason: string }
  | { ok: false; permanent: boolean; reason: string };

/** One destination as placement should see it now: memory left, groups present, the share a new stream gets. */
export function refresh(input: EvacuationInput, st: State, id: string): void {
  const d = st.byId.get(id);
  if (!d) return;
  const into = st.active.filter((j) => j.destinationId === id).length;
  const inbound = d.inboundBandwidthBytesPerSec ?? Number.POSITIVE_INFINITY;
  st.view.set(id, {
    ...d,
    freeMemoryBytes: st.ledger.capacity[id] ?? 0,
    reservedMemoryBytes: reservedBytes(st.ledger, id),
    antiAffinityGroups: st.groups[id] ?? [],
    // Score what a new stream would get now, so busy destinations rank lower.
    bandwidthFromSourceBytesPerSec: Math.min(streamCapOf(input, d), inbound / (1 + into)),
  });
}

/**
 * Cheap timing test before any placement work: the workload alone on the fastest possible stream, or
 * added to the running set on a stream that shares no destination, with its fewest bytes. Both are
 * best cases for the workload itself, so failing them means no destination can make it in time.
 */
function timingPrecheck(
  ctx: ScheduleContext,
  st: State,
  w: PlacementWorkload,
  links: Links,
  bestCap: number,
): Admission | undefined {
  const o = ctx.input.perMigrationOverheadSeconds;
  const alone = st.now + o + w.memoryBytes / bestCap;
  if (alone > ctx.deadline + EPS) {
    const need = alone - st.now;
    // Blame the queue only if the workload would have fitted had it started first.
    const waited = st.now > ctx.now + EPS && ctx.now + need <= ctx.deadline + EPS;
    const reason = waited
      ? `needs at least ${fmtSeconds(need)} even alone (${fmtSeconds(o)} overhead + transfer), only ${fmtSeconds(ctx.deadline - st.now)} left at ${fmtSeconds(st.now)}, after higher-ranked migrations had the link`
      : `needs at least ${fmtSeconds(need)} even alone (${fmtSeconds(o)} overhead + transfer at ${fmtRate(bestCap)}), the deadline is ${fmtSeconds(ctx.deadline - ctx.now)} away`;
    return { ok: false, permanent: true, reason };
  }
  const probe: SimJob = {
    id: w.id,
    destinationId: '\u0000probe',
    capBytesPerSec: bestCap,
    overheadLeftSeconds: o,
    bytesLeft: w.memoryBytes,
    startedAt: st.now,
  };
  const fin = finishTimes([...st.active, probe], links, st.now).get(w.id)?.finishedAt ?? 0;
  if (fin <= ctx.deadline + EPS) return undefined;
  const reason = `would finish at ${fmtSeconds(fin)} at best, after the deadline (${fmtSeconds(ctx.deadline)}), sharing the link with ${st.active.length} higher-ranked migration(s)`;
  return { ok: false, permanent: false, reason };
}

/** Try to start `w` now; see the file comment. */
export function tryAdmit(ctx: ScheduleContext, st: State, w: PlacementWorkload, links: Links): Admission {
  const { input } = ctx;
  const pre = timingPrecheck(ctx, st, w, links, st.bestCap);
  if (pre) return pre;
  const into = (id: string): number => st.active.filter((j) => j.destinationId === id).length;
  const view = (ctx.eligible?.get(w.id) ?? input.destinations).map((d) => st.view.get(d.id)!);
  const options = {
    ...input.placement,
    excludeNodeIds: [...(input.placement?.excludeNodeIds ?? []), ...(ctx.failedOn[w.id] ?? [])],
    rankLimit: TRIES,
  };
  let placement = chooseDestination(w, input.source, view, options);
  // The pre-filtered view hides why the other nodes were excluded; ask again with all of them to say so.
  if (!placement.ok && ctx.eligible) {
    placement = chooseDestination(
      w,
      input.source,
      input.destinations.map((d) => st.view.get(d.id)!),
      options,
    );
  }
  // Memory only fills up and groups only grow during a plan, so no destination now means none later.
  if (!placement.ok) return { ok: false, permanent: true, reason: placement.reason };
  const o = input.perMigrationOverheadSeconds;
  const model = { ...DEFAULT_STRATEGY_MODEL, ...input.strategyModel };
  let lastReason = '';
  let allAlone = true;
  // `downtime`: the first admissible option of each ranked destination competes on cost (a pair whose post-copy
  // trial failed must not keep the workload off post-copy when another pair's passed); `finish`: the first wins.
  let best: { admitted: Extract<Admission, { ok: true }>; cost: number } | undefined;
  for (const cand of placement.ranked) {
    const dest = st.byId.get(cand.nodeId)!;
    const cap = streamCap(input, dest.id);
    const inbound = dest.inboundBandwidthBytesPerSec ?? Number.POSITIVE_INFINITY;
    const slow = 1 + (links.contention ?? 0) * st.active.length;
    const est = Math.min(cap / slow, links.sourceBytesPerSec / (st.active.length + 1), inbound / (into(dest.id) + 1));
    const decision = chooseStrategy({
      memoryBytes: w.memoryBytes,
      dirtyRateBytesPerSec: w.dirtyRateBytesPerSec,
      bandwidthBytesPerSec: est,
      downtimeBudgetSeconds:
        w.downtimeBudgetSeconds ??
        input.defaultDowntimeBudgetSeconds ??
        EVACUATION_DEFAULTS.defaultDowntimeBudgetSeconds,
      timeLeftSeconds: Math.max(0, ctx.deadline - st.now - o),
      capabilities: { softDirtyOnSource: input.source.softDirty, postCopyTrial: dest.postCopyTrial ?? 'untested' },
      allowed: ctx.allowed,
      model,
    });
    const options = ctx.objective === 'downtime' ? cheapestFirst(decision, w, est, model, ctx) : [decision];
    const passedOver: string[] = [];
    for (const option of options) {
      const alone = st.now + o + option.predictedBytes / cap;
      if (alone > ctx.deadline + EPS) {
        const need = alone - st.now;
        const waited = st.now > ctx.now + EPS && ctx.now + need <= ctx.deadline + EPS;
        const when = waited ? ` at ${fmtSeconds(st.now)}, after higher-ranked migrations had the link` : '';
        lastReason = `needs ${fmtSeconds(need)} even alone on ${dest.id} by ${option.strategy} (${fmtSeconds(o)} overhead + transfer), only ${fmtSeconds(ctx.deadline - st.now)} left${when}`;
        passedOver.push(`${option.strategy} too slow`);
        continue;
      }
      allAlone = false;
      const job: SimJob = {
        id: w.id,
        destinationId: dest.id,
        capBytesPerSec: cap,
        overheadLeftSeconds: o,
        bytesLeft: option.predictedBytes,
        startedAt: st.now,
      };
      const fin = finishTimes([...st.active, job], links, st.now);
      const late = [...st.mustMeet, w.id].filter((id) => (fin.get(id)?.finishedAt ?? 0) > ctx.deadline + EPS);
      const over = overCap(ctx, st, fin, w, option);
      if (late.length === 0 && over.length === 0) {
        const destinationReason =
          dest.id === placement.nodeId
            ? placement.reason
            : `${dest.id} (best-scored ${placement.nodeId} too crowded to finish in time)`;
        const reason = passedOver.length ? `${option.reason} (passed over: ${passedOver.join('; ')})` : option.reason;
        const admitted = { ok: true as const, job, decision: { ...option, reason }, destinationReason };
        if (ctx.objective !== 'downtime') return admitted;
        const f = fin.get(w.id)!;
        const c = moveCost(option, f.transferStartedAt, f.finishedAt, model.fixedCostSeconds);
        const cost = costSeconds(c.downtime, c.stall, stallWeightOf(input));
        // Placement's order (memory headroom, spread) stands unless another pair is clearly cheaper.
        if (!best) best = { admitted, cost };
        else if (cost < best.cost * CLEARLY_CHEAPER) {
          const was = best.admitted;
          const why = `${dest.id} (${option.strategy} here costs ${fmtSeconds(cost)} vs ${was.decision.strategy} ${fmtSeconds(best.cost)} on ${was.job.destinationId}, better-scored)`;
          best = { admitted: { ...admitted, destinationReason: why }, cost };
        }
        break;
      }
      lastReason =
        over.length > 0
          ? `would freeze ${over.join(', ')} longer than its maxDowntime`
          : late.includes(w.id)
            ? `would finish at ${fmtSeconds(fin.get(w.id)!.finishedAt)}, after the deadline (${fmtSeconds(ctx.deadline)}), sharing the link with ${st.active.length} higher-ranked migration(s)`
            : `would have made ${late.join(', ')} miss the deadline`;
      passedOver.push(`${option.strategy} ${lastReason}`);
    }
  }
  if (best) return best.admitted;
  return { ok: false, permanent: allAlone, reason: lastReason };
}

/** Workloads (this one or those admitted) the model says would freeze longer than their cap with `option` added. */
function overCap(
  ctx: ScheduleContext,
  st: State,
  fin: ReadonlyMap<string, { finishedAt: number; transferStartedAt: number }>,
  w: PlacementWorkload,
  option: CostedStrategy,
): string[] {
  const tFix = ctx.input.strategyModel?.fixedCostSeconds ?? DEFAULT_STRATEGY_MODEL.fixedCostSeconds;
  const picks: Array<[string, Pick]> = [
    ...st.picks.entries(),
    [
      w.id,
      { decision: option, ...(w.maxDowntimeSeconds !== undefined ? { maxDowntimeSeconds: w.maxDowntimeSeconds } : {}) },
    ],
  ];
  return picks
    .filter(([id, p]) => {
      const f = fin.get(id);
      if (p.maxDowntimeSeconds === undefined || !f) return false;
      return moveCost(p.decision, f.transferStartedAt, f.finishedAt, tFix).downtime > p.maxDowntimeSeconds + EPS;
    })
    .map(([id]) => id);
}

/**
 * The allowed strategies this pair supports, cheapest first for the workload alone at `est` (freeze plus the
 * weighted page fill), each as a decision saying why it ranks where it does.
 */
function cheapestFirst(
  d: StrategyDecision,
  w: PlacementWorkload,
  est: number,
  model: StrategyModel,
  ctx: ScheduleContext,
): StrategyDecision[] {
  const weight = stallWeightOf(ctx.input);
  // Hybrid whose rounds did not shrink the lazy set is post-copy that sent the memory twice.
  const usable = d.alternatives.filter(
    (p) =>
      p.supported &&
      ctx.allowed.includes(p.strategy) &&
      !(p.strategy === 'hybrid' && p.finalBytes > model.minShrink * w.memoryBytes),
  );
  const costed = usable
    .map((p) => {
      const c = moveCost(
        { strategy: p.strategy, predictedBytes: p.bytes, finalBytes: p.finalBytes },
        0,
        p.bytes / est,
        model.fixedCostSeconds,
      );
      return { p, ...c, cost: costSeconds(c.downtime, c.stall, weight) };
    })
    .sort((a, b) => a.cost - b.cost || a.p.bytes - b.p.bytes);
  const label = (x: { p: StrategyPrediction; downtime: number; stall: number; cost: number }): string =>
    `${x.p.strategy} ${fmtSeconds(x.cost)}` +
    (x.stall > 0 ? ` (${fmtSeconds(x.downtime)} freeze + ${weight} x ${fmtSeconds(x.stall)} page fill)` : ' freeze');
  const unavailable = d.fallbacks.length ? `; ${d.fallbacks.join('; ')}` : '';
  return costed.map((x, i) => {
    const others = costed.filter((y) => y !== x).map(label);
    const rank = i === 0 ? 'least downtime cost' : `next cheapest`;
    return {
      strategy: x.p.strategy,
      predictedTotalSeconds: x.p.totalSeconds,
      predictedDowntimeSeconds: x.p.downtimeSeconds,
      predictedBytes: x.p.bytes,
      rounds: x.p.rounds,
      finalBytes: x.p.finalBytes,
      meetsBudget: x.p.meetsBudget,
      meetsDeadline: x.p.meetsDeadline,
      reason: `${rank}: ${label(x)}${others.length ? ` vs ${others.join(', ')}` : ''} at ${fmtRate(est)}${unavailable}`,
      fallbacks: d.fallbacks,
      alternatives: d.alternatives,
    };
  });
}
