import type { Redis } from 'ioredis';
import type { AuditEntry } from '@spotlift/domain';

/** How many entries the log keeps; older ones fall off (one Redis list, LTRIM on every write). */
export const AUDIT_LOG_CAPACITY = 10_000;

/** Who changed what, and who was refused: newest first, bounded. */
export abstract class AuditLog {
  abstract append(entry: AuditEntry): Promise<void>;
  /** The newest `limit` entries, newest first. */
  abstract recent(limit: number): Promise<AuditEntry[]>;
}

export class RedisAuditLog extends AuditLog {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly capacity = AUDIT_LOG_CAPACITY,
  ) {
    super();
  }

  private get key(): string {
    return `${this.prefix}:audit`;
  }

  async append(entry: AuditEntry): Promise<void> {
    // One MULTI: the list never holds more than `capacity` entries, whatever the number of replicas writing.
    await this.redis
      .multi()
      .lpush(this.key, JSON.stringify(entry))
      .ltrim(this.key, 0, this.capacity - 1)
      .exec();
  }

  async recent(limit: number): Promise<AuditEntry[]> {
    if (limit <= 0) return [];
    const raws = await this.redis.lrange(this.key, 0, Math.min(limit, this.capacity) - 1);
    return raws.map((r) => JSON.parse(r) as AuditEntry);
  }
}

/** The same in memory, for unit tests. */
export class InMemoryAuditLog extends AuditLog {
  readonly entries: AuditEntry[] = [];

  constructor(private readonly capacity = AUDIT_LOG_CAPACITY) {
    super();
  }

  append(entry: AuditEntry): Promise<void> {
    this.entries.unshift(structuredClone(entry));
    this.entries.length = Math.min(this.entries.length, this.capacity);
    return Promise.resolve();
  }

  recent(limit: number): Promise<AuditEntry[]> {
    return Promise.resolve(this.entries.slice(0, Math.max(0, limit)).map((e) => structuredClone(e)));
  }
}
