/**
 * Inputs and outputs of the evacuation planner. Times are seconds on the evacuation's own clock:
 * 0 is when the first plan was made, and a re-plan keeps that origin so every figure stays comparable.
 */
import type { EvacuationFallback, EvacuationPlanSnapshot, GuardPathPlan, PlanObjective } from '@spotlift/domain';
import type { PlacementOptions } from './choose-destination.js';
import type { StrategyModel } from './choose-strategy.js';
import type { CandidateNode, ConcreteStrategy, PlacementWorkload, SourceNode } from './types.js';

/** Everything the planner needs about one evacuation. */
export interface EvacuationInput {
  /** Seconds from now until the source disappears (net of detection delay and any safety margin). */
  deadlineSeconds: number;
  source: SourceNode;
  /** The source's outbound capacity, shared by all concurrent transfers. */
  sourceOutboundBytesPerSec: number;
  workloads: readonly PlacementWorkload[];
  /** Candidates as seen from this source (pair bandwidth, post-copy trial, inbound capacity). */
  destinations: readonly CandidateNode[];
  /** Fixed seconds each migration spends without moving pages (preflight, CRIU start, restore). */
  perMigrationOverheadSeconds: number;
  /** Ceiling of one migration's page stream (CRIU dump/restore pipeline, per-stream crypto). */
  perMigrationMaxBytesPerSec?: number;
  /** Most migrations at once (each holds a CRIU process and a core). Default 8. */
  maxParallel?: number;
  /** Freeze budget for workloads that declare none. Default 1 s. */
  defaultDowntimeBudgetSeconds?: number;
  /** A node that can hold checkpoints of workloads that cannot move in time. */
  storageNodeId?: string;
  strategyModel?: Partial<StrategyModel>;
  placement?: PlacementOptions;
  /**
   * `downtime` (default): save the most work, then spend the least priority-weighted downtime (issue 16).
   * `finish`: save the most work, then finish as early as possible (the objective before issue 16; kept for
   * comparisons and as an operator's fallback).
   */
  objective?: 'downtime' | 'finish';
  /** CPU contention between migrations leaving the source at once (see `Links.contention`). Default 0. */
  parallelDumpSlowdown?: number;
  /**
   * Post-copy's price: seconds of page fill after resume counted as this fraction of a second of downtime
   * (the workload runs, but stalls on every page not yet in). Default {@link EVACUATION_DEFAULTS}.
   */
  postCopyStallWeight?: number;
}

/** How the queue was ordered before greedy admission. */
export type OrderingName = 'density' | 'priority' | 'value';

/** One workload's line in the plan. */
export interface PlannedMigration {
  workloadId: string;
  priority: number;
  memoryBytes: number;
  /** Work this migration saves: priority x memory bytes. */
  value: number;
  /** 1-based start order among scheduled migrations; absent for predicted misses. */
  order?: number;
  destinationId?: string;
  destinationReason?: string;
  strategy?: ConcreteStrategy;
  strategyReason?: string;
  startSeconds?: number;
  transferStartSeconds?: number;
  predictedFinishSeconds?: number;
  predictedDowntimeSeconds?: number;
  /** Post-copy/hybrid: seconds from resume until every page is in (the workload may stall meanwhile). */
  predictedStallSeconds?: number;
  /** Why this strategy, why at this time, why alone or alongside others (for people reading the record). */
  explanation?: string;
  /** Workloads predicted to run at the same time as this one. */
  concurrentWith?: string[];
  /** Bytes the link carries for it (pre-copy rounds included). */
  predictedBytes?: number;
  /** Already running when this plan was made (a re-plan keeps it as is). */
  inFlight?: boolean;
  /** Reported completed before this plan was made; kept so the plan shows the whole evacuation. */
  completed?: boolean;
  willMiss: boolean;
  missReason?: string;
  fallback?: EvacuationFallback;
  fallbackNodeId?: string;
  /** A guarded workload's guard path (guard-path.ts), with `fallback` `guard-restore` or `guard-checkpoint`. */
  guardPath?: GuardPathPlan;
}

/** What happened to jobs since the last plan. */
export interface FinishedJob {
  workloadId: string;
  outcome: 'completed' | 'failed';
}

/**
 * The planner's answer. Keeps its input and history so {@link replan} needs only the news. The fields readers
 * rely on are the domain's {@link EvacuationPlanSnapshot} (stored whole on the evacuation record).
 */
export interface EvacuationPlan extends EvacuationPlanSnapshot {
  /** Most migrations actually running at once in the prediction. */
  peakConcurrency: number;
  ordering: OrderingName;
  /** `fewest-bytes`: stop-and-copy/post-copy only; `all`: pre-copy/hybrid allowed where it cost nothing. */
  strategies: 'fewest-bytes' | 'all';
  /** Scheduled migrations by start, then predicted misses by value. */
  migrations: PlannedMigration[];
  /** The objective's values for this plan (the second level: downtime, among plans saving `workSaved`). */
  objective: PlanObjective;
  /** `input` holds only the best `kept` of the fleet's `of` destinations (destination-shortlist.ts). */
  shortlist?: { kept: number; of: number };
  input: EvacuationInput;
  history: { completed: string[]; failedOn: Record<string, string[]> };
}

/** Declared in the domain (the record stores it); re-exported for the planner's callers. */
export type { PlanObjective };

/** Defaults for the optional input fields. */
export const EVACUATION_DEFAULTS = {
  maxParallel: 8,
  defaultDowntimeBudgetSeconds: 1,
  /**
   * A second of post-copy page fill costs a quarter of a second of downtime: the workload runs but faults on
   * missing pages. The postcopy bench measured a 1.7 s longest stall against 0.24 s of downtime at 256 MiB for
   * a workload touching all of its memory at once; most touch a hot set, so a full weight would overprice it.
   */
  postCopyStallWeight: 0.25,
} as const;
