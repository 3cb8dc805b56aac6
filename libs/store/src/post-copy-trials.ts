import type { PostCopyTrialRecord } from '@spotlift/domain';
import type { Redis } from 'ioredis';

/**
 * Post-copy trial results per node pair (source -> destination), each kept for a limited time: a trial
 * costs a real migration of a probe process, but its answer goes stale when an operator changes a sysctl
 * or a node is replaced. Expiry is the store's job, so every worker sees the same answer.
 */
export abstract class PostCopyTrials {
  abstract get(sourceNodeId: string, destinationNodeId: string): Promise<PostCopyTrialRecord | undefined>;
  abstract put(record: PostCopyTrialRecord, ttlMs: number): Promise<void>;

  /** One source's records towards each destination, in order (an evacuation plan reads every pair of its source). */
  getMany(sourceNodeId: string, destinations: readonly string[]): Promise<(PostCopyTrialRecord | undefined)[]> {
    return Promise.all(destinations.map((d) => this.get(sourceNodeId, d)));
  }
}

export class RedisPostCopyTrials extends PostCopyTrials {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
  }

  private key(source: string, destination: string): string {
    return `${this.prefix}:postcopy-trial:${source}->${destination}`;
  }

  async get(source: string, destination: string): Promise<PostCopyTrialRecord | undefined> {
    const raw = await this.redis.get(this.key(source, destination));
    return raw ? (JSON.parse(raw) as PostCopyTrialRecord) : undefined;
  }

  /** One MGET: at 1,000 nodes a plan's 999 GETs were 999 commands (times 2 with the links) per evacuation. */
  override async getMany(
    source: string,
    destinations: readonly string[],
  ): Promise<(PostCopyTrialRecord | undefined)[]> {
    if (!destinations.length) return [];
    const raws = await this.redis.mget(...destinations.map((d) => this.key(source, d)));
    return raws.map((raw) => (raw ? (JSON.parse(raw) as PostCopyTrialRecord) : undefined));
  }

  async put(record: PostCopyTrialRecord, ttlMs: number): Promise<void> {
    const ttl = Math.max(1, Math.round(ttlMs));
    await this.redis.set(this.key(record.sourceNodeId, record.destinationNodeId), JSON.stringify(record), 'PX', ttl);
  }
}

/** In process memory, for unit tests; `now` lets a test move time past the TTL. */
export class InMemoryPostCopyTrials extends PostCopyTrials {
  private readonly records = new Map<string, { json: string; expires: number }>();

  constructor(private readonly now: () => number = Date.now) {
    super();
  }

  get(source: string, destination: string): Promise<PostCopyTrialRecord | undefined> {
    const hit = this.records.get(`${source}->${destination}`);
    if (!hit || hit.expires <= this.now()) return Promise.resolve(undefined);
    return Promise.resolve(JSON.parse(hit.json) as PostCopyTrialRecord);
  }

  put(record: PostCopyTrialRecord, ttlMs: number): Promise<void> {
    const key = `${record.sourceNodeId}->${record.destinationNodeId}`;
    this.records.set(key, { json: JSON.stringify(record), expires: this.now() + ttlMs });
    return Promise.resolve();
  }
}
