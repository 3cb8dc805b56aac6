import type { Redis } from 'ioredis';
import type { ApiTokenRecord } from '@spotlift/domain';
import { InMemoryRecords } from './in-memory-records.js';
import { RedisRecords } from './redis-repository.js';

const KIND = 'api-token';

/**
 * API tokens (hashed secrets, roles), shared by every replica. Revoked tokens stay listed with `revokedAt`,
 * so the audit log's token ids keep a name.
 */
export abstract class TokenRepository {
  abstract get(id: string): Promise<ApiTokenRecord | undefined>;
  abstract list(): Promise<ApiTokenRecord[]>;
  /** Stores a new token; refuses an id that exists (ids are random, so a clash is a bug, not a race to win). */
  abstract create(record: ApiTokenRecord): Promise<void>;
  /** Marks a token revoked (the first revocation's time stays); undefined when the id is unknown. */
  abstract revoke(id: string, at: string): Promise<ApiTokenRecord | undefined>;
}

export class RedisTokenRepository extends TokenRepository {
  private readonly records: RedisRecords<ApiTokenRecord>;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
    this.records = new RedisRecords<ApiTokenRecord>(redis, prefix, KIND);
  }

  get(id: string): Promise<ApiTokenRecord | undefined> {
    return this.records.get(id);
  }

  list(): Promise<ApiTokenRecord[]> {
    return this.records.list();
  }

  async create(record: ApiTokenRecord): Promise<void> {
    // SET NX on the record's own key (RedisRecords' layout): nothing can overwrite an existing token's secret.
    const set = await this.redis.set(`${this.prefix}:${KIND}:${record.id}`, JSON.stringify(record), 'NX');
    if (set !== 'OK') throw new Error(`token id ${record.id} exists`);
    await this.records.save(record); // adds it to the index
  }

  async revoke(id: string, at: string): Promise<ApiTokenRecord | undefined> {
    const record = await this.records.get(id);
    if (!record) return undefined;
    if (record.revokedAt) return record;
    const revoked = { ...record, revokedAt: at };
    await this.records.save(revoked);
    return revoked;
  }
}

/** The same in memory, for unit tests. */
export class InMemoryTokenRepository extends TokenRepository {
  private readonly records = new InMemoryRecords<ApiTokenRecord>();

  get(id: string): Promise<ApiTokenRecord | undefined> {
    return this.records.get(id);
  }

  list(): Promise<ApiTokenRecord[]> {
    return this.records.list();
  }

  async create(record: ApiTokenRecord): Promise<void> {
    if (await this.records.get(record.id)) throw new Error(`token id ${record.id} exists`);
    await this.records.save(record);
  }

  async revoke(id: string, at: string): Promise<ApiTokenRecord | undefined> {
    const record = await this.records.get(id);
    if (!record || record.revokedAt) return record;
    const revoked = { ...record, revokedAt: at };
    await this.records.save(revoked);
    return revoked;
  }
}
