import type { WatchLeaseStore } from '@spotlift/notices';

/**
 * The shared state RedisWatchLeases keeps in Redis, in memory with a clock the test moves: lease keys with
 * an expiry and replica heartbeats. Each method acts atomically, as the Redis command or script does.
 */
export class InMemoryLeaseWorld {
  now = 0;
  readonly leases = new Map<string, { holder: string; until: number }>();
  readonly beats = new Map<string, number>();

  constructor(readonly leaseMs: number) {}

  /** Holder of a node's lease at the current time, if any. */
  holder(node: string): string | undefined {
    const l = this.leases.get(node);
    return l && l.until > this.now ? l.holder : undefined;
  }

  store(self: string): WatchLeaseStore {
    return new InMemoryWatchLeases(this, self);
  }
}

class InMemoryWatchLeases implements WatchLeaseStore {
  constructor(
    private readonly w: InMemoryLeaseWorld,
    readonly self: string,
  ) {}

  heartbeat(): Promise<string[]> {
    this.w.beats.set(this.self, this.w.now);
    return Promise.resolve([...this.w.beats].filter(([, at]) => at > this.w.now - this.w.leaseMs).map(([r]) => r));
  }

  renew(nodes: readonly string[]): Promise<string[]> {
    const lost: string[] = [];
    for (const n of nodes) {
      if (this.w.holder(n) === this.self)
        this.w.leases.set(n, { holder: this.self, until: this.w.now + this.w.leaseMs });
      else lost.push(n);
    }
    return Promise.resolve(lost);
  }

  holders(nodes: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const n of nodes) {
      const h = this.w.holder(n);
      if (h) out.set(n, h);
    }
    return Promise.resolve(out);
  }

  acquire(nodes: readonly string[]): Promise<string[]> {
    const got = nodes.filter((n) => this.w.holder(n) === undefined);
    for (const n of got) this.w.leases.set(n, { holder: this.self, until: this.w.now + this.w.leaseMs });
    return Promise.resolve(got);
  }

  release(nodes: readonly string[]): Promise<void> {
    for (const n of nodes) if (this.w.holder(n) === this.self) this.w.leases.delete(n);
    return Promise.resolve();
  }

  async leave(held: readonly string[]): Promise<void> {
    await this.release(held);
    this.w.beats.delete(this.self);
  }
}
