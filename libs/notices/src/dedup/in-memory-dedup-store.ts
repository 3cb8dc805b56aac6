import { DedupStore } from './dedup-store.port.js';

/** A {@link DedupStore} in one process's memory: for unit tests and a single-replica node agent. */
export class InMemoryDedupStore extends DedupStore {
  private readonly expiries = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {
    super();
  }

  setIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const expiry = this.expiries.get(key);
    if (expiry !== undefined && expiry > now) return Promise.resolve(false);
    this.expiries.set(key, now + ttlMs);
    // Sweep lazily so a long-lived agent does not grow without bound.
    if (this.expiries.size > 1_000) for (const [k, e] of this.expiries) if (e <= now) this.expiries.delete(k);
    return Promise.resolve(true);
  }
}
