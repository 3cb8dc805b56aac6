import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/** A held lease: `renew` says whether it is still ours; `release` never throws. */
export interface HeldLease {
  renew(ttlMs: number): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * The one lease under which trials ahead of notices run, installation-wide: several worker replicas share one
 * Redis, and each would otherwise trial the same pairs (a trial freezes a probe on both nodes).
 */
export abstract class TrialLease {
  /** The lease for `ttlMs`, or undefined when another replica holds it. */
  abstract take(ttlMs: number): Promise<HeldLease | undefined>;
}

export class RedisTrialLease extends TrialLease {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {
    super();
  }

  async take(ttlMs: number): Promise<HeldLease | undefined> {
    const token = randomUUID();
    if ((await this.redis.set(this.key, token, 'PX', ttlMs, 'NX')) !== 'OK') return undefined;
    return {
      renew: async (ms) => (await this.redis.eval(RENEW, 1, this.key, token, String(ms)).catch(() => 0)) === 1,
      release: async () => {
        await this.redis.eval(RELEASE, 1, this.key, token).catch(() => undefined);
      },
    };
  }
}
