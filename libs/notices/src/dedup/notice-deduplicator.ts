import type { Notice } from '../notice.js';
import type { DedupClaim, DedupStore } from './dedup-store.port.js';

/** Options of {@link NoticeDeduplicator}. */
export interface NoticeDeduplicatorOptions {
  /** Shortest memory of a notice. aks-nth keeps event ids for 10 minutes. */
  minTtlMs?: number;
  /** Keep remembering this long after the deadline (a dying node can still answer for a while). */
  afterDeadlineMs?: number;
  /**
   * Longest memory of a notice, whatever its deadline (default 1 h): a notice announced weeks ahead must not
   * hold its key for weeks, or a real termination of that node in between would be taken for it.
   */
  maxTtlMs?: number;
  /**
   * A notice for a held key whose deadline is earlier than the held one by more than this is news, not a
   * duplicate (a maintenance window brought forward, a termination after a far-off notice). Default 5 s, so
   * sources that recompute the same deadline on every poll do not count.
   */
  earlierByMs?: number;
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
 * Decides whether a notice is news. A key is remembered for `deadline - now + afterDeadline`, at least
 * `minTtl` and at most `maxTtl`, so a notice that flaps (seen, gone, seen again) raises once, an event announced
 * hours ahead is not raised again on every poll, and no far-off event blinds us for longer than `maxTtl`.
 * While a key is held, a notice with an earlier deadline is still news (`earlier`): exactly once per replica set.
 */
export class NoticeDeduplicator {
  readonly minTtlMs: number;
  readonly afterDeadlineMs: number;
  readonly maxTtlMs: number;
  readonly earlierByMs: number;
  private readonly keyOf: (notice: Notice) => string;
  private readonly now: () => number;

  constructor(
    private readonly store: DedupStore,
    private readonly options: NoticeDeduplicatorOptions = {},
  ) {
    this.minTtlMs = options.minTtlMs ?? 10 * 60_000;
    this.afterDeadlineMs = options.afterDeadlineMs ?? 5 * 60_000;
    this.maxTtlMs = Math.max(this.minTtlMs, options.maxTtlMs ?? 60 * 60_000);
    this.earlierByMs = options.earlierByMs ?? 5_000;
    this.keyOf = options.keyOf ?? ((n) => n.dedupKey);
    this.now = options.now ?? Date.now;
  }

  /** How long a notice's key is held. */
  ttlOf(notice: Notice): number {
    const untilAfterDeadline = notice.deadline.getTime() - this.now() + this.afterDeadlineMs;
    return Math.min(this.maxTtlMs, Math.max(this.minTtlMs, untilAfterDeadline));
  }

  /** `new`, `earlier` (seen, but this deadline is earlier: act on it) or `duplicate`, across every replica. */
  async classify(notice: Notice): Promise<DedupClaim> {
    try {
      return await this.store.claimDeadline(
        this.keyOf(notice),
        notice.deadline.getTime(),
        this.ttlOf(notice),
        this.earlierByMs,
      );
    } catch (err) {
      this.options.onStoreError?.(err, notice);
      return 'new';
    }
  }

  /** True when the notice needs acting on: first seen, or seen with a later deadline before. */
  async isNew(notice: Notice): Promise<boolean> {
    return (await this.classify(notice)) !== 'duplicate';
  }

  /** The notices of a batch that are new, in order; duplicates inside the batch count once. */
  async filterNew(notices: readonly Notice[]): Promise<Notice[]> {
    const out: Notice[] = [];
    for (const n of notices) if (await this.isNew(n)) out.push(n);
    return out;
  }
}
