/**
 * The evacuation planner: which workloads leave, in what order, how many at once, by which strategy and
 * to which node, so that the priority-weighted memory saved before the deadline is as large as we can
 * make it; everything predicted to miss is reported up front with a reason.
 *
 * Heuristic: a small portfolio of greedy passes (three queue orders x every parallelism up to the cap),
 * each admitting a workload only if it and everything admitted before still finish on the shared-link
 * model. Level one (both objectives): the most work saved, fewest-bytes strategies first. Level two,
 * `downtime` (issue 16): among the passes saving that much, the least priority-weighted downtime, with each
 * workload's strategy tried cheapest first (post-copy's page fill priced in) and parallelism only where fewer
 * at once would save less; `finish` (before issue 16): the earliest last finish.
 */
import { withGuardPath } from './guard-path.js';
import { createLedger, type CapacityLedger } from './capacity-ledger.js';
import type { PinnedJob, ScheduleContext } from './evacuation-admission.js';
import { shortlistDestinations } from './destination-shortlist.js';
import { evacuationUpperBound } from './evacuation-bound.js';
import { objectiveOf, stallWeightOf } from './evacuation-cost.js';
import { explainTiming } from './evacuation-explain.js';
import { staticEligible, valueOf } from './evacuation-model.js';
import { schedulePass, type ScheduleResult } from './evacuation-scheduler.js';
import {
  EVACUATION_DEFAULTS,
  type EvacuationInput,
  type EvacuationPlan,
  type OrderingName,
  type PlannedMigration,
} from './evacuation-types.js';
import { fmtSeconds } from './format.js';
import type { CandidateNode, ConcreteStrategy, PlacementWorkload } from './types.js';

const FEWEST_BYTES: readonly ConcreteStrategy[] = ['stop-and-copy', 'post-copy'];
const ALL: readonly ConcreteStrategy[] = ['stop-and-copy', 'pre-copy', 'hybrid', 'post-copy'];
const ORDERINGS: readonly OrderingName[] = ['density', 'priority', 'value'];
const byId = (a: PlacementWorkload, b: PlacementWorkload): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * Queue orders. `density`: work saved per second of the link when alone (priority x M / (M/B + o)),
 * which favours large jobs only as far as they amortise the fixed overhead; `priority`: highest priority,
 * smallest first (most jobs saved per class); `value`: largest priority x memory first.
 */
export function orderQueue(
  input: EvacuationInput,
  ws: readonly PlacementWorkload[],
  how: OrderingName,
): PlacementWorkload[] {
  const rate = Math.min(input.sourceOutboundBytesPerSec, input.perMigrationMaxBytesPerSec ?? Number.POSITIVE_INFINITY);
  const density = (w: PlacementWorkload): number =>
    valueOf(w) / (w.memoryBytes / rate + input.perMigrationOverheadSeconds);
  const cmp: Record<OrderingName, (a: PlacementWorkload, b: PlacementWorkload) => number> = {
    density: (a, b) => density(b) - density(a) || byId(a, b),
    priority: (a, b) => b.priority - a.priority || a.memoryBytes - b.memoryBytes || byId(a, b),
    value: (a, b) => valueOf(b) - valueOf(a) || byId(a, b),
  };
  return [...ws].sort(cmp[how]);
}

/** Throws a RangeError naming the first field that makes no sense. */
export function validate(input: EvacuationInput): void {
  const bad = (what: string): never => {
    throw new RangeError(`invalid evacuation input: ${what}`);
  };
  if (!Number.isFinite(input.deadlineSeconds)) bad('deadlineSeconds must be a finite number');
  if (!(input.sourceOutboundBytesPerSec > 0) || !Number.isFinite(input.sourceOutboundBytesPerSec))
    bad('sourceOutboundBytesPerSec must be positive');
  if (!(input.perMigrationOverheadSeconds >= 0)) bad('perMigrationOverheadSeconds must be >= 0');
  for (const w of input.workloads) {
    if (!(w.memoryBytes >= 0) || !(w.dirtyRateBytesPerSec >= 0) || !(w.priority > 0))
      bad(`workload '${w.id}' has a negative size, rate or priority`);
  }
  if (new Set(input.workloads.map((w) => w.id)).size !== input.workloads.length) bad('workload ids must be unique');
}

/** Everything {@link planCore} needs: the queue, what is running, capacity already spoken for. */
export interface Core {
  input: EvacuationInput;
  now: number;
  queue: PlacementWorkload[];
  pinned: PinnedJob[];
  ledger: CapacityLedger;
  groups: Record<string, string[]>;
  history: EvacuationPlan['history'];
  done: PlannedMigration[];
  bound: number;
}

/** A larger parallelism must finish at least this much earlier to beat a smaller one on equal work. */
const MAKESPAN_GAIN_SECONDS = 0.5;
/** Only the stop-and-copy freeze: the fallback family when every lazier strategy costs a miss. */
const STOP_ONLY: readonly ConcreteStrategy[] = ['stop-and-copy'];

const sameWork = (a: ScheduleResult, b: ScheduleResult): boolean =>
  Math.abs(a.workSaved - b.workSaved) <= 1e-9 * Math.max(1, a.workSaved, b.workSaved);

/** `finish`: more work; then fewer misses; then a clearly earlier last finish (slack against misprediction). */
function better(a: ScheduleResult, b: ScheduleResult): boolean {
  if (!sameWork(a, b)) return a.workSaved > b.workSaved;
  if (a.missed.length !== b.missed.length) return a.missed.length < b.missed.length;
  return a.makespan < b.makespan - MAKESPAN_GAIN_SECONDS;
}

/** A pass with the figures `downtime` compares on. */
interface Scored {
  r: ScheduleResult;
  k: number;
  ordering: OrderingName;
  queue: PlacementWorkload[];
  allowed: readonly ConcreteStrategy[];
  cost: number;
}

/**
 * `downtime`: the two-level objective. More work first (never trade a saved workload for downtime); then
 * fewer misses; then less priority-weighted downtime (a 0.1 % or 1 ms difference is noise); then fewer at
 * once; then an earlier finish.
 */
function cheaper(a: Scored, b: Scored): boolean {
  if (!sameWork(a.r, b.r)) return a.r.workSaved > b.r.workSaved;
  if (a.r.missed.length !== b.r.missed.length) return a.r.missed.length < b.r.missed.length;
  const tol = Math.max(1e-3, 1e-3 * Math.min(a.cost, b.cost));
  if (Math.abs(a.cost - b.cost) > tol) return a.cost < b.cost;
  if (a.k !== b.k) return a.k < b.k;
  return a.r.makespan < b.r.makespan - 1e-6;
}

/** Rounds of adjacent swaps tried on the chosen queue (each round: n - 1 passes). */
const SWAP_ROUNDS = 3;
/**
 * Passes the local search may spend per plan, whatever the number of workloads: it runs on every re-plan, and
 * a pass over a large fleet costs milliseconds. The chosen start and parallelism come first.
 */
const LOCAL_SEARCH_PASSES = 160;

/**
 * Local search on the chosen queue: swap neighbours while that lowers the weighted downtime without saving
 * less. Who overlaps whom decides how much each freeze is stretched, which the fixed orders do not capture.
 */
function improveOrder(
  start: Scored,
  pass: (queue: PlacementWorkload[]) => ScheduleResult,
  costOf: (r: ScheduleResult) => number,
  budget: { left: number },
): Scored {
  let best = start;
  for (let round = 0; round < SWAP_ROUNDS; round++) {
    let improved = false;
    for (let i = 0; i + 1 < best.queue.length && budget.left > 0; i++, budget.left--) {
      const queue = [...best.queue];
      [queue[i], queue[i + 1]] = [queue[i + 1]!, queue[i]!];
      const r = pass(queue);
      const sc: Scored = { ...best, r, queue, cost: costOf(r) };
      if (cheaper(sc, best)) [best, improved] = [sc, true];
    }
    if (!improved) break;
  }
  return best;
}

/** Run the portfolio and assemble the plan (shared by {@link planEvacuation} and {@link replan}). */
export function planCore(c: Core): EvacuationPlan {
  const { input, now } = c;
  const kind = input.objective ?? 'downtime';
  const weight = stallWeightOf(input);
  const maxK = Math.max(1, c.pinned.length, input.maxParallel ?? EVACUATION_DEFAULTS.maxParallel);
  const eligible = staticEligible(input, c.queue, c.history.failedOn);
  const base: Omit<ScheduleContext, 'parallelism' | 'allowed' | 'queue'> = {
    input,
    now,
    deadline: input.deadlineSeconds,
    pinned: c.pinned,
    ledger: c.ledger,
    groups: c.groups,
    failedOn: c.history.failedOn,
    eligible,
  };
  const costOf = (r: ScheduleResult): number => objectiveOf(r.scheduled, kind, weight).weightedCostSeconds;
  let best: { r: ScheduleResult; k: number; ordering: OrderingName; queue: PlacementWorkload[] } | undefined;
  const minK = Math.max(1, c.pinned.length);
  const topK = Math.min(maxK, Math.max(minK, c.pinned.length + c.queue.length));
  for (const ordering of ORDERINGS) {
    const queue = orderQueue(input, c.queue, ordering);
    // Fewer slots first: on equal work, fewer concurrent freezes is the safer plan. Work rises with k and
    // then flattens (the link saturates), so two non-improving steps end the search for this order.
    let local: ScheduleResult | undefined;
    let stale = 0;
    for (let k = minK; k <= topK && stale < 2; k++) {
      const r = schedulePass({ ...base, parallelism: k, allowed: FEWEST_BYTES, queue });
      if (!best || better(r, best.r)) best = { r, k, ordering, queue };
      if (!local || better(r, local)) [local, stale] = [r, 0];
      else stale += 1;
    }
    // Nothing missed: other orders could only reshuffle the same complete set.
    if (best && best.r.missed.length === 0 && best.r.scheduled.every((m) => !m.willMiss)) break;
  }
  const legacy = best!;
  let strategies: EvacuationPlan['strategies'] = 'fewest-bytes';
  const all = schedulePass({ ...base, parallelism: legacy.k, allowed: ALL, queue: legacy.queue });
  if (all.workSaved >= legacy.r.workSaved * (1 - 1e-9) && all.missed.length <= legacy.r.missed.length) {
    legacy.r = all;
    strategies = 'all';
  }
  let chosen: Scored = { ...legacy, allowed: strategies === 'all' ? ALL : FEWEST_BYTES, cost: costOf(legacy.r) };
  /** The cheapest plan found per parallelism, to say why the chosen one needs more at once. */
  const perK = new Map<number, Scored>([[chosen.k, chosen]]);
  if (kind === 'downtime') {
    // Reversed orders too: with several at once, whoever runs last runs alone, the least slowed.
    const queues = ORDERINGS.flatMap((ordering) => {
      const q = orderQueue(input, c.queue, ordering);
      return [
        { ordering, queue: q },
        { ordering, queue: [...q].reverse() },
      ];
    });
    for (const { ordering, queue } of queues) {
      for (const allowed of [ALL, FEWEST_BYTES, STOP_ONLY]) {
        // Cost rises with k once everything is saved (parallel freezes share the CPU and the link).
        let local: Scored | undefined;
        let stale = 0;
        for (let k = minK; k <= topK && stale < 2; k++) {
          const r = schedulePass({ ...base, parallelism: k, allowed, queue, objective: 'downtime' });
          const sc: Scored = { r, k, ordering, queue, allowed, cost: costOf(r) };
          if (cheaper(sc, chosen)) chosen = sc;
          const atK = perK.get(k);
          if (!atK || cheaper(sc, atK)) perK.set(k, sc);
          if (!local || cheaper(sc, local)) [local, stale] = [sc, 0];
          else stale += 1;
        }
      }
    }
    // Local search from every start order, at the chosen parallelism and one either side, same strategy family:
    // who overlaps whom decides how much each freeze is stretched, which the fixed orders do not capture.
    const { k: k0, allowed } = chosen;
    const budget = { left: LOCAL_SEARCH_PASSES };
    const first = { ordering: chosen.ordering, queue: chosen.queue };
    for (const k of [k0, k0 + 1, k0 - 1].filter((x) => x >= minK && x <= topK)) {
      const pass = (queue: PlacementWorkload[]): ScheduleResult =>
        schedulePass({ ...base, parallelism: k, allowed, queue, objective: 'downtime' });
      for (const { ordering, queue } of [first, ...queues]) {
        if (budget.left-- <= 0) break;
        const r0 = pass(queue);
        const sc = improveOrder({ ...chosen, k, ordering, queue, r: r0, cost: costOf(r0) }, pass, costOf, budget);
        if (cheaper(sc, chosen)) chosen = sc;
        const atK = perK.get(k);
        if (!atK || cheaper(sc, atK)) perK.set(k, sc);
      }
    }
    strategies = chosen.allowed === ALL ? 'all' : 'fewest-bytes';
  }
  const r = chosen.r;
  const scheduled = [...r.scheduled].sort(
    (a, b) => (a.startSeconds ?? 0) - (b.startSeconds ?? 0) || (a.order ?? 0) - (b.order ?? 0),
  );
  scheduled.forEach((m, i) => (m.order = i + 1));
  const fewer = perK.get(chosen.k - 1);
  explainTiming(scheduled, {
    kind,
    deadline: input.deadlineSeconds,
    k: chosen.k,
    ...(fewer
      ? { fewer: { k: fewer.k, workSaved: fewer.r.workSaved, misses: fewer.r.missed.length, cost: fewer.cost } }
      : {}),
    workSaved: r.workSaved,
  });
  const storage = input.storageNodeId;
  const byId = new Map(input.workloads.map((w) => [w.id, w]));
  const missed = [...r.missed]
    .sort((a, b) => b.value - a.value || (a.workloadId < b.workloadId ? -1 : 1))
    .map((m) => (storage ? { ...m, fallback: 'checkpoint-to-storage' as const, fallbackNodeId: storage } : m))
    // A guarded workload with a good guard checkpoint builds on it instead (guard-path.ts).
    .map((m) => withGuardPath(m, byId.get(m.workloadId), input, now, r.peakConcurrency));
  const doneValue = c.done.reduce((s, m) => s + m.value, 0);
  const workSaved = doneValue + r.workSaved;
  const workTotal =
    doneValue + input.workloads.filter((w) => !c.history.completed.includes(w.id)).reduce((s, w) => s + valueOf(w), 0);
  const misses = missed.length + scheduled.filter((m) => m.willMiss).length;
  const pct = workTotal > 0 ? ((100 * workSaved) / workTotal).toFixed(1) : '100.0';
  const objective = objectiveOf([...c.done, ...scheduled], kind, weight);
  const strategyWord =
    kind === 'downtime'
      ? 'least-downtime strategies'
      : strategies === 'all'
        ? 'pre-copy allowed'
        : 'fewest-bytes strategies';
  const summary =
    `saves ${pct}% of priority-weighted memory (${scheduled.length - scheduled.filter((m) => m.willMiss).length + c.done.length}/` +
    `${input.workloads.length} workloads), ${misses} predicted miss(es); up to ${r.peakConcurrency} at once` +
    `${c.done.length ? ` from ${fmtSeconds(now)} (${c.done.length} already done)` : ''}, ${chosen.ordering} order, ` +
    `${strategyWord}; predicted downtime ${fmtSeconds(objective.totalDowntimeSeconds)} in total (max ${fmtSeconds(objective.maxDowntimeSeconds)}); ` +
    `last finish ${fmtSeconds(r.makespan)} of ${fmtSeconds(input.deadlineSeconds)}`;
  return {
    deadlineSeconds: input.deadlineSeconds,
    plannedAtSeconds: now,
    parallelism: chosen.k,
    peakConcurrency: r.peakConcurrency,
    ordering: chosen.ordering,
    strategies,
    migrations: [...c.done, ...scheduled, ...missed],
    workSaved,
    workTotal,
    upperBound: doneValue + c.bound,
    predictedMisses: misses,
    objective,
    summary,
    input,
    history: c.history,
  };
}

/** A ledger and anti-affinity groups from the destinations' probed figures. */
export function ledgerOf(destinations: readonly CandidateNode[]): {
  ledger: CapacityLedger;
  groups: Record<string, string[]>;
} {
  const free: Record<string, number> = {};
  const groups: Record<string, string[]> = {};
  for (const d of destinations) {
    free[d.id] = d.freeMemoryBytes - (d.reservedMemoryBytes ?? 0);
    groups[d.id] = [...(d.antiAffinityGroups ?? [])];
  }
  return { ledger: createLedger(free), groups };
}

/**
 * Best-fit placement unless the caller chose: an evacuation consumes scarce, fragmented capacity, and
 * spreading small workloads over the largest holes strands the large ones (see bench/fleet).
 */
export function withDefaults(input: EvacuationInput): EvacuationInput {
  return { ...input, placement: { memoryFit: 'pack', ...input.placement } };
}

/** Plan an evacuation from scratch (the evacuation's clock starts at 0). */
export function planEvacuation(raw: EvacuationInput): EvacuationPlan {
  const whole = withDefaults(raw);
  validate(whole);
  const destinations = shortlistDestinations(whole);
  const input = destinations === whole.destinations ? whole : { ...whole, destinations };
  const { ledger, groups } = ledgerOf(input.destinations);
  const bound = evacuationUpperBound(input).value;
  const plan = planCore({
    input,
    now: 0,
    queue: [...input.workloads],
    pinned: [],
    ledger,
    groups,
    history: { completed: [], failedOn: {} },
    done: [],
    bound,
  });
  return input === whole ? plan : withShortlist(plan, { kept: destinations.length, of: whole.destinations.length });
}

/** A plan made over a shortlist of the fleet (destination-shortlist.ts) says so, in its record and summary. */
export function withShortlist(plan: EvacuationPlan, shortlist: { kept: number; of: number }): EvacuationPlan {
  return {
    ...plan,
    shortlist,
    summary: `${plan.summary}; planned over the best ${shortlist.kept} of ${shortlist.of} destinations`,
  };
}
