import { type DedupClaim, DedupStore } from './dedup-store.port.js';

/** A {@link DedupStore} in one process's memory: for unit tests and a single-replica node agent. */
export class InMemoryDedupStore extends DedupStore {
  private readonly entries = new Map<string, { expiry: number; deadlineMs: number }>();

  constructor(private readonly now: () => number = Date.now) {
    super();
  }

  /** Like Redis's `SET NX`: the key then holds no deadline, and nothing counts as earlier. */
  setIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const held = this.entries.get(key);
    if (held !== undefined && held.expiry > now) return Promise.resolve(false);
    this.entries.set(key, { expiry: now + ttlMs, deadlineMs: -Infinity });
    return Promise.resolve(true);
  }

  override claimDeadline(key: string, deadlineMs: number, ttlMs: number, earlierByMs: number): Promise<DedupClaim> {
    const now = this.now();
    const held = this.entries.get(key);
    const live = held !== undefined && held.expiry > now;
    if (live && !(deadlineMs < held.deadlineMs - earlierByMs)) return Promise.resolve('duplicate');
    this.entries.set(key, { expiry: now + ttlMs, deadlineMs });
    // Sweep lazily so a long-lived agent does not grow without bound.
    if (this.entries.size > 1_000) for (const [k, e] of this.entries) if (e.expiry <= now) this.entries.delete(k);
    return Promise.resolve(live ? 'earlier' : 'new');
  }
}
