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
    this.remember(key, { expiry: now + ttlMs, deadlineMs: -Infinity }, now);
    return Promise.resolve(true);
  }

  override claimDeadline(key: string, deadlineMs: number, ttlMs: number, earlierByMs: number): Promise<DedupClaim> {
    const now = this.now();
    const held = this.entries.get(key);
    const live = held !== undefined && held.expiry > now;
    if (live && !(deadlineMs < held.deadlineMs - earlierByMs)) return Promise.resolve('duplicate');
    this.remember(key, { expiry: now + ttlMs, deadlineMs }, now);
    return Promise.resolve(live ? 'earlier' : 'new');
  }

  private remember(key: string, entry: { expiry: number; deadlineMs: number }, now: number): void {
    this.entries.set(key, entry);
    // Sweep lazily, past a bound only, so a long-lived agent does not grow without bound nor scan every call.
    if (this.entries.size > 1_000) for (const [k, e] of this.entries) if (e.expiry <= now) this.entries.delete(k);
  }
}
