import type { Notice } from '../notice.js';
import type { DedupStore } from './dedup-store.port.js';

/** Options of {@link NoticeDeduplicator}. */
export interface NoticeDeduplicatorOptions {
  /** Shortest memory of a notice. aks-nth keeps event ids for 10 minutes. */
  minTtlMs?: number;
  /** Keep remembering this long after the deadline (a dying node can still answer for a while). */
  afterDeadlineMs?: number;
  /** The key to deduplicate on. Default `notice.dedupKey` (per source); see `crossSourceDedupKey`. */
  keyOf?: (notice: Notice) => string;
  /**
   * Called when the store fails. The notice is then treated as new: a duplicate evacuation is caught by
   * the evacuation's own idempotency, a missed one loses workloads.
   */
  onStoreError?: (err: unknown, notice: Notice) => void;
  now?: () => number;
}

/**
 * Decides whether a notice is new. A key is remembered for `max(minTtl, deadline - now + afterDeadline)`,
 * so a notice that flaps (seen, gone, seen again) raises once, and an event announced days ahead (AWS or
 * Azure maintenance) is not raised again every few minutes.
 */
export class NoticeDeduplicator {
  private readonly minTtlMs: number;
  private readonly afterDeadlineMs: number;
  private readonly keyOf: (notice: Notice) => string;
  private readonly now: () => number;

  constructor(
    private readonly store: DedupStore,
    private readonly options: NoticeDeduplicatorOptions = {},
  ) {
    this.minTtlMs = options.minTtlMs ?? 10 * 60_000;
    this.afterDeadlineMs = options.afterDeadlineMs ?? 5 * 60_000;
    this.keyOf = options.keyOf ?? ((n) => n.dedupKey);
    this.now = options.now ?? Date.now;
  }

  /** True exactly once per key and TTL, across every replica sharing the store. */
  async isNew(notice: Notice): Promise<boolean> {
    const ttlMs = Math.max(this.minTtlMs, notice.deadline.getTime() - this.now() + this.afterDeadlineMs);
    try {
      return await this.store.setIfAbsent(this.keyOf(notice), ttlMs);
    } catch (err) {
      this.options.onStoreError?.(err, notice);
      return true;
    }
  }

  /** The notices of a batch that are new, in order; duplicates inside the batch count once. */
  async filterNew(notices: readonly Notice[]): Promise<Notice[]> {
    const out: Notice[] = [];
    for (const n of notices) if (await this.isNew(n)) out.push(n);
    return out;
  }
}
