/**
 * A notice too short for any live move of a guarded workload (issue 15): instead of missing it, build on its last
 * guard checkpoint. A live move must end (restored, verified) before the deadline; the guard path only needs its
 * last checkpoint stored before it: the source stops at that dump (no --leave-running) and the restore reads the
 * chain from the storage node, which outlives the source. So it can fit where no live move does.
 *
 * Its cost: the pages dirtied since the guard checkpoint (dirty rate x its age, capped by RSS) where the source
 * tracks dirty memory (an incremental dump on the chain), all of RSS where it does not (a full dump), at the
 * bandwidth a stream to the storage node gets, plus the take's own fixed time (measured on the guard checkpoint's
 * take where recorded); then the restore of the chain. When even the last dump cannot end in time, the guard
 * checkpoint stands in as it is: its age is the work lost (RPO).
 */
import type { GuardPathPlan } from '@spotlift/domain';
import { streamCap } from './evacuation-model.js';
import type { EvacuationInput, PlannedMigration } from './evacuation-types.js';
import { fmtBytes, fmtRate, fmtSeconds } from './format.js';
import type { PlacementWorkload } from './types.js';

/**
 * The guard path of a missed line (`m`, as planned: willMiss), or the line unchanged when the workload has no
 * guard copy. `now`/`deadline` on the plan's clock; `concurrent`: live moves sharing the source's link meanwhile.
 */
export function withGuardPath(
  m: PlannedMigration,
  w: PlacementWorkload | undefined,
  input: EvacuationInput,
  now: number,
  concurrent: number,
): PlannedMigration {
  const g = w?.guardCopy;
  if (!w || !g) return m;
  const bw = Math.min(streamCap(input, g.storageNodeId), input.sourceOutboundBytesPerSec / (1 + concurrent));
  // Pages sealed on the source go through no page-server, so an encrypted last dump is full (checkpoint-flow.ts).
  const incremental = input.source.softDirty && !g.encrypted;
  const lastBytes = incremental ? Math.min(w.memoryBytes, w.dirtyRateBytesPerSec * g.ageSeconds) : w.memoryBytes;
  // The take's time without its pages, as measured on the guard checkpoint; the configured per-move time if unknown.
  const fixed =
    g.takeSeconds !== undefined && g.pagesBytes !== undefined
      ? Math.max(0, g.takeSeconds - g.pagesBytes / bw)
      : input.perMigrationOverheadSeconds;
  const dumpSeconds = fixed + lastBytes / bw;
  // The restore reads the whole chain: the guard checkpoint's pages (about RSS) and the last one's.
  const restoreSeconds = input.perMigrationOverheadSeconds + (w.memoryBytes + (incremental ? lastBytes : 0)) / bw;
  const left = input.deadlineSeconds - now;
  const what = incremental
    ? `an incremental last checkpoint on ${g.checkpointId} (${fmtBytes(lastBytes)} dirtied in ${fmtSeconds(g.ageSeconds)})`
    : `a full last checkpoint (${fmtBytes(lastBytes)}: ${g.encrypted ? `${g.checkpointId} is encrypted at rest, so no page-server links the dump to it` : `${input.source.id} does not track dirty memory`})`;
  const cost = `${fmtSeconds(fixed)} + ${fmtBytes(lastBytes)} at ${fmtRate(bw)} = ${fmtSeconds(dumpSeconds)}`;
  const base = { checkpointId: g.checkpointId, lastBytes, incremental, dumpSeconds, restoreSeconds };
  let guardPath: GuardPathPlan;
  if (dumpSeconds <= left) {
    guardPath = {
      ...base,
      rpoSeconds: 0,
      reason: `guard path: ${what} to ${g.storageNodeId} takes ${cost} of ${fmtSeconds(left)} left, then restored from the chain elsewhere (~${fmtSeconds(restoreSeconds)}); no work lost`,
    };
    return {
      ...m,
      fallback: 'guard-restore',
      fallbackNodeId: g.storageNodeId,
      guardPath,
      predictedBytes: lastBytes,
      predictedFinishSeconds: now + dumpSeconds + restoreSeconds,
    };
  }
  guardPath = {
    ...base,
    rpoSeconds: g.ageSeconds,
    reason: `guard path: ${what} would take ${cost}, only ${fmtSeconds(left)} left: guard checkpoint ${g.checkpointId} stands in as it is, restored once ${input.source.id} is confirmed gone; ${fmtSeconds(g.ageSeconds)} of work lost (RPO)`,
  };
  return { ...m, fallback: 'guard-checkpoint', fallbackNodeId: g.storageNodeId, guardPath };
}
