import type { Redis } from 'ioredis';
import { type Repository, StaleRecordError, type Versioned, updateLoop } from './repositories.port.js';

// KEYS: record, version counter, index. ARGV: json, expected version (-1: unconditional, 0: only if absent),
// score, id, least new version (0: none; see Repository.saveAtLeast). Returns the new version, or -1 - found
// when the expected version is not the stored one.
// (Version 0 also checks the record key: a record written before its kind was versioned has no counter.)
const SAVE = `
local found = tonumber(redis.call('GET', KEYS[2]) or '0')
local expected = tonumber(ARGV[2])
if expected >= 0 and expected ~= found then return -1 - found end
if expected == 0 and redis.call('EXISTS', KEYS[1]) == 1 then return -1 - found end
local next = math.max(found + 1, tonumber(ARGV[5] or '0'))
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], next)
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[4])
return next`;

export interface RecordOptions {
  /** Optimistic concurrency: saves compare-and-set the record's version (see Repository). */
  versioned?: boolean;
}

/**
 * A Repository on Redis: one string key per record (`<prefix>:<kind>:<id>`, JSON) and a sorted set of ids by
 * creation order, so lists come back oldest first and a record is one GET away. Versioned kinds also keep
 * `<prefix>:<kind>-version:<id>`, a counter the save script compares and bumps in the same step as the write
 * (kept apart from the JSON so Redis never has to re-encode a record).
 */
export class RedisRecords<T extends { id: string }> implements Repository<T> {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly kind: string,
    private readonly options: RecordOptions = {},
  ) {}

  private key(id: string): string {
    return `${this.prefix}:${this.kind}:${id}`;
  }

  private versionKey(id: string): string {
    return `${this.prefix}:${this.kind}-version:${id}`;
  }

  private get index(): string {
    return `${this.prefix}:${this.kind}s`;
  }

  private parse(raw: string, version: string | null | undefined): T {
    const record = JSON.parse(raw) as T & Versioned;
    // A record without a counter was written before its kind was versioned: its next save is unconditional,
    // as every save was then, and starts the count (version 0 would ask for create-if-absent and be refused).
    if (this.options.versioned && version !== null && version !== undefined) record.version = Number(version);
    return record;
  }

  async get(id: string): Promise<T | undefined> {
    if (!this.options.versioned) {
      const raw = await this.redis.get(this.key(id));
      return raw ? this.parse(raw, undefined) : undefined;
    }
    const [raw, version] = await this.redis.mget(this.key(id), this.versionKey(id));
    return raw ? this.parse(raw, version) : undefined;
  }

  async list(): Promise<T[]> {
    const ids = await this.redis.zrange(this.index, 0, -1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.key(id)));
    const versions = this.options.versioned ? await this.redis.mget(ids.map((id) => this.versionKey(id))) : [];
    return raws.flatMap((r, i) => (r === null ? [] : [this.parse(r, versions[i])]));
  }

  save(record: T): Promise<void> {
    return this.saveAtLeast(record, 0);
  }

  async saveAtLeast(record: T, atLeast: number): Promise<void> {
    if (!this.options.versioned) {
      await this.redis
        .multi()
        .set(this.key(record.id), JSON.stringify(record))
        .zadd(this.index, 'NX', Date.now(), record.id)
        .exec();
      return;
    }
    const v = record as T & Versioned;
    const expected = v.version ?? -1;
    const { version: _drop, ...body } = v;
    const r = Number(
      await this.redis.eval(
        SAVE,
        3,
        this.key(record.id),
        this.versionKey(record.id),
        this.index,
        JSON.stringify(body),
        String(expected),
        String(Date.now()),
        record.id,
        String(atLeast),
      ),
    );
    if (r < 0) throw new StaleRecordError(this.kind, record.id, expected, -1 - r);
    v.version = r;
  }

  async delete(id: string): Promise<void> {
    await this.redis.multi().del(this.key(id), this.versionKey(id)).zrem(this.index, id).exec();
  }

  update(id: string, change: (current: T) => boolean | void, attempts?: number): Promise<T | undefined> {
    return updateLoop(this, id, change, attempts);
  }
}
