/**
 * Evacuations: everything that must leave one node before its deadline. Plain data stored as JSON, like
 * models.ts. The plan is the placement library's own output, kept whole so a re-plan after a restart
 * needs nothing but this record; the domain only names the fields it shows.
 */
import type { MigrationState } from './models.js';

/** Where a notice came from, and what it means (mirrors @spotlift/notices without depending on it). */
export type EvacuationNoticeSource = 'aws' | 'gcp' | 'azure' | 'k8s' | 'webhook';
export type EvacuationNoticeKind = 'termination' | 'rebalance' | 'maintenance' | 'preemption';

/**
 * - `planning`: recorded, the plan is being made (or the coordinator has not picked it up yet).
 * - `running`: migrations are under way.
 * - `completed`: every workload left the node before the deadline (or there was nothing to move, or the
 *   notice was only recorded by policy).
 * - `partial`: some workloads moved, some did not.
 * - `failed`: workloads were on the node and none moved.
 */
export type EvacuationState = 'planning' | 'running' | 'completed' | 'partial' | 'failed';

/**
 * What an evacuation does. Hard notices always `evacuate`; early signals (rebalance, maintenance) follow the
 * fleet's policy: `record` only, `evacuate` everything, or `low-risk-first` (move the low-priority workloads
 * now, warm up the others: see {@link EarlySignalScope}).
 */
export type EvacuationPolicy = 'evacuate' | 'record' | 'low-risk-first';

/** What a `low-risk-first` evacuation does with one workload of the node. */
export interface EarlySignalWorkload {
  workloadId: string;
  priority: number;
  /** `move`: migrated now (planner's strategy); `pre-copy`: migrated now with pre-copy; `hold`: stays. */
  action: 'move' | 'pre-copy' | 'hold';
  reason: string;
}

/** The workloads a `low-risk-first` evacuation covers, decided when the early signal arrived. */
export interface EarlySignalScope {
  lowRiskMaxPriority: number;
  workloads: EarlySignalWorkload[];
}

/** The Kubernetes cordon of the evacuated node (tried when a Kubernetes API is configured). */
export interface EvacuationCordon {
  /** The Node name(s) tried, in order. */
  kubeNode: string;
  at: string;
  outcome: 'cordoned' | 'already-cordoned' | 'not-a-kubernetes-node' | 'failed';
  error?: string;
}

/** The notice as received, normalised to one deadline. */
export interface EvacuationNotice {
  source: EvacuationNoticeSource;
  kind: EvacuationNoticeKind;
  action?: string;
  deadline: string;
  deadlineEstimated: boolean;
  receivedAt: string;
  reason: string;
  dedupKey: string;
  /** The validated payload as received (untrusted: shown, never interpreted again). */
  raw: unknown;
}

/**
 * One workload's job in the evacuation.
 * - `pending`: planned, not started yet. `missed`: not started because the plan (or the clock) said it
 *   could not finish before the deadline. `skipped`: could not be started (the reason is in `error`).
 * - Otherwise the state of its migration.
 */
/** `restoring`: a guard-restore job's last checkpoint is stored and being restored (on another node, or back on the source). */
export type EvacuationJobState =
  'pending' | 'missed' | 'skipped' | 'checkpointing' | 'checkpointed' | 'restoring' | MigrationState;

export interface EvacuationJob {
  workloadId: string;
  workloadName?: string;
  memoryBytes: number;
  priority: number;
  /** 1-based start order in the latest plan. */
  order?: number;
  destinationNodeId?: string;
  strategy?: string;
  migrationId?: string;
  /** Migrations tried before `migrationId` (a failed attempt is re-planned away from its destination). */
  earlierMigrationIds?: string[];
  state: EvacuationJobState;
  /** Seconds after the plan's origin (`plannedAt`), as predicted by the latest plan. */
  predictedFinishSeconds?: number;
  predictedDowntimeSeconds?: number;
  /** Post-copy/hybrid: predicted seconds from resume until every page is in. */
  predictedStallSeconds?: number;
  /** The plan's why: strategy, timing, alone or alongside whom (as planned when the job started). */
  explanation?: string;
  /** Post-copy/hybrid, measured: from resume to every page on the destination (the migration's fill). */
  timeToAllPagesMs?: number;
  startedAt?: string;
  endedAt?: string;
  /** Freeze to resume on the nodes, copied from the migration once it completed. */
  downtimeMs?: number;
  frozenAt?: string;
  resumedAt?: string;
  /** Ended before the notice's deadline. */
  beforeDeadline?: boolean;
  missReason?: string;
  /** What would be done instead when nothing can take it in time. */
  fallback?: EvacuationFallback;
  fallbackNodeId?: string;
  /** `guard-restore` / `guard-checkpoint`: the planner's figures for the guard path (see GuardPathPlan). */
  guardPath?: GuardPathPlan;
  /** `guard-restore`: the guard checkpoint the last one was taken on top of (its parent in the chain when incremental). */
  guardParentId?: string;
  /** `guard-restore`: bytes the last checkpoint wrote (pages) and the restore read from storage (the chain's images). */
  guardBytes?: { pages: number; restored?: number };
  /**
   * The checkpoint taken instead (`fallback` done): the job is `checkpointing` while it is taken,
   * `checkpointed` once its images are stored, `missed` (with `error`) when it failed.
   */
  checkpointId?: string;
  /**
   * A guarded workload's last guard checkpoint stood in (short-notice.ts): `checkpointId` names it, and this
   * is the work lost with it (its age when chosen). The workload is restored from it once the node is lost.
   */
  guardRpoSeconds?: number;
  error?: string;
}

/** A workload the plan says will not make it, with why, as first predicted. */
export interface PredictedMiss {
  workloadId: string;
  reason: string;
  fallback?: EvacuationFallback;
  fallbackNodeId?: string;
}

/**
 * A workload no live move can save before the deadline: `checkpoint-to-storage` (a final checkpoint, restored
 * later by hand), or for a guarded workload with a good guard checkpoint (issue 15, a notice too short):
 * `guard-restore` (a last checkpoint on top of the guard chain, without --leave-running, restored at once on
 * another node) or, when even that cannot be taken in time, `guard-checkpoint` (the last guard checkpoint as
 * it is, restored once the node is confirmed gone; its age is the work lost).
 */
export type EvacuationFallback = 'checkpoint-to-storage' | 'guard-restore' | 'guard-checkpoint';

/** The planner's guard path for one workload (placement guard-path.ts), seconds on the plan's clock. */
export interface GuardPathPlan {
  /** The stored guard checkpoint the path builds on. */
  checkpointId: string;
  /** Bytes of the last checkpoint: pages dirtied since the guard one (dirty rate x age, capped by RSS) or all of RSS. */
  lastBytes: number;
  incremental: boolean;
  /** Predicted: the last dump to its commit (must end before the deadline), then the restore from the chain. */
  dumpSeconds: number;
  restoreSeconds: number;
  /** Work lost: 0 when the last checkpoint is taken, the guard checkpoint's age when it stands in. */
  rpoSeconds: number;
  reason: string;
}

/**
 * The figures a plan is chosen on, over the migrations it predicts will finish in time. Declared here, once:
 * the placement planner computes it (placement depends on the domain, never the reverse).
 */
export interface PlanObjective {
  kind: 'downtime' | 'finish';
  /** Sum of priority x (downtime + stallWeight x stall): what `downtime` minimises. */
  weightedCostSeconds: number;
  totalDowntimeSeconds: number;
  maxDowntimeSeconds: number;
  /** Sum of post-copy fill times (pages arriving after resume). */
  totalStallSeconds: number;
  stallWeight: number;
  /** Latest predicted finish. */
  makespanSeconds: number;
}

/**
 * The fields of a placement plan that readers rely on. Placement's `EvacuationPlan` extends it (narrower
 * names, plus its input and history), so the stored plan and this view cannot drift apart.
 */
export interface EvacuationPlanSnapshot {
  deadlineSeconds: number;
  plannedAtSeconds: number;
  /** Slots used: migrations allowed at once. */
  parallelism: number;
  /** How the queue was ordered before greedy admission. */
  ordering: string;
  /** Which strategies the plan allowed (`fewest-bytes` or `all`). */
  strategies: string;
  predictedMisses: number;
  /** Priority-weighted bytes predicted saved (including migrations already completed). */
  workSaved: number;
  workTotal: number;
  /** Fractional-knapsack bound with the whole source link (no schedule can save more). */
  upperBound: number;
  /** What the plan was chosen on (absent on records written before issue 16). */
  objective?: PlanObjective;
  summary: string;
}

export interface EvacuationOutcome {
  moved: number;
  missed: number;
  failed: number;
  /** Not moved but checkpointed to the storage node (restorable later). */
  checkpointed?: number;
  /** Every job ended (or was given up) before the deadline. */
  beforeDeadline: boolean;
  maxDowntimeMs?: number;
  totalDowntimeMs?: number;
  summary: string;
}

/** An Azure `StartRequests` approval sent (or refused) for the notice's event. */
export interface EvacuationAcknowledgement {
  eventId: string;
  at: string;
  ok: boolean;
  why: 'evacuation-finished' | 'deadline-near';
  error?: string;
}

/** A later notice moved the deadline earlier: `deadline` is now `to`. */
export interface EvacuationDeadlineChange {
  at: string;
  from: string;
  to: string;
  source: EvacuationNoticeSource;
  kind: EvacuationNoticeKind;
  reason: string;
  /** Set by the coordinator once its plan follows the new deadline (absent: not planned yet, or not re-planned). */
  replannedAt?: string;
}

export interface EvacuationRecord {
  /** Deterministic from (node, kind, node generation): every replica computes the same id. */
  id: string;
  nodeId: string;
  notice: EvacuationNotice;
  /** Later notices for the same node while this evacuation was open (another kind or channel). */
  otherNotices?: EvacuationNotice[];
  /** Earlier deadlines later notices brought while it was open, oldest first; each one re-planned it. */
  deadlineChanges?: EvacuationDeadlineChange[];
  policy: EvacuationPolicy;
  state: EvacuationState;
  deadline: string;
  /** Origin of the plan's clock (its second 0). */
  plannedAt?: string;
  plan?: EvacuationPlanSnapshot;
  replans: number;
  jobs: EvacuationJob[];
  predictedMisses: PredictedMiss[];
  /** Said when a storage node is configured and something cannot move in time. */
  storageNote?: string;
  outcome?: EvacuationOutcome;
  acknowledgement?: EvacuationAcknowledgement;
  /** `low-risk-first` only: which workloads it moves, warms up or leaves, and why. */
  earlySignal?: EarlySignalScope;
  /** Written once the cordon was tried; the evacuation never waits for it. */
  cordon?: EvacuationCordon;
  /** The plan as it ran (from the jobs' migrations), next to what was predicted; written as jobs end. */
  executed?: ExecutedPlan;
  /** Notable steps, oldest first (capped), for people reading GET /evacuations/:id. */
  events: Array<{ at: string; msg: string }>;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

/** One job as it ran: seconds are on the plan's clock (0 = `plannedAt`). */
export interface ExecutedJob {
  workloadId: string;
  migrationId?: string;
  destinationNodeId?: string;
  strategy?: string;
  state: string;
  startSeconds?: number;
  /** When its migration ended (the workload runs on the destination, every page in). */
  finishSeconds?: number;
  /** Jobs whose migrations overlapped this one in time. */
  concurrentWith: string[];
  predictedFinishSeconds?: number;
  predictedDowntimeMs?: number;
  downtimeMs?: number;
  predictedStallMs?: number;
  /**
   * Post-copy/hybrid: resume to every page in. The workload's own longest stall is not recorded: a thread that
   * touches a missing page waits in the kernel (userfaultfd) until CRIU's lazy-pages daemon copies it, and
   * neither the daemon's stats nor anything spotlift reads times those waits; only the workload can (the lab
   * workload's heartbeats do: bench/evacuation/evacuation-lab-bench.ts prints it beside this figure).
   */
  timeToAllPagesMs?: number;
}

/** The evacuation as executed: what ran at once, when, how; the truth next to the plan's prediction. */
export interface ExecutedPlan {
  peakConcurrency: number;
  jobs: ExecutedJob[];
  totalDowntimeMs: number;
  maxDowntimeMs: number;
  predictedTotalDowntimeMs: number;
  /** Last migration end on the plan's clock. */
  finishSeconds?: number;
  summary: string;
}

/** True once nothing more will happen to the evacuation. */
export function evacuationFinished(e: Pick<EvacuationRecord, 'state'>): boolean {
  return e.state === 'completed' || e.state === 'partial' || e.state === 'failed';
}
