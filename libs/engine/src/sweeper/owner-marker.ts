import { processKey, type ProcessIdentity } from '@spotlift/domain';
import type { MigrationContext } from '../engine.types.js';
import { nodeLockPath } from '../node-ops/node-scripts.js';

/**
 * The ownership marker the engine writes into each side's image directory (`<imageRoot>/<id>/src` on the
 * source, `<imageRoot>/<id>/dst` on the destination) when it creates it. When the worker and the records are
 * gone, it is all the sweeper has to know which tree may be frozen, on which node, and who its pair is.
 * The file is written by a node we do not fully trust, so it is parsed strictly and bounded.
 */
export const OWNER_MARKER_FILE = 'spotlift-owner.json';

export type OwnerRole = 'source' | 'destination';

export interface OwnerMarker {
  v: 1;
  migrationId: string;
  role: OwnerRole;
  workloadId: string;
  /** The source tree's root pid (the one that may be frozen) and which process it was. */
  pid: number;
  identity?: ProcessIdentity;
  /** Tasks in the source tree at preflight: a restored copy with another count is not verified. */
  tasks?: number;
  sourceNodeId: string;
  destinationNodeId: string;
  /** The job asked to keep its images: they are swept only after the configured age. */
  keepImages: boolean;
  /** The node-side lock file a live job holds while the tree is frozen. */
  lockFile: string;
  createdAt: string;
  /**
   * `podman`: the workload is a container, `container` its full id. The sweeper then asks each node's Podman
   * about that id (container-sweep.ts) instead of looking at `pid`, which a checkpointed container no longer has.
   */
  kind?: 'podman';
  container?: string;
}

/** The marker for one side of a migration, as the engine knows it when it creates the image directory. */
export function ownerMarker(ctx: MigrationContext, role: OwnerRole, now: Date): OwnerMarker {
  const { migration, workload } = ctx;
  return {
    v: 1,
    migrationId: migration.id,
    role,
    workloadId: workload.id,
    pid: workload.pid,
    ...(workload.identity ? { identity: workload.identity } : {}),
    ...(workload.tree?.length ? { tasks: workload.tree.length } : {}),
    sourceNodeId: ctx.source.id,
    destinationNodeId: ctx.destination.id,
    keepImages: migration.keepImages === true,
    lockFile: nodeLockPath(processKey(workload)),
    createdAt: now.toISOString(),
    ...(workload.kind === 'podman' && workload.container
      ? { kind: 'podman' as const, container: workload.container }
      : {}),
  };
}

const ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const TOKEN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Podman's container ids: 64 hex digits (a marker holds the full id, never a name another container may take). */
const CONTAINER_ID = /^[0-9a-f]{64}$/;

/** The marker read back from a node, or undefined when it is missing, too big or not one we wrote. */
export function parseOwnerMarker(text: string): OwnerMarker | undefined {
  if (!text || text.length > 4096) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  const str = (k: string, re: RegExp) => typeof m[k] === 'string' && re.test(m[k]);
  if (m.v !== 1 || (m.role !== 'source' && m.role !== 'destination')) return undefined;
  if (!str('migrationId', ID) || !str('workloadId', ID) || !str('sourceNodeId', ID) || !str('destinationNodeId', ID))
    return undefined;
  if (!Number.isInteger(m.pid) || (m.pid as number) < 2 || (m.pid as number) > 2 ** 22) return undefined;
  if (m.tasks !== undefined && (!Number.isInteger(m.tasks) || (m.tasks as number) < 1)) return undefined;
  if (typeof m.keepImages !== 'boolean' || !str('createdAt', /^[0-9T:.Z+-]{10,40}$/)) return undefined;
  if (Number.isNaN(Date.parse(m.createdAt as string))) return undefined;
  if (!str('lockFile', /^\/run\/spotlift\/locks\/[A-Za-z0-9._-]{1,210}$/)) return undefined;
  if (m.kind !== undefined && (m.kind !== 'podman' || !str('container', CONTAINER_ID))) return undefined;
  if (m.kind === undefined && m.container !== undefined) return undefined;
  let identity: ProcessIdentity | undefined;
  if (m.identity !== undefined) {
    const i = m.identity as Record<string, unknown> | null;
    if (!i || ![i.bootId, i.pidNs, i.startTime].every((x) => typeof x === 'string' && TOKEN.test(x))) return undefined;
    identity = { bootId: i.bootId as string, pidNs: i.pidNs as string, startTime: i.startTime as string };
  }
  return {
    v: 1,
    migrationId: m.migrationId as string,
    role: m.role,
    workloadId: m.workloadId as string,
    pid: m.pid as number,
    ...(identity ? { identity } : {}),
    ...(m.tasks !== undefined ? { tasks: m.tasks as number } : {}),
    sourceNodeId: m.sourceNodeId as string,
    destinationNodeId: m.destinationNodeId as string,
    keepImages: m.keepImages,
    lockFile: m.lockFile as string,
    createdAt: m.createdAt as string,
    ...(m.kind === 'podman' ? { kind: 'podman' as const, container: m.container as string } : {}),
  };
}
