/**
 * Port: an atomic "claim this key for ttl" shared by every orchestrator replica, so exactly one of them
 * wins a given notice.
 */
export abstract class DedupStore {
  /** Sets `key` unless it exists; true when this call set it (the caller is first), false otherwise. */
  abstract setIfAbsent(key: string, ttlMs: number): Promise<boolean>;

  /**
   * Claims `key` for a notice with this deadline (epoch ms): `new` when the key was free, `earlier` when it was
   * held for a deadline later than this one by more than `earlierByMs` (the key then holds the new deadline,
   * so exactly one replica sees each earlier deadline), `duplicate` otherwise. Atomic across replicas.
   * The default keeps no deadline (stores that cannot compare never say `earlier`).
   */
  async claimDeadline(key: string, deadlineMs: number, ttlMs: number, earlierByMs: number): Promise<DedupClaim> {
    void deadlineMs;
    void earlierByMs;
    return (await this.setIfAbsent(key, ttlMs)) ? 'new' : 'duplicate';
  }
}

export type DedupClaim = 'new' | 'earlier' | 'duplicate';
