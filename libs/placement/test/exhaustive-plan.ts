/**
 * The offline reference for the evacuation planner (issue 16): every order x strategy x parallelism of a
 * small evacuation, simulated on the planner's own model (shared links, CPU contention, fixed costs), one
 * destination. Returns the plan that saves the most work and, among those, costs the least priority-weighted
 * downtime. Exponential: for specs and the bench, n <= 5.
 */
import {
  advance,
  chooseStrategy,
  DEFAULT_STRATEGY_MODEL,
  EVACUATION_DEFAULTS,
  linksOf,
  streamCapOf,
  valueOf,
  type ConcreteStrategy,
  type EvacuationInput,
  type PlacementWorkload,
  type SimJob,
} from '@spotlift/placement';
import { costSeconds, moveCost, type CostedStrategy } from '../src/evacuation-cost.js';

export interface ExhaustiveResult {
  workSaved: number;
  weightedCostSeconds: number;
  totalDowntimeSeconds: number;
  order: string[];
  strategies: Record<string, ConcreteStrategy>;
  parallelism: number;
  plansTried: number;
}

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

type Choice = ConcreteStrategy | undefined;

function assignments(choices: ReadonlyArray<readonly Choice[]>): Choice[][] {
  return choices.reduce<Choice[][]>((acc, opts) => acc.flatMap((a) => opts.map((o) => [...a, o])), [[]]);
}

/**
 * Bytes and final set of `strategy` for `w` starting at `t` with `running` others on the source: the same
 * estimate the planner's admission makes (the stream's share under contention, the time left for rounds).
 */
function costed(
  input: EvacuationInput,
  w: PlacementWorkload,
  strategy: ConcreteStrategy,
  cap: number,
  running: number,
  t: number,
): CostedStrategy {
  const slow = 1 + (input.parallelDumpSlowdown ?? 0) * running;
  const est = Math.min(cap / slow, input.sourceOutboundBytesPerSec / (running + 1));
  const d = chooseStrategy({
    memoryBytes: w.memoryBytes,
    dirtyRateBytesPerSec: w.dirtyRateBytesPerSec,
    bandwidthBytesPerSec: est,
    downtimeBudgetSeconds: w.downtimeBudgetSeconds ?? EVACUATION_DEFAULTS.defaultDowntimeBudgetSeconds,
    timeLeftSeconds: Math.max(0, input.deadlineSeconds - t - input.perMigrationOverheadSeconds),
    capabilities: { softDirtyOnSource: true, postCopyTrial: 'ok' },
    model: input.strategyModel,
  });
  const p = d.alternatives.find((x) => x.strategy === strategy)!;
  return { strategy, predictedBytes: p.bytes, finalBytes: p.finalBytes };
}

/** The strategies the pair supports. */
function supported(input: EvacuationInput): ConcreteStrategy[] {
  const post = input.destinations[0]?.postCopyTrial === 'ok';
  const pre = input.source.softDirty;
  return [
    'stop-and-copy',
    ...(pre ? (['pre-copy'] as const) : []),
    ...(post ? (['post-copy'] as const) : []),
    ...(pre && post ? (['hybrid'] as const) : []),
  ];
}

/** Simulate one (order, strategies, k): jobs start in order whenever fewer than k run. */
function simulate(
  input: EvacuationInput,
  all: readonly PlacementWorkload[],
  allPicks: readonly Choice[],
  k: number,
  cap: number,
): { workSaved: number; cost: number; downtime: number } {
  const links = linksOf(input);
  const tFix = input.strategyModel?.fixedCostSeconds ?? DEFAULT_STRATEGY_MODEL.fixedCostSeconds;
  const weight = input.postCopyStallWeight ?? EVACUATION_DEFAULTS.postCopyStallWeight;
  const dest = input.destinations[0]!.id;
  const order = all.filter((_, i) => allPicks[i] !== undefined);
  const names = allPicks.filter((p): p is ConcreteStrategy => p !== undefined);
  const picks: CostedStrategy[] = [];
  const active: SimJob[] = [];
  let next = 0;
  let t = 0;
  let workSaved = 0;
  let cost = 0;
  let downtime = 0;
  const index = new Map(order.map((w, i) => [w.id, i]));
  for (;;) {
    while (active.length < k && next < order.length) {
      const w = order[next]!;
      picks[next] = costed(input, w, names[next]!, cap, active.length, t);
      active.push({
        id: w.id,
        destinationId: dest,
        capBytesPerSec: cap,
        overheadLeftSeconds: input.perMigrationOverheadSeconds,
        bytesLeft: picks[next]!.predictedBytes,
        startedAt: t,
      });
      next += 1;
    }
    if (active.length === 0) break;
    const step = advance(active, links, t);
    t = step.now;
    for (const f of step.finished) {
      const i = index.get(f.id)!;
      const [w, pick] = [order[i]!, picks[i]!];
      const c = moveCost(pick, f.transferStartedAt, f.finishedAt, tFix);
      const capped = w.maxDowntimeSeconds !== undefined && c.downtime > w.maxDowntimeSeconds + 1e-6;
      if (f.finishedAt > input.deadlineSeconds + 1e-6 || capped) continue;
      workSaved += valueOf(w);
      cost += w.priority * costSeconds(c.downtime, c.stall, weight);
      downtime += c.downtime;
    }
  }
  return { workSaved, cost, downtime };
}

/** The best plan by (work saved, then weighted cost) over every order x strategy x parallelism. */
export function exhaustiveBest(input: EvacuationInput): ExhaustiveResult {
  const cap = streamCapOf(input, input.destinations[0]);
  const ws = input.workloads;
  let best: ExhaustiveResult | undefined;
  let tried = 0;
  for (const order of permutations(ws)) {
    // `undefined`: left on the node (saving less can be the only way to save the rest in time).
    const all = assignments(order.map(() => [...supported(input), undefined]));
    for (const picks of all) {
      const n = picks.filter((p) => p !== undefined).length;
      for (let k = 1; k <= Math.max(1, n); k++) {
        tried += 1;
        const r = simulate(input, order, picks, k, cap);
        const tol = 1e-9 * Math.max(1, r.workSaved);
        const better =
          !best ||
          r.workSaved > best.workSaved + tol ||
          (Math.abs(r.workSaved - best.workSaved) <= tol && r.cost < best.weightedCostSeconds - 1e-9);
        if (better) {
          best = {
            workSaved: r.workSaved,
            weightedCostSeconds: r.cost,
            totalDowntimeSeconds: r.downtime,
            order: order.map((w) => w.id),
            strategies: Object.fromEntries(order.flatMap((w, i) => (picks[i] ? [[w.id, picks[i]] as const] : []))),
            parallelism: k,
            plansTried: 0,
          };
        }
      }
    }
  }
  return { ...best!, plansTried: tried };
}
