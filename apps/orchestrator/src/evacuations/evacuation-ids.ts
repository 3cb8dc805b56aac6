import { createHash } from 'node:crypto';

/**
 * The id every replica computes for the n-th evacuation of (node, kind) in this node's registration:
 * `evac-<node>-<kind>-<8 hex of the node's createdAt>[-n]`. Deterministic, so replicas that race on the
 * same notice create-if-absent the same record and enqueue the same job id.
 */
export function evacuationId(nodeId: string, kind: string, nodeCreatedAt: string, n = 1): string {
  const generation = createHash('sha256').update(`${nodeId}\n${nodeCreatedAt}`).digest('hex').slice(0, 8);
  return `evac-${nodeId}-${kind}-${generation}${n > 1 ? `-${n}` : ''}`;
}
