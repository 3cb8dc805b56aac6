/**
 * Which nodes one orchestrator replica should watch, decided from what it read in Redis (pure: no clock, no
 * I/O; watch-leases.ts does the reading and the atomic lease operations).
 *
 * Every node with a metadata source is watched by one live replica: the one holding the node's lease. A
 * replica renews its leases each period, takes free ones up to its share, and lets go of what it should
 * not hold (nodes removed, more than its share once other replicas came up). Taking a lease is a
 * `SET NX`, so two replicas that choose the same free node in one period cannot both get it.
 */

/** The lease timings of a deployment (SPOTLIFT_WATCH_LEASE_MS / SPOTLIFT_WATCH_RENEW_MS). */
export interface WatchLeaseTimings {
  /** A lease lapses this long after its holder's last renewal; a replica counts as live as long. */
  leaseMs: number;
  /** Each replica renews, reads and rebalances this often. */
  renewMs: number;
}

/**
 * Why timings cannot work, or undefined. The renewal must come at least twice per lease, so that one late
 * period does not lose a lease its holder is still using; then a dead replica's nodes are free at most
 * `leaseMs` after its last renewal, and taken by the next period of a live one: within `leaseMs + renewMs`,
 * less than two lease periods.
 */
export function leaseTimingsProblem(t: WatchLeaseTimings): string | undefined {
  if (!Number.isInteger(t.leaseMs) || t.leaseMs < 1_000) return `the lease (${t.leaseMs} ms) must be >= 1000 ms`;
  if (!Number.isInteger(t.renewMs) || t.renewMs < 100) return `the renewal period (${t.renewMs} ms) must be >= 100 ms`;
  if (t.renewMs * 2 > t.leaseMs) {
    return `the renewal period (${t.renewMs} ms) must be at most half the lease (${t.leaseMs} ms)`;
  }
  return undefined;
}

/** What one replica knows at the start of a period. */
export interface ShardView {
  self: string;
  /** Nodes to watch (with a metadata source), across the deployment. */
  nodes: readonly string[];
  /** Replicas whose heartbeat is younger than a lease, this one included. */
  liveReplicas: readonly string[];
  /** Nodes whose lease this replica holds now (just renewed). */
  held: readonly string[];
  /** Holder of each node's lease, for nodes leased by anyone. */
  holders: ReadonlyMap<string, string>;
  /** How many nodes a replica may hold above an even share before it gives the excess back. */
  slack: number;
}

export interface ShardPlan {
  /** Free nodes to try to take (SET NX), best first. */
  acquire: string[];
  /** Held leases to give back: nodes gone, or more than this replica's share. */
  release: string[];
  /** Most nodes this replica holds after the period. */
  quota: number;
}

/** A replica's even share plus slack: ceil(nodes / live replicas) + slack. */
export function shardQuota(nodes: number, liveReplicas: number, slack: number): number {
  return Math.ceil(nodes / Math.max(1, liveReplicas)) + Math.max(0, slack);
}

/**
 * One period's decision. Free nodes are ordered by a hash of (replica, node), so replicas starting together
 * mostly reach for different nodes instead of all racing for the first ones.
 */
export function planShard(view: ShardView): ShardPlan {
  const live = new Set(view.liveReplicas);
  live.add(view.self);
  const nodes = new Set(view.nodes);
  const quota = shardQuota(nodes.size, live.size, view.slack);
  const gone = view.held.filter((n) => !nodes.has(n));
  const kept = view.held.filter((n) => nodes.has(n)).sort();
  // Over the share (others came up): give back the last ones; the others take them next period.
  const excess = kept.length > quota ? kept.slice(quota) : [];
  const holding = kept.length - excess.length;
  const free = [...nodes]
    .filter((n) => !view.holders.has(n))
    .sort((a, b) => rank(view.self, a) - rank(view.self, b) || (a < b ? -1 : 1));
  return { acquire: free.slice(0, Math.max(0, quota - holding)), release: [...gone, ...excess], quota };
}

/** FNV-1a of replica and node: a stable, replica-specific order. */
function rank(replica: string, node: string): number {
  let h = 0x811c9dc5;
  for (const ch of `${replica}\u0000${node}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
