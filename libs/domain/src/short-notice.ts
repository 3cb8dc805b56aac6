/**
 * A notice too short for a live migration of a guarded workload, pure: the planner said the move cannot
 * finish in time. Rather than miss the workload: a final checkpoint if the last guard checkpoint's take says
 * one fits before the deadline (no work lost), else the last guard checkpoint alone, its age recorded as
 * the lost window (RPO). The workload is restored from it once its node is gone (node-loss.ts: a notice
 * whose deadline passed confirms the loss).
 */
import type { CheckpointRecord } from './checkpoint.js';
import { goodGuardCheckpoints } from './guard.js';

export type ShortNoticeDecision =
  | { use: 'final-dump'; reason: string }
  | { use: 'guard-checkpoint'; checkpointId: string; rpoSeconds: number; reason: string }
  | { use: 'none'; reason: string };

export interface ShortNoticeInput {
  /** The workload's checkpoints, any order. */
  checkpoints: CheckpointRecord[];
  /** Until the notice's deadline, minus the safety margin. */
  secondsLeft: number;
  /** A storage node can take a final checkpoint (configured, ready). */
  storageAvailable: boolean;
  now: Date;
}

/** Seconds a take of this checkpoint needed from the freeze to the commit (what a final one would take). */
export function takeSeconds(cp: CheckpointRecord): number | undefined {
  const dump = cp.phases.find((p) => p.name === 'dump');
  const commit = cp.phases.find((p) => p.name === 'commit' && p.ok);
  if (!dump || !commit?.endedAt) return undefined;
  return (Date.parse(commit.endedAt) - Date.parse(dump.startedAt)) / 1000;
}

export function decideShortNotice(input: ShortNoticeInput): ShortNoticeDecision {
  const last = goodGuardCheckpoints(input.checkpoints)[0];
  const predicted = last ? takeSeconds(last) : undefined;
  const left = input.secondsLeft.toFixed(1);
  if (input.storageAvailable && (!last || (predicted !== undefined && predicted < input.secondsLeft))) {
    return {
      use: 'final-dump',
      reason: last
        ? `a final checkpoint fits: the last guard checkpoint took ${predicted!.toFixed(1)} s, ${left} s left (${last.id} stays the fallback)`
        : `no guard checkpoint stored yet: a final checkpoint is the only copy (${left} s left)`,
    };
  }
  if (!last) return { use: 'none', reason: 'no guard checkpoint stored and no storage node for a final one' };
  const rpoSeconds = Math.max(0, (input.now.getTime() - Date.parse(last.frozenAt ?? last.createdAt)) / 1000);
  const why = !input.storageAvailable
    ? 'no storage node can take a final checkpoint'
    : predicted === undefined
      ? 'the time a final checkpoint needs is unknown'
      : `a final checkpoint needs about ${predicted.toFixed(1)} s, ${left} s left`;
  return {
    use: 'guard-checkpoint',
    checkpointId: last.id,
    rpoSeconds,
    reason: `${why}: guard checkpoint ${last.id} is the copy, ${rpoSeconds.toFixed(1)} s of work lost (RPO)`,
  };
}
