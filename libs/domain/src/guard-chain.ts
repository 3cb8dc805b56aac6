/**
 * Incremental guard checkpoints, pure: whether the next guard dump can name the last one as its parent
 * (`criu dump --leave-running --track-mem --prev-images-dir ../<parent>`, whose pages then hold only what the
 * workload dirtied since), and which checkpoints a kept one needs (its chain), so retention never removes them.
 * A parent is only safe when nothing could have cleared or lost the soft-dirty bits since it was taken: same
 * process on the same node, its dump tracked memory, and no guard dump of that workload failed after it (a
 * failed dump may have reset the bits half-way, and a child would then miss pages).
 */
import type { CheckpointRecord, GuardChainLink } from './checkpoint.js';
import type { NodeRecord, WorkloadRecord } from './models.js';

/** At most this many checkpoints in one chain (a full one and its incrementals) before a new full one. */
export const GUARD_DEFAULT_CHAIN = 4;

export type GuardDumpPlan =
  | { kind: 'full'; link: GuardChainLink; reason: string }
  | { kind: 'incremental'; link: GuardChainLink & { parentId: string }; parent: CheckpointRecord };

export interface GuardDumpInput {
  /** The workload's checkpoints, any order. */
  checkpoints: CheckpointRecord[];
  /** Where the workload runs now and its root pid there. */
  nodeId: string;
  pid: number;
  /** The storage node this dump goes to. */
  storageNodeId: string;
  /** The node's probe says `criu check --feature mem_dirty_track` works (soft-dirty in the kernel). */
  memDirtyTrack: boolean;
  /** Pages encrypted on the source before they leave it: no page-server, so no parent on the storage side. */
  encrypted?: boolean;
  /** A Podman container: Podman exports every guard checkpoint whole (it chains one pre-checkpoint only). */
  container?: boolean;
  maxChain?: number;
}

const newestFirst = (a: CheckpointRecord, b: CheckpointRecord) => b.createdAt.localeCompare(a.createdAt);

/** A record's place in its chain; records without one are full dumps taken without --track-mem. */
export function chainLink(c: CheckpointRecord): GuardChainLink {
  return c.guardChain ?? { depth: 1, trackMem: false };
}

/**
 * The next guard dump's input for `workload` on `node` (where it runs): one place for the guard pass, which weighs
 * its freeze budget against the kind of dump, and `POST /checkpoints`, which takes it.
 */
export function guardDumpInputOf(
  workload: Pick<WorkloadRecord, 'pid' | 'kind'>,
  node: Pick<NodeRecord, 'id' | 'probe'>,
  checkpoints: CheckpointRecord[],
  storageNodeId: string,
  encrypted: boolean,
): GuardDumpInput {
  return {
    checkpoints,
    nodeId: node.id,
    pid: workload.pid,
    storageNodeId,
    memDirtyTrack: node.probe?.features?.mem_dirty_track === true,
    encrypted,
    container: workload.kind === 'podman',
  };
}

export function planGuardDump(input: GuardDumpInput): GuardDumpPlan {
  const maxChain = input.maxChain ?? GUARD_DEFAULT_CHAIN;
  const trackMem = input.memDirtyTrack && !input.encrypted && !input.container;
  const full = (reason: string): GuardDumpPlan => ({ kind: 'full', link: { depth: 1, trackMem }, reason });
  if (input.container) return full('a container: Podman exports each checkpoint whole');
  if (!input.memDirtyTrack) return full(`${input.nodeId} does not track dirty memory (no soft-dirty)`);
  if (input.encrypted) return full('encrypted at rest: pages are sealed on the source, no parent on the storage node');
  const guards = input.checkpoints.filter((c) => c.mode === 'guard').sort(newestFirst);
  const settled = guards.filter((c) => c.state !== 'queued' && c.state !== 'taking');
  const last = settled[0];
  if (!last) return full('first guard checkpoint');
  if (last.state !== 'stored')
    return full(`the last guard checkpoint ${last.id} is ${last.state}: the chain is broken`);
  if (last.sourceNodeId !== input.nodeId) return full(`the last guard checkpoint was taken on ${last.sourceNodeId}`);
  if (last.tree?.[0] !== input.pid) return full('the workload runs as another process than at the last checkpoint');
  if (last.storageNodeId !== input.storageNodeId) {
    return full(`the last guard checkpoint is on storage node ${last.storageNodeId}`);
  }
  const link = chainLink(last);
  if (!link.trackMem) return full(`the last guard checkpoint ${last.id} was taken without --track-mem`);
  if (link.depth >= maxChain) return full(`the chain reached ${maxChain}: a new full one starts`);
  return { kind: 'incremental', link: { parentId: last.id, depth: link.depth + 1, trackMem: true }, parent: last };
}

/**
 * The ids a checkpoint's restore reads: itself, then each parent up to its full dump. Stops (and says so) at a
 * parent that is not among `all`: the chain is broken and the checkpoint cannot be restored.
 */
export function guardChain(c: CheckpointRecord, all: CheckpointRecord[]): { ids: string[]; missing?: string } {
  const byId = new Map(all.map((x) => [x.id, x]));
  const ids = [c.id];
  let parentId = chainLink(c).parentId;
  while (parentId !== undefined) {
    const p = byId.get(parentId);
    if (!p || p.state === 'failed' || ids.includes(parentId)) return { ids, missing: parentId };
    ids.push(parentId);
    parentId = chainLink(p).parentId;
  }
  return { ids };
}

/**
 * A checkpoint whose images build on `id` (an incremental guard checkpoint naming it as parent, not failed): while
 * one exists, removing `id` would leave that one without its pages. Retention removes children first.
 */
export function guardChildOf(id: string, all: CheckpointRecord[]): CheckpointRecord | undefined {
  return all.find((c) => c.guardChain?.parentId === id && c.state !== 'failed');
}
