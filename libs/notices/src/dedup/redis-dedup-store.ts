import type { Redis } from 'ioredis';
import { DedupStore } from './dedup-store.port.js';

/**
 * A {@link DedupStore} on Redis: `SET key 1 NX PX ttl` is atomic, so when several orchestrator replicas
 * see the same notice exactly one gets `OK`. The connection is the caller's (opened and closed by it).
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
}
