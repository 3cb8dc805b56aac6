/**
 * Shapes of capacity rebalancing (plan-rebalance.ts): the fleet as the planner sees it, the policies and
 * their settings, budgets, and the plan it answers with. Plain data; times are epoch milliseconds or Dates,
 * sizes bytes, durations seconds unless the name says otherwise.
 */
import type { PlacementOptions } from './choose-destination.js';
import type { EvacuableNode, EvacuationModel } from './rebalance-evacuability.js';
import type { StrategyModel } from './choose-strategy.js';
import type { PlannedMove, RebalancePolicy, RebalanceSkip } from '@spotlift/domain';
import type { CandidateNode, ConcreteStrategy, PlacementWorkload, PostCopyTrial } from './types.js';

// The plan's shapes are the domain's (the store and the CLI read the same ones).
export type { MoveGain, PlannedMove, RebalancePolicy, RebalanceSkip } from '@spotlift/domain';
export const REBALANCE_POLICIES: readonly RebalancePolicy[] = ['de-risk', 'spread', 'consolidate'];

export interface RebalanceWorkload extends PlacementWorkload {
  /** `false`: never moved by rebalancing (evacuations still move it). */
  movable?: boolean;
  /** A move predicted to freeze it longer than this is never proposed. */
  maxDowntimeMs?: number;
  /** CPUs it kept busy when last read (/proc/PID/stat deltas); absent: an equal share of the node's load. */
  cpuCores?: number;
}

export interface RebalanceNode extends CandidateNode, EvacuableNode {
  memoryCapacityBytes: number;
  cpuCount?: number;
  /** CPUs busy, as read on the node (/proc/stat deltas over a second). */
  cpuLoad?: number;
  /** Pre-copy is possible from this node (`mem_dirty_track`). */
  softDirty?: boolean;
  /** Price per hour of the instance, any currency (optional; cost gain is 0 without it). */
  pricePerHour?: number;
  /** An evacuation is open for the node (a notice that moves work): rebalancing leaves it alone, both ways. */
  underNotice?: boolean;
  workloads: readonly RebalanceWorkload[];
}

/** A notice spotlift recorded, as the risk of a pool (or of a node without a pool) is judged from. */
export interface NoticeSighting {
  nodeId: string;
  spotPool?: string;
  kind: 'interruption' | 'recommendation';
  at: number;
}

/** How the notice reserve follows a pool's notice rate (rebalance-reserve.ts). */
export interface PoolReserveSettings {
  /** Weighted notices per node and day (interruption 1, recommendation 0.5) from which the full reserve applies. */
  fullAtPerNodeDay: number;
  /** Reserve of a pool without notices in the window (0..reserveFraction). */
  floorFraction?: number;
  /** Notices older than this do not count (default a week). */
  windowSeconds?: number;
}

/** A window in which moves are allowed (`allow`) or not (`forbid`): starts at each cron time (UTC), lasts `durationSeconds`. */
export interface BudgetWindow {
  cron: string;
  durationSeconds: number;
  kind: 'allow' | 'forbid';
}

export interface RebalanceBudgets {
  /** Rebalancing migrations running at once (an apply starts the next as one ends). */
  maxConcurrentMoves: number;
  /** Moves started in any sliding hour, all plans together. */
  maxMovesPerHour: number;
  /** Two moves of one workload are at least this far apart. */
  minMoveIntervalSeconds: number;
  /** With any `allow` window, moves happen only inside one; never inside a `forbid` window. */
  windows: readonly BudgetWindow[];
}

/** A move that started (the budgets count them). */
export interface MoveStart {
  workloadId: string;
  at: number;
}

/** Points that weigh gain against disruption (the Balanced-like score). */
export interface RebalanceWeights {
  /** A node emptied for release. */
  nodeFreed: number;
  /** Per unit of price per hour saved. */
  costPerHour: number;
  /** Per unit of pool risk removed, at priority 10 (scaled by priority / 10). */
  risk: number;
  /** Per fraction of a node's capacity taken off an overfull node. */
  spread: number;
  /** Per second of predicted downtime, at priority 5 (scaled by priority / 5). */
  downtimeSecond: number;
  /** Fixed cost of any move (a migration's traffic and work). */
  perMove: number;
}

export interface RebalanceInput {
  now: Date;
  policies: readonly RebalancePolicy[];
  nodes: readonly RebalanceNode[];
  notices?: readonly NoticeSighting[];
  /** Notices older than this do not count (default a week). */
  riskWindowSeconds?: number;
  budgets: RebalanceBudgets;
  /** Moves started so far (enough history for an hour and the per-workload interval). */
  history: readonly MoveStart[];
  /** A move is proposed only when gain / disruption reaches this (default 1). */
  scoreThreshold?: number;
  weights?: Partial<RebalanceWeights>;
  consolidate?: { maxNodesPerPlan?: number; targetFraction?: number; maxCandidates?: number };
  spread?: { overfullFraction?: number; targetFraction?: number };
  deRisk?: { minRisk?: number; minPriority?: number };
  /**
   * How an evacuation of a node with a notice (`noticeSeconds`) would go: no move fills a node beyond what
   * leaves within its notice or what the other nodes could receive, and `spread` relieves a node past either
   * (rebalance-evacuability.ts). Unbounded when absent.
   */
  evacuation?: EvacuationModel;
  /**
   * Sizes the evacuation model's `reserveFraction` per spot pool from the notices in `notices` (rebalance-reserve.ts):
   * calm pools pack closer to their notice, hot ones keep the whole reserve. One figure for all when absent.
   */
  poolReserve?: PoolReserveSettings;
  /** Throughput a move's pages get when the pair has no measured figure. */
  bandwidthBytesPerSec: number;
  /**
   * Page throughput completed migrations measured per pair, bytes/s, by source id then destination id (the
   * store's PairLinks): a move is predicted, and its destination scored, on its own pair's figure.
   */
  pairBandwidth?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /**
   * Post-copy trial results per pair, by source id then destination id (the cache the evacuation planner reads):
   * a move is predicted as post-copy only where its own pair's trial passed; a pair never tried is `untested`.
   */
  pairPostCopyTrial?: Readonly<Record<string, Readonly<Record<string, PostCopyTrial>>>>;
  /**
   * Each node's total outbound page rate, bytes/s, as measured while several migrations left it at once (the store's
   * NodeOutbound): moves leaving one node at once are capped at that figure over one move's rate from it.
   */
  nodeOutbound?: Readonly<Record<string, number>>;
  /** Freeze a move aims below when the workload declares no `maxDowntimeMs`. */
  defaultDowntimeBudgetSeconds?: number;
  /** Predicts a move's downtime (default: live migration, chooseStrategy). The benchmark passes a restart. */
  predict?: (w: RebalanceWorkload, from: RebalanceNode, to: RebalanceNode) => MovePrediction;
  strategyModel?: Partial<StrategyModel>;
  placement?: PlacementOptions;
}

export interface MovePrediction {
  strategy: ConcreteStrategy | 'restart';
  downtimeSeconds: number;
  totalSeconds: number;
}

export interface RebalancePlanResult {
  moves: PlannedMove[];
  skipped: RebalanceSkip[];
  /** Nodes the plan empties (consolidate), and ready nodes already without workloads. */
  releasable: string[];
  totals: { nodesFreed: number; costPerHourSaved: number; riskRemoved: number; predictedDowntimeMs: number };
  /**
   * Moves that may leave a node at once, for sources whose outbound rate was measured (`nodeOutbound`): an apply
   * starts no more from that node together (more would only share its link and stretch each move).
   */
  maxMovesFrom: Record<string, number>;
  summary: string;
}
