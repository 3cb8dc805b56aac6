import type { Redis } from 'ioredis';
import type { Repository } from './repositories.port.js';

/**
 * A Repository on Redis: one string key per record (`<prefix>:<kind>:<id>`, JSON) and a sorted set of ids by
 * creation order, so lists come back oldest first and a record is one GET away.
 */
export class RedisRecords<T extends { id: string }> implements Repository<T> {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly kind: string,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:${this.kind}:${id}`;
  }

  private get index(): string {
    return `${this.prefix}:${this.kind}s`;
  }

  async get(id: string): Promise<T | undefined> {
    const raw = await this.redis.get(this.key(id));
    return raw ? (JSON.parse(raw) as T) : undefined;
  }

  async list(): Promise<T[]> {
    const ids = await this.redis.zrange(this.index, 0, -1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.key(id)));
    return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as T);
  }

  async save(record: T): Promise<void> {
    await this.redis
      .multi()
      .set(this.key(record.id), JSON.stringify(record))
      .zadd(this.index, 'NX', Date.now(), record.id)
      .exec();
  }

  async delete(id: string): Promise<void> {
    await this.redis.multi().del(this.key(id)).zrem(this.index, id).exec();
  }
}
