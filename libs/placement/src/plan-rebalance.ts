/**
 * Capacity rebalancing: proposes live moves under three combinable policies, each move with its reason,
 * predicted downtime and gain, and a Balanced-like score (gain points / disruption points, as Karpenter's
 * Balanced consolidation weighs savings against disruption) that must reach a threshold. Policies run in a
 * fixed order on one shared ledger: `de-risk` (leave spot pools with recent notices), `spread` (relieve full
 * nodes), `consolidate` (empty whole nodes for release); a workload moves at most once per plan, a node a
 * move lands on is never emptied in the same plan, and a node being emptied is never a target; a node without
 * workloads (releasable) takes a de-risk or spread move only when nothing else fits, never a consolidation's
 * (that would trade one node for another). Never a target either: a node that is not `ready`, has failed
 * `criu check`, or is under a notice. With an evacuation model, no move fills a node beyond what leaves within
 * its notice, a consolidation never leaves another node without the room to evacuate into, and `spread`
 * relieves a node past either (rebalance-evacuability.ts), the part of the notice kept in reserve sized per pool
 * when asked (rebalance-reserve.ts). Moves are predicted on their pair's measured throughput and post-copy trial,
 * and moves leaving one node at once are capped by its measured outbound rate (`maxMovesFrom`). Budgets and
 * windows (rebalance-budgets.ts) defer moves with the reason. Pure: the caller reads the fleet and applies.
 */
import { chooseDestination } from './choose-destination.js';
import { chooseStrategy } from './choose-strategy.js';
import { fmtBytes, fmtSeconds } from './format.js';
import { intervalVerdict, startVerdict } from './rebalance-budgets.js';
import { evacuableBytes, unevacuable } from './rebalance-evacuability.js';
import { poolNoticeRates, poolReserve } from './rebalance-reserve.js';
import type {
  MovePrediction,
  PlannedMove,
  RebalanceInput,
  RebalanceNode,
  RebalancePlanResult,
  RebalancePolicy,
  RebalanceSkip,
  RebalanceWeights,
  RebalanceWorkload,
} from './rebalance-types.js';
import type { CandidateNode } from './types.js';

export const DEFAULT_REBALANCE_WEIGHTS: RebalanceWeights = {
  nodeFreed: 100,
  costPerHour: 100,
  risk: 200,
  spread: 200,
  downtimeSecond: 5,
  perMove: 2,
};
const WEEK_SECONDS = 7 * 86_400;
const NOTICE_WEIGHT = { interruption: 1, recommendation: 0.5 } as const;

/**
 * Risk of each node: the weight of the notices in the window on its spot pool (interruption 1, rebalance
 * recommendation 0.5), plus those about the node itself counted once more (a recommendation names one
 * instance: that one is the likeliest to go). On-demand nodes: 0.
 */
export function nodeRisks(input: Pick<RebalanceInput, 'nodes' | 'notices' | 'riskWindowSeconds' | 'now'>) {
  const since = input.now.getTime() - (input.riskWindowSeconds ?? WEEK_SECONDS) * 1000;
  const pools = new Map<string, number>();
  const own = new Map<string, number>();
  for (const n of input.notices ?? []) {
    if (n.at < since || n.at > input.now.getTime()) continue;
    if (n.spotPool !== undefined) pools.set(n.spotPool, (pools.get(n.spotPool) ?? 0) + NOTICE_WEIGHT[n.kind]);
    own.set(n.nodeId, (own.get(n.nodeId) ?? 0) + NOTICE_WEIGHT[n.kind]);
  }
  return new Map(
    input.nodes.map((n) => [
      n.id,
      n.lifecycle === 'on-demand'
        ? 0
        : (n.spotPool !== undefined ? (pools.get(n.spotPool) ?? 0) : 0) + (own.get(n.id) ?? 0),
    ]),
  );
}

/** The nodes, each spot node with its pool's notice reserve when `poolReserve` is set (rebalance-reserve.ts). */
function withPoolReserves(input: RebalanceInput): RebalanceNode[] {
  const m = input.evacuation;
  if (!input.poolReserve || !m) return [...input.nodes];
  const s = input.poolReserve;
  const rates = poolNoticeRates(input.nodes, input.notices ?? [], input.now, s.windowSeconds);
  return input.nodes.map((n) =>
    n.noticeSeconds === undefined || n.spotPool === undefined
      ? n
      : { ...n, reserveFraction: poolReserve(rates.get(n.spotPool) ?? 0, m.reserveFraction ?? 0, s) },
  );
}

/**
 * How many moves may leave each source at once: its measured total outbound rate over the rate one move gets
 * from it (the median of its measured pairs, else the fleet figure), at least one. Only sources of the plan's
 * moves with a measured figure get a cap; the others are bounded by the budgets alone.
 */
export function outboundCaps(
  input: Pick<RebalanceInput, 'nodeOutbound' | 'pairBandwidth' | 'bandwidthBytesPerSec'>,
  moves: readonly { fromNodeId: string }[],
): Record<string, number> {
  const caps: Record<string, number> = {};
  for (const id of new Set(moves.map((m) => m.fromNodeId))) {
    const total = input.nodeOutbound?.[id];
    if (total === undefined || !(total > 0)) continue;
    const pairs = Object.values(input.pairBandwidth?.[id] ?? {}).sort((a, b) => a - b);
    const one = pairs.length ? pairs[Math.floor(pairs.length / 2)]! : input.bandwidthBytesPerSec;
    caps[id] = Math.max(1, Math.round(total / one));
  }
  return caps;
}

type Trial = { moves: PlannedMove[]; disruption: number } | { reason: string; deferred?: boolean };

export function planRebalance(input: RebalanceInput): RebalancePlanResult {
  const weights = { ...DEFAULT_REBALANCE_WEIGHTS, ...input.weights };
  const threshold = input.scoreThreshold ?? 1;
  const policies = new Set(input.policies);
  const risk = nodeRisks(input);
  const minRisk = input.deRisk?.minRisk ?? 1;
  const sorted = withPoolReserves(input).sort((a, b) => (a.id < b.id ? -1 : 1));
  const byId = new Map(sorted.map((n) => [n.id, n]));
  let used = new Map(sorted.map((n) => [n.id, n.memoryCapacityBytes - n.freeMemoryBytes]));
  // Workload bytes and count per node: a node never takes more than it could send away within its notice.
  let carried = new Map(sorted.map((n) => [n.id, n.workloads.reduce((s, w) => s + w.memoryBytes, 0)]));
  let count = new Map(sorted.map((n) => [n.id, n.workloads.length]));
  // CPUs busy per node; a workload without a measured share is counted an equal share of its node's load.
  const cpuOf = new Map(
    sorted.flatMap((n) =>
      n.workloads.map((w) => [w.id, w.cpuCores ?? (n.cpuLoad ?? 0) / Math.max(1, n.workloads.length)] as const),
    ),
  );
  let cpuUsed = new Map(sorted.map((n) => [n.id, n.cpuLoad ?? 0]));
  const model = input.evacuation;
  let groups = new Map(
    sorted.map((n) => [
      n.id,
      [...(n.antiAffinityGroups ?? []), ...n.workloads.flatMap((w) => w.antiAffinityGroup ?? [])],
    ]),
  );
  const moves: PlannedMove[] = [];
  const skipped: RebalanceSkip[] = [];
  const moved = new Set<string>();
  const received = new Set<string>();
  const emptying = new Set<string>();

  const usable = (n: RebalanceNode): boolean =>
    n.state === 'ready' && n.criuOk && !n.underNotice && !emptying.has(n.id);
  // Room an evacuation could use on a node (up to the model's fill fraction of its memory).
  const fill = model?.fillFraction ?? 1;
  const free = (n: RebalanceNode): number =>
    usable(n) ? Math.max(0, fill * n.memoryCapacityBytes - (used.get(n.id) ?? 0)) : 0;
  /** Why the node, as the ledger has it now, could not be evacuated within its notice (time or room elsewhere). */
  const totalFree = (): number => sorted.reduce((s, x) => s + free(x), 0);
  const stuck = (n: RebalanceNode, total = totalFree()): string | undefined => {
    if (!model || n.noticeSeconds === undefined) return undefined;
    return unevacuable(n, carried.get(n.id) ?? 0, count.get(n.id) ?? 0, total - free(n), model);
  };
  const cpuRoom = (n: RebalanceNode, w: RebalanceWorkload, target: number): boolean =>
    !n.cpuCount || (cpuUsed.get(n.id) ?? 0) + (cpuOf.get(w.id) ?? 0) <= target * n.cpuCount;
  // A pair's measured figure first, then what the destination says of the source, then the fleet's.
  const pairBandwidth = (from: RebalanceNode, to: RebalanceNode): number =>
    input.pairBandwidth?.[from.id]?.[to.id] ?? to.bandwidthFromSourceBytesPerSec ?? input.bandwidthBytesPerSec;
  const predict =
    input.predict ??
    ((w: RebalanceWorkload, from: RebalanceNode, to: RebalanceNode): MovePrediction => {
      const budget = w.maxDowntimeMs !== undefined ? w.maxDowntimeMs / 1000 : (input.defaultDowntimeBudgetSeconds ?? 1);
      const d = chooseStrategy({
        memoryBytes: w.memoryBytes,
        dirtyRateBytesPerSec: w.dirtyRateBytesPerSec,
        bandwidthBytesPerSec: pairBandwidth(from, to),
        downtimeBudgetSeconds: budget,
        capabilities: {
          softDirtyOnSource: from.softDirty ?? false,
          // The pair's own trial first (post-copy needs userfaultfd on this destination, reached from this source).
          postCopyTrial: input.pairPostCopyTrial?.[from.id]?.[to.id] ?? to.postCopyTrial ?? 'untested',
        },
        ...(input.strategyModel ? { model: input.strategyModel } : {}),
      });
      return {
        strategy: d.strategy,
        downtimeSeconds: d.predictedDowntimeSeconds,
        totalSeconds: d.predictedTotalSeconds,
      };
    });
  const disruption = (w: RebalanceWorkload, p: MovePrediction): number =>
    p.downtimeSeconds * weights.downtimeSecond * (w.priority / 5) + weights.perMove;

  /** Why the workload may not move in this plan at all (constraint or budget), or undefined. */
  const hold = (w: RebalanceWorkload): { reason: string; deferred?: boolean } | undefined => {
    if (w.movable === false) return { reason: `'${w.id}' is movable: false` };
    const interval = intervalVerdict(input.budgets, input.history, w.id, input.now);
    return interval ? { reason: interval, deferred: true } : undefined;
  };

  /** Finds a destination and predicts the move; commits it to the ledger only when `commit`. */
  const place = (
    w: RebalanceWorkload,
    from: RebalanceNode,
    target: number,
    avoid: (n: RebalanceNode) => boolean,
    fit: 'spread' | 'pack',
  ): { to: RebalanceNode; prediction: MovePrediction; why: string } | { reason: string } => {
    const view: CandidateNode[] = sorted
      .filter((n) => n.id !== from.id && usable(n) && !avoid(n))
      .map((n) => ({
        ...n,
        freeMemoryBytes: Math.max(
          0,
          Math.min(
            target * n.memoryCapacityBytes - (used.get(n.id) ?? 0),
            evacuableBytes(n, (count.get(n.id) ?? 0) + 1, model) - (carried.get(n.id) ?? 0),
          ),
        ),
        reservedMemoryBytes: 0,
        bandwidthFromSourceBytesPerSec: pairBandwidth(from, n),
        antiAffinityGroups: groups.get(n.id) ?? [],
      }));
    const source = {
      id: from.id,
      cpu: from.cpu,
      softDirty: from.softDirty ?? false,
      ...(from.zone ? { zone: from.zone } : {}),
      ...(from.spotPool ? { spotPool: from.spotPool } : {}),
    };
    const d = chooseDestination(w, source, view, { allowUnverifiedCpu: true, ...input.placement, memoryFit: fit });
    if (!d.ok)
      return { reason: view.length ? d.reason : 'no node may take it (none ready, safe and outside the plan)' };
    const to = byId.get(d.nodeId)!;
    const prediction = predict(w, from, to);
    if (w.maxDowntimeMs !== undefined && prediction.downtimeSeconds * 1000 > w.maxDowntimeMs)
      return {
        reason: `predicted downtime ${fmtSeconds(prediction.downtimeSeconds)} (${prediction.strategy}) exceeds its maxDowntimeMs ${w.maxDowntimeMs}`,
      };
    return { to, prediction, why: d.reason };
  };
  const commit = (m: PlannedMove): void => {
    const w = byId.get(m.fromNodeId)!.workloads.find((x) => x.id === m.workloadId)!;
    used.set(m.fromNodeId, (used.get(m.fromNodeId) ?? 0) - w.memoryBytes);
    used.set(m.toNodeId, (used.get(m.toNodeId) ?? 0) + w.memoryBytes);
    carried.set(m.fromNodeId, (carried.get(m.fromNodeId) ?? 0) - w.memoryBytes);
    carried.set(m.toNodeId, (carried.get(m.toNodeId) ?? 0) + w.memoryBytes);
    count.set(m.fromNodeId, (count.get(m.fromNodeId) ?? 0) - 1);
    count.set(m.toNodeId, (count.get(m.toNodeId) ?? 0) + 1);
    cpuUsed.set(m.fromNodeId, (cpuUsed.get(m.fromNodeId) ?? 0) - (cpuOf.get(w.id) ?? 0));
    cpuUsed.set(m.toNodeId, (cpuUsed.get(m.toNodeId) ?? 0) + (cpuOf.get(w.id) ?? 0));
    if (w.antiAffinityGroup) groups.get(m.toNodeId)?.push(w.antiAffinityGroup);
    moved.add(w.id);
    received.add(m.toNodeId);
  };
  const budgetHold = (count: number): string | undefined =>
    startVerdict(input.budgets, input.history, input.now, moves.length + count - 1);
  const move = (
    w: RebalanceWorkload,
    from: RebalanceNode,
    policy: RebalancePolicy,
    p: { to: RebalanceNode; prediction: MovePrediction; why: string },
    reason: string,
    gain: Partial<PlannedMove['gain']>,
    score: number,
  ): PlannedMove => ({
    workloadId: w.id,
    fromNodeId: from.id,
    toNodeId: p.to.id,
    policy,
    reason: `${reason}; to ${p.why}`,
    strategy: p.prediction.strategy,
    predictedDowntimeMs: Math.round(p.prediction.downtimeSeconds * 1000),
    predictedTotalSeconds: p.prediction.totalSeconds,
    memoryBytes: w.memoryBytes,
    gain: { nodesFreed: 0, costPerHourSaved: 0, riskRemoved: 0, relief: 0, ...gain },
    score,
  });

  /** One move judged on its own (de-risk, spread): placed, scored against the threshold, admitted by the budgets. */
  const single = (
    w: RebalanceWorkload,
    from: RebalanceNode,
    policy: RebalancePolicy,
    why: string,
    target: number,
    avoid: (n: RebalanceNode) => boolean,
    gainOf: (to: RebalanceNode) => { gain: Partial<PlannedMove['gain']>; points: number },
  ): boolean => {
    const held = hold(w);
    if (held) return (void skipped.push({ policy, workloadId: w.id, nodeId: from.id, ...held }), false);
    // A node without workloads is releasable: a move onto it keeps it running, so only when nothing else fits.
    const empty = (n: RebalanceNode): boolean => (count.get(n.id) ?? 0) === 0;
    const first = place(w, from, target, (n) => avoid(n) || empty(n), 'spread');
    const p = 'reason' in first ? place(w, from, target, avoid, 'spread') : first;
    if ('reason' in p)
      return (
        void skipped.push({ policy, workloadId: w.id, nodeId: from.id, reason: `${why}, but ${p.reason}` }),
        false
      );
    const { gain, points } = gainOf(p.to);
    const score = points / disruption(w, p.prediction);
    if (score < threshold) {
      skipped.push({
        policy,
        workloadId: w.id,
        nodeId: from.id,
        reason: `${why}, but score ${score.toFixed(2)} < threshold ${threshold}`,
      });
      return false;
    }
    const budget = budgetHold(1);
    if (budget)
      return (void skipped.push({ policy, workloadId: w.id, nodeId: from.id, reason: budget, deferred: true }), false);
    const m = move(w, from, policy, p, why, gain, score);
    moves.push(m);
    commit(m);
    return true;
  };
  const risky = (n: RebalanceNode): boolean => (risk.get(n.id) ?? 0) >= minRisk;

  if (policies.has('de-risk')) {
    const minPriority = input.deRisk?.minPriority ?? 1;
    for (const n of sorted.filter((x) => !x.underNotice && risky(x))) {
      const r = risk.get(n.id)!;
      const why = `${n.spotPool ? `spot pool ${n.spotPool}` : `node ${n.id}`} has notice risk ${r}`;
      const ws = [...n.workloads]
        .filter((w) => !moved.has(w.id))
        .sort((a, b) => b.priority - a.priority || b.memoryBytes - a.memoryBytes || (a.id < b.id ? -1 : 1));
      for (const w of ws) {
        if (w.priority < minPriority) {
          skipped.push({
            policy: 'de-risk',
            workloadId: w.id,
            nodeId: n.id,
            reason: `priority ${w.priority} < ${minPriority}`,
          });
          continue;
        }
        single(
          w,
          n,
          'de-risk',
          `${why} (priority ${w.priority})`,
          input.spread?.targetFraction ?? 0.8,
          (d) => (risk.get(d.id) ?? 0) >= r,
          (to) => {
            const removed = ((r - (risk.get(to.id) ?? 0)) * w.priority) / 10;
            return { gain: { riskRemoved: removed }, points: removed * weights.risk };
          },
        );
      }
    }
  }

  if (policies.has('spread')) {
    const over = input.spread?.overfullFraction ?? 0.9;
    const target = input.spread?.targetFraction ?? 0.8;
    for (const n of sorted.filter((x) => !x.underNotice && x.state === 'ready')) {
      const cap = n.memoryCapacityBytes;
      const cpuCap = n.cpuCount ?? 0;
      const cpuFrac = (): number => (cpuCap ? (cpuUsed.get(n.id) ?? 0) / cpuCap : 0);
      const memOver = (used.get(n.id) ?? 0) > over * cap;
      const cpuOver = cpuFrac() > over;
      // A node carrying more than it could send away within its notice (or than others could take) is overfull too.
      const heavy = stuck(n);
      if (!memOver && !cpuOver && !heavy) continue;
      // CPU-bound: the busiest workloads first; otherwise the largest. Least valuable first either way.
      const size = (x: RebalanceWorkload): number => (cpuOver ? (cpuOf.get(x.id) ?? 0) : x.memoryBytes);
      const ws = [...n.workloads]
        .filter((x) => !moved.has(x.id))
        .sort((a, b) => a.priority - b.priority || size(b) - size(a) || (a.id < b.id ? -1 : 1));
      const why = memOver
        ? `node ${n.id} is overfull (${fmtBytes(used.get(n.id) ?? 0)} of ${fmtBytes(cap)} used)`
        : heavy
          ? `node ${n.id} could not be evacuated in time: ${heavy}`
          : `node ${n.id} is CPU-bound (${(cpuUsed.get(n.id) ?? 0).toFixed(1)} of ${cpuCap} CPUs busy)`;
      for (const w of ws) {
        if ((used.get(n.id) ?? 0) <= target * cap && cpuFrac() <= target && !stuck(n)) break;
        const relief = memOver || heavy ? w.memoryBytes / cap : (cpuOf.get(w.id) ?? 0) / Math.max(1, cpuCap);
        // Off a node that could not be evacuated in time, a move is risk removed: workloads a notice would catch.
        const points = heavy && !memOver ? weights.risk * (w.priority / 10) : relief * weights.spread;
        // Never onto a node the move would push past the CPU target (only spread weighs CPU when placing).
        const avoid = (d: RebalanceNode): boolean => risky(d) || !cpuRoom(d, w, target);
        single(w, n, 'spread', why, target, avoid, () => ({ gain: { relief }, points }));
      }
    }
  }

  const releasable: string[] = [];
  if (policies.has('consolidate')) {
    const target = input.consolidate?.targetFraction ?? 0.8;
    const maxNodes = input.consolidate?.maxNodesPerPlan ?? 1;
    // Trials place every workload of a node: only the least used nodes are tried (the likeliest to empty).
    const maxCandidates = input.consolidate?.maxCandidates ?? 20;
    for (const n of sorted) if (usable(n) && n.workloads.length === 0) releasable.push(n.id);
    // Empties one node on a copy of the ledger: every workload placed (packing), or the reason it cannot be.
    const trial = (n: RebalanceNode): Trial => {
      const saved = {
        used: new Map(used),
        carried: new Map(carried),
        count: new Map(count),
        cpuUsed: new Map(cpuUsed),
        groups: new Map([...groups].map(([k, v]) => [k, [...v]])),
      };
      // Nodes that could be evacuated in time before: emptying this one must not take that away (its room goes).
      const before = totalFree();
      const fine = sorted.filter(
        (x) => x.id !== n.id && usable(x) && x.noticeSeconds !== undefined && !stuck(x, before),
      );
      emptying.add(n.id);
      try {
        const ws = [...n.workloads]
          .filter((w) => !moved.has(w.id))
          .sort((a, b) => b.memoryBytes - a.memoryBytes || (a.id < b.id ? -1 : 1));
        const out: PlannedMove[] = [];
        let cost = 0;
        for (const w of ws) {
          const held = hold(w);
          if (held) return held;
          // Never onto a node already releasable: that would trade one node for another.
          const p = place(w, n, target, (x) => risky(x) || releasable.includes(x.id), 'pack');
          if ('reason' in p) return { reason: `'${w.id}' has nowhere to go: ${p.reason}` };
          cost += disruption(w, p.prediction);
          const m = move(w, n, 'consolidate', p, `emptying node ${n.id} for release`, {}, 0);
          out.push(m);
          commit(m);
        }
        const after = totalFree();
        for (const x of fine) {
          const why = stuck(x, after);
          if (why) return { reason: `emptying it would leave ${x.id} unable to evacuate in time: ${why}` };
        }
        return { moves: out, disruption: cost };
      } finally {
        emptying.delete(n.id);
        for (const m of ws0(n)) moved.delete(m);
        used = saved.used;
        carried = saved.carried;
        count = saved.count;
        cpuUsed = saved.cpuUsed;
        groups = saved.groups;
        for (const id of [...received]) if (!moves.some((m) => m.toNodeId === id)) received.delete(id);
      }
    };
    const ws0 = (n: RebalanceNode): string[] =>
      n.workloads.map((w) => w.id).filter((id) => !moves.some((m) => m.workloadId === id));
    const last = new Map<string, RebalanceSkip>();
    for (let round = 0; round < maxNodes; round++) {
      let best: { n: RebalanceNode; moves: PlannedMove[]; score: number } | undefined;
      const candidates = sorted
        .filter((n) => usable(n) && n.workloads.length > 0 && !received.has(n.id) && !releasable.includes(n.id))
        .sort((a, b) => (used.get(a.id) ?? 0) - (used.get(b.id) ?? 0) || (a.id < b.id ? -1 : 1))
        .slice(0, maxCandidates);
      for (const n of candidates) {
        const t = trial(n);
        if ('reason' in t) {
          last.set(n.id, {
            policy: 'consolidate',
            nodeId: n.id,
            reason: `node ${n.id} stays: ${t.reason}`,
            ...(t.deferred ? { deferred: true } : {}),
          });
          continue;
        }
        const saving = n.pricePerHour ?? 0;
        const score = (weights.nodeFreed + saving * weights.costPerHour) / Math.max(t.disruption, 1e-9);
        if (score < threshold) {
          last.set(n.id, {
            policy: 'consolidate',
            nodeId: n.id,
            reason: `emptying node ${n.id} scores ${score.toFixed(2)} < threshold ${threshold}`,
          });
          continue;
        }
        const budget = budgetHold(t.moves.length);
        if (budget) {
          last.set(n.id, {
            policy: 'consolidate',
            nodeId: n.id,
            reason: `emptying node ${n.id} (${t.moves.length} move(s)): ${budget}`,
            deferred: true,
          });
          continue;
        }
        last.delete(n.id);
        if (!best || score > best.score) best = { n, moves: t.moves, score };
      }
      if (!best) break;
      const share = 1 / best.moves.length;
      for (const m of best.moves) {
        const done = {
          ...m,
          score: best.score,
          gain: { ...m.gain, nodesFreed: share, costPerHourSaved: (best.n.pricePerHour ?? 0) * share },
        };
        moves.push(done);
        commit(done);
      }
      emptying.add(best.n.id);
      releasable.push(best.n.id);
      last.delete(best.n.id);
    }
    skipped.push(...last.values());
  }

  const totals = {
    nodesFreed: moves.reduce((s, m) => s + m.gain.nodesFreed, 0),
    costPerHourSaved: moves.reduce((s, m) => s + m.gain.costPerHourSaved, 0),
    riskRemoved: moves.reduce((s, m) => s + m.gain.riskRemoved, 0),
    predictedDowntimeMs: moves.reduce((s, m) => s + m.predictedDowntimeMs, 0),
  };
  const deferred = skipped.filter((s) => s.deferred).length;
  const summary =
    `${moves.length} move(s) proposed (${[...policies].join(', ') || 'no policy'}), ` +
    `${Math.round(totals.nodesFreed)} node(s) freed, predicted downtime ${fmtSeconds(totals.predictedDowntimeMs / 1000)} in all; ` +
    `${skipped.length - deferred} not proposed, ${deferred} deferred by budgets`;
  return { moves, skipped, releasable, totals, maxMovesFrom: outboundCaps(input, moves), summary };
}
