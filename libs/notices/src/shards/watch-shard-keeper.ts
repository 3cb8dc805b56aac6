import { planShard, type ShardPlan } from './watch-shards.js';

/** The lease operations a keeper needs (RedisWatchLeases; an in-memory one with a fixed clock in specs). */
export interface WatchLeaseStore {
  readonly self: string;
  heartbeat(): Promise<string[]>;
  renew(nodes: readonly string[]): Promise<string[]>;
  holders(nodes: readonly string[]): Promise<Map<string, string>>;
  acquire(nodes: readonly string[]): Promise<string[]>;
  release(nodes: readonly string[]): Promise<void>;
  leave(held: readonly string[]): Promise<void>;
}

/** What one period changed, for logs and tests. */
export interface ShardPeriod {
  taken: string[];
  dropped: { node: string; why: 'lost' | 'released' }[];
  plan: ShardPlan;
  liveReplicas: number;
}

/**
 * One replica's side of watcher sharding: call `period(nodes)` every renewal period with the nodes to watch.
 * It renews what it holds, drops what it lost, gives back what it should not hold and takes free nodes up
 * to its share, telling the caller through `take` / `drop` (start / stop that node's watch).
 *
 * When a store call fails (Redis away), the period stops there and the nodes held so far stay watched: a
 * notice needs watching more than it needs exactly one watcher, and the notice deduplicator makes a second
 * watcher harmless. Their leases lapse meanwhile; the first period after Redis returns takes back those still
 * free and drops any another replica took.
 */
export class WatchShardKeeper {
  private readonly held = new Set<string>();

  constructor(
    private readonly store: WatchLeaseStore,
    private readonly take: (node: string) => void,
    private readonly drop: (node: string, why: 'lost' | 'released') => void,
    private readonly slack = 0,
  ) {}

  /** Nodes this replica holds (and so watches) now. */
  get nodes(): string[] {
    return [...this.held].sort();
  }

  holds(node: string): boolean {
    return this.held.has(node);
  }

  async period(nodes: readonly string[]): Promise<ShardPeriod> {
    const liveReplicas = await this.store.heartbeat();
    const dropped: ShardPeriod['dropped'] = [];
    for (const n of await this.store.renew([...this.held])) this.forget(n, 'lost', dropped);
    const holders = await this.store.holders(nodes);
    const plan = planShard({
      self: this.store.self,
      nodes,
      liveReplicas,
      held: [...this.held],
      holders,
      slack: this.slack,
    });
    // Forget before releasing: a node is never watched here after its lease may be someone else's.
    for (const n of plan.release) this.forget(n, 'released', dropped);
    await this.store.release(plan.release);
    const taken = await this.store.acquire(plan.acquire);
    for (const n of taken) {
      this.held.add(n);
      this.take(n);
    }
    return { taken, dropped, plan, liveReplicas: liveReplicas.length };
  }

  /** Shutdown: stop watching and give every lease back at once (others need not wait for them to lapse). */
  async leave(): Promise<void> {
    const held = [...this.held];
    for (const n of held) this.forget(n, 'released', []);
    await this.store.leave(held);
  }

  private forget(node: string, why: 'lost' | 'released', into: ShardPeriod['dropped']): void {
    if (!this.held.delete(node)) return;
    into.push({ node, why });
    this.drop(node, why);
  }
}
