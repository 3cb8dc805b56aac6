import type { NodeRecord } from '@spotlift/domain';

/**
 * How many destinations get a fresh MemAvailable read over SSH when an evacuation is planned. Reading every
 * ready node cost one SSH exec per node and notice: at 1,000 nodes and 50 notices at once, 50,000 execs before
 * the first freeze (bench/scale fleet-bench: at 200 nodes, 10 notices at once waited ~4 s for them). The planner
 * places on the roomiest nodes first, so those are the ones whose figure must be current; the others are
 * planned from their probe's figure (refreshed by every probe), as a node that does not answer in time already is.
 */
export const FRESH_MEMORY_READS = 16;

/** The ready nodes other than `sourceId` to read MemAvailable from now: the `limit` roomiest by their last probe. */
export function freshMemoryCandidates(
  nodes: readonly NodeRecord[],
  sourceId: string,
  limit = FRESH_MEMORY_READS,
): NodeRecord[] {
  return nodes
    .filter((n) => n.id !== sourceId && n.state === 'ready')
    .sort((a, b) => (b.probe?.memAvailableBytes ?? 0) - (a.probe?.memAvailableBytes ?? 0) || a.id.localeCompare(b.id))
    .slice(0, limit);
}
