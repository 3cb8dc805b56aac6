/**
 * A notice too short for a live move of a guarded workload (issue 15), pure: which guard checkpoint the evacuation
 * planner may build on (`guardCopyOf`), and the steps of a `guard-restore` job (`guardRestoreStep`): a last
 * checkpoint on top of the guard chain taken without --leave-running (the source stops at that dump and is killed
 * once the images are stored: the commit of the source side), its restore on another node, and, when that restore
 * fails, its restore back on the source from the same checkpoint.
 *
 * One running copy: a restore is asked only of a `stored` checkpoint, and the checkpoint flow keeps a failed
 * restore `restoring` until it proved the copy it restored dead (after CRIU ended there); so the rollback, which
 * needs `stored` again, never runs next to a copy elsewhere, and a restored checkpoint is never restored again.
 */
import { chainLink, guardChain, type GuardDumpPlan } from './guard-chain.js';
import type { CheckpointRecord } from './checkpoint.js';
import { goodGuardCheckpoints } from './guard.js';
import type { WorkloadRecord } from './models.js';
import { takeSeconds } from './short-notice.js';

/** A guard checkpoint older than this many guard intervals is stale (the pass fell behind): not built on. */
export const GUARD_COPY_MAX_INTERVALS = 3;

/** What the evacuation planner needs of a guard checkpoint (placement's GuardCopy). */
export interface GuardCopyInfo {
  checkpointId: string;
  storageNodeId: string;
  /** Seconds since its freeze: the work lost if it is restored as it is (its RPO). */
  ageSeconds: number;
  /** Measured from its own take: dump start to commit (seconds) and the page bytes it wrote, when recorded. */
  takeSeconds?: number;
  pagesBytes?: number;
  /** Encrypted at rest: the last dump on it is full whatever the source tracks (sealed on the source, no page-server). */
  encrypted?: boolean;
}

const settled = (c: CheckpointRecord) => c.state !== 'queued' && c.state !== 'taking';

/**
 * The guard checkpoint a too-short notice can build on, or why none: the newest stored guard checkpoint of the
 * process as it runs now (same node, same root pid), its chain whole, younger than GUARD_COPY_MAX_INTERVALS
 * intervals, and not followed by a failed guard dump (which may have reset the dirty bits half-way).
 */
export function guardCopyOf(
  workload: WorkloadRecord,
  checkpoints: CheckpointRecord[],
  now: Date,
): { copy?: GuardCopyInfo; reason: string } {
  if (!workload.guard) return { reason: 'not guarded' };
  // A container's checkpoint is Podman's archive, which chains no last dump onto a guard one: as before.
  if (workload.kind === 'podman') return { reason: 'a container: no last checkpoint on a guard chain' };
  const mine = checkpoints.filter((c) => c.workloadId === workload.id);
  const last = goodGuardCheckpoints(mine)[0];
  if (!last) return { reason: 'no stored guard checkpoint' };
  const newer = mine.filter((c) => c.mode === 'guard' && settled(c) && c.createdAt > last.createdAt);
  const failed = newer.find((c) => c.state === 'failed');
  if (failed) return { reason: `the last guard checkpoint ${failed.id} failed` };
  if (last.sourceNodeId !== workload.nodeId || last.tree?.[0] !== workload.pid)
    return { reason: `guard checkpoint ${last.id} is of another process than the one running now` };
  const chain = guardChain(last, mine);
  if (chain.missing) return { reason: `guard checkpoint ${last.id}'s chain is broken at ${chain.missing}` };
  const ageSeconds = Math.max(0, (now.getTime() - Date.parse(last.frozenAt ?? last.createdAt)) / 1000);
  const maxAge = GUARD_COPY_MAX_INTERVALS * workload.guard.intervalSeconds;
  if (ageSeconds > maxAge)
    return { reason: `guard checkpoint ${last.id} is ${ageSeconds.toFixed(0)} s old (stale beyond ${maxAge} s)` };
  const take = takeSeconds(last);
  return {
    copy: {
      checkpointId: last.id,
      storageNodeId: last.storageNodeId,
      ageSeconds,
      ...(take !== undefined && last.bytes.pages > 0 ? { takeSeconds: take, pagesBytes: last.bytes.pages } : {}),
      // Taken under a key, so the last one will be too: the checkpoint flow dumps an encrypted one full.
      ...(last.encryption ? { encrypted: true } : {}),
    },
    reason: `guard checkpoint ${last.id} (${ageSeconds.toFixed(1)} s old, chain depth ${chainLink(last).depth})`,
  };
}

/** What a guard-restore job does next, from its last checkpoint's record. */
export type GuardRestoreStep =
  | { do: 'wait' }
  /** The last checkpoint failed to be taken (the source was resumed, or is gone: see its error). */
  | { do: 'take-failed'; reason: string }
  /** Stored, never restored: restore it on another node (placement picks). */
  | { do: 'restore' }
  /** The restore elsewhere failed and was undone: restore it back on the source. */
  | { do: 'rollback'; reason: string }
  | { do: 'done'; nodeId: string }
  | { do: 'rolled-back'; reason: string }
  /** The rollback failed too: the stored images are the workload's one copy (restorable by hand). */
  | { do: 'stored'; reason: string };

export function guardRestoreStep(cp: CheckpointRecord): GuardRestoreStep {
  const r = cp.restore;
  switch (cp.state) {
    case 'queued':
    case 'taking':
      return { do: 'wait' };
    // Restoring: under way, or failed without its copy proven dead yet (the flow's undo): nothing may start.
    case 'restoring':
      return { do: 'wait' };
    case 'failed':
      return { do: 'take-failed', reason: `the last checkpoint ${cp.id} failed (${cp.error ?? 'no reason recorded'})` };
    case 'restored':
      return r?.rollback
        ? { do: 'rolled-back', reason: `restored back on ${r.destinationNodeId} after the restore elsewhere failed` }
        : { do: 'done', nodeId: r?.destinationNodeId ?? '' };
    case 'stored':
      if (!r) return { do: 'restore' };
      if (!r.rollback)
        return {
          do: 'rollback',
          reason: `the restore on ${r.destinationNodeId} failed (${r.error ?? 'no reason recorded'}) and was undone`,
        };
      return {
        do: 'stored',
        reason: `the rollback on ${r.destinationNodeId} failed too (${r.error ?? 'no reason recorded'}): checkpoint ${cp.id} is the one copy`,
      };
  }
}

/**
 * The chain link of a short notice's last checkpoint, from the plan the next guard dump would get (guard-chain.ts:
 * same rules): incremental on the chain's newest safe parent (the guard checkpoint the evacuation planned on, or one
 * stored since, which only means fewer pages), else full with the reason. It tracks no memory for a child: nothing
 * builds on it (the source is gone after it).
 */
export function lastDumpPlan(next: GuardDumpPlan): GuardDumpPlan {
  return { ...next, link: { ...next.link, trackMem: false } } as GuardDumpPlan;
}
