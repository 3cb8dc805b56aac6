import type { Redis } from 'ioredis';

/** What a claim attempt found: ours now (or already), or held by another owner. */
export type ClaimResult = { ok: true } | { ok: false; holder: string };

/**
 * One claim per process (keyed by `processKey`, libs/domain workload-identity.ts) across every replica that
 * shares this Redis: whoever means to freeze a workload (a migration, a checkpoint) must hold it first. The
 * owner is the job's id (`migration:<id>`, `checkpoint:<id>`), so a claim always names who holds it.
 *
 * A claim whose job vanished (its record lost with Redis data, a release that never ran) cannot block a
 * workload for ever: every claim carries a TTL that the running job refreshes, and a caller that finds a
 * holder whose job is gone or finished may `takeOver` from exactly that holder (compare-and-set). Expiry of a
 * queued job's claim costs nothing but the early 409: the job re-asserts its claim (`claim` again) before
 * anything freezes, and that is atomic too.
 */
export abstract class WorkloadClaims {
  /** Claims `key` for `owner` if free, or refreshes it if `owner` already holds it. */
  abstract claim(key: string, owner: string, ttlMs?: number): Promise<ClaimResult>;
  /** Replaces `staleOwner`'s claim with `owner`'s; false when the claim changed hands meanwhile. */
  abstract takeOver(key: string, staleOwner: string, owner: string, ttlMs?: number): Promise<boolean>;
  /** Releases the claim only if `owner` still holds it (compare-and-delete); true when it did. */
  abstract release(key: string, owner: string): Promise<boolean>;
  /** Who holds `key`, and how long ago the claim was taken or last refreshed. */
  abstract holder(key: string): Promise<{ owner: string; idleMs: number } | undefined>;
}

/**
 * Long enough for a queued job to wait its turn behind a busy worker; the running job refreshes it
 * (CLAIM_REFRESH_MS) so it never lapses under a live job.
 */
export const CLAIM_TTL_MS = 30 * 60_000;
export const CLAIM_REFRESH_MS = 60_000;

export const migrationOwner = (id: string) => `migration:${id}`;
export const checkpointOwner = (id: string) => `checkpoint:${id}`;

// KEYS[1] claim; ARGV owner, ttl. 1 = ours (new or refreshed), else the holder.
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return v`;
// KEYS[1] claim; ARGV stale owner, new owner, ttl.
const TAKE_OVER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

const HOLDER = `return { redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]) }`;

export class RedisWorkloadClaims extends WorkloadClaims {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
  }

  private key(key: string): string {
    return `${this.prefix}:claim:${key}`;
  }

  async claim(key: string, owner: string, ttlMs = CLAIM_TTL_MS): Promise<ClaimResult> {
    const r = (await this.redis.eval(CLAIM, 1, this.key(key), owner, String(ttlMs))) as number | string;
    return r === 1 ? { ok: true } : { ok: false, holder: String(r) };
  }

  async takeOver(key: string, staleOwner: string, owner: string, ttlMs = CLAIM_TTL_MS): Promise<boolean> {
    return (await this.redis.eval(TAKE_OVER, 1, this.key(key), staleOwner, owner, String(ttlMs))) === 1;
  }

  async release(key: string, owner: string): Promise<boolean> {
    return (await this.redis.eval(RELEASE, 1, this.key(key), owner)) === 1;
  }

  async holder(key: string, ttlMs = CLAIM_TTL_MS): Promise<{ owner: string; idleMs: number } | undefined> {
    const [owner, pttl] = (await this.redis.eval(HOLDER, 1, this.key(key))) as [string | null, number];
    return owner ? { owner, idleMs: Math.max(0, ttlMs - pttl) } : undefined;
  }
}

/** The same rules in process memory (no expiry), for unit tests and single-process tools. */
export class InMemoryWorkloadClaims extends WorkloadClaims {
  private readonly claims = new Map<string, { owner: string; at: number }>();

  constructor(private readonly now: () => number = Date.now) {
    super();
  }

  claim(key: string, owner: string): Promise<ClaimResult> {
    const v = this.claims.get(key);
    if (v === undefined || v.owner === owner) {
      this.claims.set(key, { owner, at: this.now() });
      return Promise.resolve({ ok: true });
    }
    return Promise.resolve({ ok: false, holder: v.owner });
  }

  takeOver(key: string, staleOwner: string, owner: string): Promise<boolean> {
    if (this.claims.get(key)?.owner !== staleOwner) return Promise.resolve(false);
    this.claims.set(key, { owner, at: this.now() });
    return Promise.resolve(true);
  }

  release(key: string, owner: string): Promise<boolean> {
    if (this.claims.get(key)?.owner !== owner) return Promise.resolve(false);
    this.claims.delete(key);
    return Promise.resolve(true);
  }

  holder(key: string): Promise<{ owner: string; idleMs: number } | undefined> {
    const v = this.claims.get(key);
    return Promise.resolve(v && { owner: v.owner, idleMs: this.now() - v.at });
  }
}
