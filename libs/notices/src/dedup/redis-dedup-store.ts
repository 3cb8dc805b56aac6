import type { Redis } from 'ioredis';
import { type DedupClaim, DedupStore } from './dedup-store.port.js';

/**
 * Free key: set it to the deadline. Held: replace it only with a deadline earlier by more than ARGV[3] ms. A
 * key without a number (written by `setIfAbsent`, or by an older version) counts as the latest deadline.
 */
const CLAIM = `
local held = redis.call('GET', KEYS[1])
if not held then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 'new' end
local d = tonumber(held)
if d and tonumber(ARGV[1]) < d - tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'earlier'
end
return 'duplicate'`;

/**
 * A {@link DedupStore} on Redis: `SET key NX PX ttl` (and one Lua script for deadlines) are atomic, so when
 * several orchestrator replicas see the same notice exactly one gets it. The connection is the caller's.
 */
export class RedisDedupStore extends DedupStore {
  constructor(
    private readonly redis: Redis,
    /** Namespaces the keys; keep it per deployment so two fleets on one Redis do not collide. */
    private readonly prefix = 'spotlift:notice-dedup:',
  ) {
    super();
  }

  async setIfAbsent(key: string, ttlMs: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    const res = await this.redis.set(this.prefix + key, '1', 'PX', ttl, 'NX');
    return res === 'OK';
  }

  override async claimDeadline(
    key: string,
    deadlineMs: number,
    ttlMs: number,
    earlierByMs: number,
  ): Promise<DedupClaim> {
    const ttl = Math.max(1, Math.ceil(ttlMs));
    const res = await this.redis.eval(
      CLAIM,
      1,
      this.prefix + key,
      String(Math.round(deadlineMs)),
      String(ttl),
      String(Math.max(0, Math.round(earlierByMs))),
    );
    if (res === 'new' || res === 'earlier' || res === 'duplicate') return res;
    throw new Error(`unexpected answer from the dedup script: ${String(res)}`);
  }
}
