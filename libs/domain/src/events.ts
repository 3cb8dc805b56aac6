/**
 * The event stream's schema (`GET /events`, the Redis stream `<prefix>:events`): what changed, when, and which
 * node, workload, migration and evacuation it concerns (the stream's filters match on those). Events are
 * derived from record saves, so every one of them is also readable, in full, from the record it names.
 */
import type { EvacuationJobState, EvacuationPlanSnapshot, EvacuationState, EvacuationOutcome } from './evacuation.js';
import type { PostCopyProgress, PreCopyRound } from './live-migration.js';
import type { Lifecycle, MigrationState, NodeState, PhaseName, Strategy, Transport } from './models.js';

export interface EventScope {
  /** Every node concerned (a migration's source and destination; an evacuation's node). */
  nodes: string[];
  workload?: string;
  migration?: string;
  evacuation?: string;
}

/** What the dashboard shows of a node, sent whenever one of these changes. */
export interface NodeSummary {
  state: NodeState;
  zone?: string;
  spotPool?: string;
  lifecycle: Lifecycle;
  memAvailableBytes?: number;
  memTotalBytes?: number;
  criuOk?: boolean;
}

export interface PlannedJobSummary {
  workloadId: string;
  order?: number;
  destinationNodeId?: string;
  strategy?: string;
  predictedFinishSeconds?: number;
  predictedDowntimeSeconds?: number;
}

export type EventBody =
  | { type: 'migration.queued'; source: string; destination: string; strategy: Strategy; transport: Transport }
  | {
      type: 'migration.phase';
      phase: PhaseName;
      status: 'started' | 'ended';
      ok?: boolean;
      durationMs?: number;
      detail?: string;
    }
  | { type: 'migration.round'; round: PreCopyRound }
  /** Lazy pages arriving after resume (post-copy, or pre-copy's lazy restore); `done` once every page is in. */
  | { type: 'migration.fill'; progress: PostCopyProgress; done: boolean }
  | { type: 'migration.downtime'; downtimeMs: number; frozenAt?: string; resumedAt?: string }
  | {
      type: 'migration.state';
      state: MigrationState;
      previous?: MigrationState;
      strategy: Strategy;
      downtimeMs?: number;
      error?: string;
      rollbackReason?: string;
    }
  | { type: 'node.updated'; node: NodeSummary; previousState?: NodeState }
  | { type: 'node.removed' }
  | { type: 'notice'; source: string; kind: string; deadline: string; reason: string; policy?: string }
  | { type: 'notice.deadline'; from: string; to: string; source: string; kind: string }
  | {
      type: 'evacuation.plan';
      deadline: string;
      replans: number;
      plan?: EvacuationPlanSnapshot;
      jobs: PlannedJobSummary[];
      predictedMisses: number;
    }
  | {
      type: 'evacuation.job';
      workloadId: string;
      state: EvacuationJobState;
      previous?: EvacuationJobState;
      migrationId?: string;
      destinationNodeId?: string;
      downtimeMs?: number;
      missReason?: string;
    }
  | { type: 'evacuation.state'; state: EvacuationState; previous?: EvacuationState; outcome?: EvacuationOutcome };

export type EventType = EventBody['type'];

/** One event as published: when, what it concerns, what happened. */
export type SpotliftEvent = EventScope & EventBody & { at: string };

/** As delivered: with the stream id (`<ms>-<seq>`), which is also the SSE `id:` a client resumes from. */
export type DeliveredEvent = SpotliftEvent & { id: string };

/** Narrows what a client wants: every given field must match (a node matches any of the event's nodes). */
export interface EventFilter {
  node?: string;
  workload?: string;
  migration?: string;
  evacuation?: string;
}

export function eventMatches(e: EventScope, f: EventFilter): boolean {
  return (
    (f.node === undefined || e.nodes.includes(f.node)) &&
    (f.workload === undefined || e.workload === f.workload) &&
    (f.migration === undefined || e.migration === f.migration) &&
    (f.evacuation === undefined || e.evacuation === f.evacuation)
  );
}

/** A stream id (`<ms>-<seq>`), as `Last-Event-ID` must carry it. */
export const STREAM_ID = /^\d{1,20}-\d{1,20}$/;
