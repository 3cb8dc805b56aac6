/**
 * Proactive moves before any notice: off spot pools that got a rebalance recommendation (an early,
 * advisory reclaim signal) and off nodes fuller than the fleet allows. Pure: it proposes moves with
 * reasons; the caller turns them into ordinary migration jobs.
 */
import { chooseDestination, type PlacementOptions } from './choose-destination.js';
import { fmtBytes } from './format.js';
import type { CandidateNode, PlacementWorkload } from './types.js';

/** A node with its total memory and the workloads it runs. `freeMemoryBytes` is the probed free memory. */
export interface RebalanceNode extends CandidateNode {
  memoryCapacityBytes: number;
  softDirty?: boolean;
  workloads: readonly PlacementWorkload[];
}

/** Fleet state and policy. */
export interface RebalanceInput {
  nodes: readonly RebalanceNode[];
  /** Spot pools with a rebalance recommendation: their nodes are drained and never receive moves. */
  atRiskPools?: readonly string[];
  /** Individual nodes with an early signal (rebalance recommendation, maintenance event). */
  atRiskNodeIds?: readonly string[];
  /** Only move workloads at or above this priority off at-risk nodes (default 1: all of them). */
  minPriorityAtRisk?: number;
  /** A node above this used fraction is overfull (default 0.9). */
  overfullFraction?: number;
  /** Moves stop filling a destination, or emptying an overfull node, at this used fraction (default 0.8). */
  targetFraction?: number;
  /** Cap on proposed moves, so a rebalance never floods the queue (default 20). */
  maxMoves?: number;
  placement?: PlacementOptions;
}

/** One proposed migration. */
export interface RebalanceMove {
  workloadId: string;
  fromNodeId: string;
  toNodeId: string;
  reason: string;
}

/** Proposed moves, and the workloads that should move but cannot, with why. */
export interface RebalancePlan {
  moves: RebalanceMove[];
  skipped: Array<{ workloadId: string; fromNodeId: string; reason: string }>;
  summary: string;
}

/** Propose moves off at-risk pools/nodes (most valuable first) and off overfull nodes (least valuable first). */
export function planRebalance(input: RebalanceInput): RebalancePlan {
  const target = input.targetFraction ?? 0.8;
  const overfull = input.overfullFraction ?? 0.9;
  const maxMoves = input.maxMoves ?? 20;
  const pools = new Set(input.atRiskPools ?? []);
  const riskyIds = new Set(input.atRiskNodeIds ?? []);
  const atRisk = (n: RebalanceNode): boolean =>
    riskyIds.has(n.id) || (n.lifecycle === 'spot' && n.spotPool !== undefined && pools.has(n.spotPool));
  const used = new Map(input.nodes.map((n) => [n.id, n.memoryCapacityBytes - n.freeMemoryBytes]));
  const groups = new Map(
    input.nodes.map((n) => [
      n.id,
      [
        ...(n.antiAffinityGroups ?? []),
        ...n.workloads.flatMap((w) => (w.antiAffinityGroup ? [w.antiAffinityGroup] : [])),
      ],
    ]),
  );
  const moves: RebalanceMove[] = [];
  const skipped: RebalancePlan['skipped'] = [];
  const sorted = [...input.nodes].sort((a, b) => (a.id < b.id ? -1 : 1));

  const place = (w: PlacementWorkload, from: RebalanceNode, why: string): boolean => {
    // Destinations are filled only up to the target fraction, so a move never creates a new overfull node.
    const view: CandidateNode[] = sorted
      .filter((n) => !atRisk(n))
      .map((n) => ({
        ...n,
        freeMemoryBytes: Math.max(0, target * n.memoryCapacityBytes - (used.get(n.id) ?? 0)),
        antiAffinityGroups: groups.get(n.id) ?? [],
      }));
    const source = {
      id: from.id,
      cpu: from.cpu,
      softDirty: from.softDirty ?? false,
      ...(from.zone ? { zone: from.zone } : {}),
      ...(from.spotPool ? { spotPool: from.spotPool } : {}),
    };
    const d = chooseDestination(w, source, view, { ...input.placement, avoidSpotPools: [...pools] });
    if (!d.ok) {
      skipped.push({ workloadId: w.id, fromNodeId: from.id, reason: `${why}, but ${d.reason}` });
      return false;
    }
    used.set(from.id, (used.get(from.id) ?? 0) - w.memoryBytes);
    used.set(d.nodeId, (used.get(d.nodeId) ?? 0) + w.memoryBytes);
    if (w.antiAffinityGroup) groups.get(d.nodeId)?.push(w.antiAffinityGroup);
    moves.push({ workloadId: w.id, fromNodeId: from.id, toNodeId: d.nodeId, reason: `${why}; to ${d.reason}` });
    return true;
  };

  for (const n of sorted.filter(atRisk)) {
    const why = riskyIds.has(n.id)
      ? `node ${n.id} has an early reclaim signal`
      : `spot pool ${n.spotPool} got a rebalance recommendation`;
    const ws = [...n.workloads]
      .filter((w) => w.priority >= (input.minPriorityAtRisk ?? 1))
      .sort((a, b) => b.priority - a.priority || b.memoryBytes - a.memoryBytes || (a.id < b.id ? -1 : 1));
    for (const w of ws) {
      if (moves.length >= maxMoves) break;
      place(w, n, `${why} (priority ${w.priority})`);
    }
  }
  for (const n of sorted.filter((x) => !atRisk(x))) {
    const cap = n.memoryCapacityBytes;
    if ((used.get(n.id) ?? 0) <= overfull * cap) continue;
    // Least valuable first (a move costs a freeze), largest first within a priority (fewer moves).
    const ws = [...n.workloads].sort(
      (a, b) => a.priority - b.priority || b.memoryBytes - a.memoryBytes || (a.id < b.id ? -1 : 1),
    );
    for (const w of ws) {
      if (moves.length >= maxMoves || (used.get(n.id) ?? 0) <= target * cap) break;
      const why = `node ${n.id} is overfull (${fmtBytes(used.get(n.id) ?? 0)} of ${fmtBytes(cap)} used)`;
      place(w, n, why);
    }
  }
  const summary =
    `${moves.length} move(s) proposed, ${skipped.length} workload(s) could not be placed` +
    (moves.length >= maxMoves ? ` (stopped at the ${maxMoves}-move cap)` : '');
  return { moves, skipped, summary };
}
