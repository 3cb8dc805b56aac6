import type { Redis } from 'ioredis';
import type { WatchLeaseTimings } from './watch-shards.js';

/**
 * Heartbeat in the sorted set of replicas, scored by Redis's own clock (TIME), so replicas with skewed
 * clocks agree on who is live; members silent for ten leases are dropped. Returns the live ones.
 */
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * lease)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - lease, '+inf')`;

/**
 * Compare-and-extend: each key still ours gets a fresh expiry; one that lapsed and nobody took is ours again
 * (its watch never stopped here: a renewal late by a slow period must not stop and restart it, which at 1,000
 * nodes restarted 15,000 watches in 8 minutes); answers 1 (kept) or 0 (lost: another replica holds it) per key.
 */
const RENEW = `
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2])
    out[i] = 1
  elseif v == false then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out`;

/** Compare-and-delete: a lease another replica took since is left alone. */
const RELEASE = `
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then n = n + redis.call('DEL', k) end
end
return n`;

/**
 * The Redis side of watcher sharding: one key per node (`<prefix>:watch:lease:<node>`, value = the holder's
 * replica id, expiring after the lease) and one sorted set of replica heartbeats. Every operation is one
 * atomic command or script, so a lease is never held by two replicas at once.
 */
export class RedisWatchLeases {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** This replica's id; unique per process (a restarted process is a new replica). */
    readonly self: string,
    private readonly timings: WatchLeaseTimings,
  ) {}

  private key(node: string): string {
    return `${this.prefix}:watch:lease:${node}`;
  }

  private get replicasKey(): string {
    return `${this.prefix}:watch:replicas`;
  }

  /** Says this replica is live; returns every live replica (this one included). */
  async heartbeat(): Promise<string[]> {
    return (await this.redis.eval(HEARTBEAT, 1, this.replicasKey, this.self, String(this.timings.leaseMs))) as string[];
  }

  /** Extends the leases still ours (or lapsed and free); returns the nodes whose lease another replica took. */
  async renew(nodes: readonly string[]): Promise<string[]> {
    if (!nodes.length) return [];
    const res = (await this.redis.eval(
      RENEW,
      nodes.length,
      ...nodes.map((n) => this.key(n)),
      this.self,
      String(this.timings.leaseMs),
    )) as number[];
    return nodes.filter((_, i) => res[i] !== 1);
  }

  /** Who holds each leased node among `nodes`. */
  async holders(nodes: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (!nodes.length) return out;
    const values = await this.redis.mget(...nodes.map((n) => this.key(n)));
    values.forEach((v, i) => v !== null && out.set(nodes[i]!, v));
    return out;
  }

  /** Tries each free node with SET NX PX; returns those this replica got. */
  async acquire(nodes: readonly string[]): Promise<string[]> {
    if (!nodes.length) return [];
    const pipe = this.redis.pipeline();
    for (const n of nodes) pipe.set(this.key(n), this.self, 'PX', this.timings.leaseMs, 'NX');
    const res = (await pipe.exec()) ?? [];
    return nodes.filter((_, i) => res[i]?.[0] === null && res[i]?.[1] === 'OK');
  }

  /** Gives leases back (only those still ours). */
  async release(nodes: readonly string[]): Promise<void> {
    if (!nodes.length) return;
    await this.redis.eval(RELEASE, nodes.length, ...nodes.map((n) => this.key(n)), this.self);
  }

  /** Shutdown: gives every lease back and leaves the replica set, so others take over at their next period. */
  async leave(held: readonly string[]): Promise<void> {
    await this.release(held);
    await this.redis.zrem(this.replicasKey, this.self);
  }
}
