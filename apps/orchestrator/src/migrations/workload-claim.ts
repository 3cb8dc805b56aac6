import { ConflictError } from '@spotlift/domain';
import { isFinished } from '@spotlift/engine';
import type { CheckpointRepository, MigrationRepository, WorkloadClaims } from '@spotlift/store';

/**
 * A holder whose record is missing is left alone this long after it last claimed or refreshed: a create in
 * progress claims before it saves its record (it still inspects the workload over SSH in between).
 */
export const VANISHED_AFTER_MS = 2 * 60_000;

/** Where a claim's holder is recorded, to tell a live holder from one whose job is gone or over. */
export interface ClaimHolders {
  migrations: MigrationRepository;
  checkpoints?: CheckpointRepository;
}

/**
 * Claims `key` (a processKey) for `owner` before its job is recorded and queued, or throws a 409 naming the
 * holder. A holder whose job has ended (its release was lost) or whose record vanished (Redis lost data,
 * VANISHED_AFTER_MS) is replaced by compare-and-set, so a dead job never blocks its workload for the whole
 * claim TTL; if the claim changed hands meanwhile, the newcomer is the holder and we answer 409.
 */
export async function claimWorkload(
  claims: WorkloadClaims,
  holders: ClaimHolders,
  workloadId: string,
  key: string,
  owner: string,
): Promise<void> {
  const first = await claims.claim(key, owner);
  if (first.ok) return;
  const held = await claims.holder(key);
  if (!held) {
    // Released between the two calls: try once more, atomically.
    const again = await claims.claim(key, owner);
    if (again.ok) return;
    throw busy(workloadId, key, again.holder);
  }
  if ((await isOver(holders, held.owner, held.idleMs)) && (await claims.takeOver(key, held.owner, owner))) return;
  throw busy(workloadId, key, held.owner);
}

async function isOver(holders: ClaimHolders, owner: string, idleMs: number): Promise<boolean> {
  const [kind, id] = owner.split(/:(.*)/s);
  if (!id) return false;
  if (kind === 'migration') {
    const m = await holders.migrations.get(id);
    return m ? isFinished(m) : idleMs > VANISHED_AFTER_MS;
  }
  if (kind === 'checkpoint' && holders.checkpoints) {
    const cp = await holders.checkpoints.get(id);
    return cp ? cp.state !== 'queued' && cp.state !== 'taking' : idleMs > VANISHED_AFTER_MS;
  }
  return false;
}

function busy(workloadId: string, key: string, holder: string): ConflictError {
  const [kind, id] = holder.split(/:(.*)/s);
  const what = id ? `${kind} ${id}` : holder;
  return new ConflictError(`workload '${workloadId}' is already claimed by ${what}; try again once it has ended`, {
    holder,
    ...(kind === 'migration' && id ? { migration: id } : {}),
    ...(kind === 'checkpoint' && id ? { checkpoint: id } : {}),
    processKey: key,
  });
}
