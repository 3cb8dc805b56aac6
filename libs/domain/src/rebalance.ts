/**
 * Capacity rebalancing plans as the orchestrator stores and serves them (GET /rebalance/plans/:id) and the CLI
 * prints them: one shape for the planner (libs/placement), the store and every client. Plain data.
 */
import type { Strategy } from './models.js';

/** `consolidate` empties whole nodes, `spread` relieves full ones, `de-risk` leaves spot pools with a bad record. */
export type RebalancePolicy = 'consolidate' | 'spread' | 'de-risk';

export interface MoveGain {
  /** This move's share of the nodes the plan frees (a node's moves share its 1). */
  nodesFreed: number;
  costPerHourSaved: number;
  riskRemoved: number;
  /** Fraction of the source's capacity taken off an overfull node. */
  relief: number;
}

export interface PlannedMove {
  workloadId: string;
  fromNodeId: string;
  toNodeId: string;
  policy: RebalancePolicy;
  reason: string;
  /** How the move would run (`restart`: the benchmark's restart-based baseline, never spotlift's). */
  strategy: Exclude<Strategy, 'auto'> | 'restart';
  predictedDowntimeMs: number;
  predictedTotalSeconds: number;
  memoryBytes: number;
  gain: MoveGain;
  /** Gain points / disruption points (for a consolidation: the whole node's). */
  score: number;
}

/** Something considered and not proposed, with why (policy, budget, window, threshold, constraint). */
export interface RebalanceSkip {
  policy: RebalancePolicy;
  workloadId?: string;
  nodeId?: string;
  reason: string;
  /** True when only a budget or window held it back: it may be proposed later as it is. */
  deferred?: boolean;
}

export type PlanState = 'proposed' | 'applying' | 'applied' | 'cancelled' | 'interrupted';
export type MoveState = 'proposed' | 'started' | 'completed' | 'failed' | 'skipped' | 'cancelled';

export interface PlanMove extends PlannedMove {
  state: MoveState;
  /** Why it was skipped, cancelled or failed. */
  detail?: string;
  migrationId?: string;
  startedAt?: string;
  endedAt?: string;
  downtimeMs?: number;
}

export interface RebalancePlanRecord {
  id: string;
  createdAt: string;
  trigger: 'schedule' | 'request';
  mode: 'off' | 'plan' | 'auto';
  policies: RebalancePolicy[];
  state: PlanState;
  summary: string;
  totals: { nodesFreed: number; costPerHourSaved: number; riskRemoved: number; predictedDowntimeMs: number };
  moves: PlanMove[];
  skipped: RebalanceSkip[];
  /** Nodes the plan empties or found empty; `released` those it did empty (marked releasable). */
  releasable: string[];
  released: string[];
  /** Moves an apply starts at once from each node whose total outbound rate was measured (the planner's cap). */
  maxMovesFrom?: Record<string, number>;
  events: Array<{ at: string; msg: string }>;
  appliedAt?: string;
  finishedAt?: string;
}
