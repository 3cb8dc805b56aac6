/**
 * Port: an atomic "claim this key for ttl" shared by every orchestrator replica, so exactly one of them
 * wins a given notice.
 */
export abstract class DedupStore {
  /** Sets `key` unless it exists; true when this call set it (the caller is first), false otherwise. */
  abstract setIfAbsent(key: string, ttlMs: number): Promise<boolean>;
}
