import type { Redis } from 'ioredis';
import { type Page, type PageQuery, type RecordIndex, before, encodeCursor, pageOf } from './record-pages.js';
import { RECORD_INDEXES } from './record-indexes.js';
import { type Repository, StaleRecordError, type Versioned, updateLoop } from './repositories.port.js';

// KEYS: record, version counter, index, terms of the record. ARGV: json, expected version (-1: unconditional,
// 0: only if absent; -2: unversioned, no counter), score, id, least new version (0: none; see
// Repository.saveAtLeast), term key prefix, terms... Returns the new version, or -1 - found when the expected
// version is not the stored one.
// (Version 0 also checks the record key: a record written before its kind was versioned has no counter.)
// The term sets follow the record in the same step as the write, so an index never names a state the record
// left, whatever writers race (a save that loses the compare-and-set changes nothing).
const SAVE = `
local found = tonumber(redis.call('GET', KEYS[2]) or '0')
local expected = tonumber(ARGV[2])
if expected >= 0 and expected ~= found then return -1 - found end
if expected == 0 and redis.call('EXISTS', KEYS[1]) == 1 then return -1 - found end
local next = math.max(found + 1, tonumber(ARGV[5] or '0'))
redis.call('SET', KEYS[1], ARGV[1])
if expected ~= -2 then redis.call('SET', KEYS[2], next) end
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[4])
local score = redis.call('ZSCORE', KEYS[3], ARGV[4])
local wanted = {}
for i = 7, #ARGV do wanted[ARGV[i]] = true end
for _, t in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if not wanted[t] then redis.call('ZREM', ARGV[6] .. t, ARGV[4]); redis.call('SREM', KEYS[4], t) end
end
for t in pairs(wanted) do
  redis.call('ZADD', ARGV[6] .. t, score, ARGV[4])
  redis.call('SADD', KEYS[4], t)
end
return next`;

// KEYS: record, version counter, index, terms of the record. ARGV: id, term key prefix.
const DELETE = `
for _, t in ipairs(redis.call('SMEMBERS', KEYS[4])) do redis.call('ZREM', ARGV[2] .. t, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`;

/** Index entries read per round trip while a page is filled (filters that match few make several rounds). */
const BATCH = 500;
/** Index entries one page reads at most: a filter that matches little answers a short page and a cursor. */
const SCAN_LIMIT = 20_000;

export interface RecordOptions {
  /** Optimistic concurrency: saves compare-and-set the record's version (see Repository). */
  versioned?: boolean;
}

/**
 * A Repository on Redis: one string key per record (`<prefix>:<kind>:<id>`, JSON) and a sorted set of ids by
 * creation time (`<prefix>:<kind>s`), so lists come back in creation order and a record is one GET away.
 * Kinds with an index (record-indexes.ts) also keep one sorted set per term (`<prefix>:<kind>s:<field>=<value>`,
 * same scores) and, per record, the set of its terms (`<prefix>:<kind>-terms:<id>`): a filtered page reads
 * the term's set, never every record. Versioned kinds also keep `<prefix>:<kind>-version:<id>`, a counter the
 * save script compares and bumps in the same step as the write (kept apart from the JSON so Redis never has
 * to re-encode a record).
 */
export class RedisRecords<T extends { id: string }> implements Repository<T> {
  private readonly index: RecordIndex<T> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly kind: string,
    private readonly options: RecordOptions = {},
  ) {
    this.index = RECORD_INDEXES[kind];
  }

  private key(id: string): string {
    return `${this.prefix}:${this.kind}:${id}`;
  }

  private versionKey(id: string): string {
    return `${this.prefix}:${this.kind}-version:${id}`;
  }

  private termsKey(id: string): string {
    return `${this.prefix}:${this.kind}-terms:${id}`;
  }

  private get all(): string {
    return `${this.prefix}:${this.kind}s`;
  }

  /** The sorted set of one term (`state=running`): the prefix plus the term. */
  private get termPrefix(): string {
    return `${this.prefix}:${this.kind}s:`;
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

  /** Every record, oldest first. Callers that answer a request use `page`; this is for bounded kinds and tools. */
  async list(): Promise<T[]> {
    return this.load(await this.redis.zrange(this.all, 0, -1));
  }

  private async load(ids: string[]): Promise<T[]> {
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.key(id)));
    const versions = this.options.versioned ? await this.redis.mget(ids.map((id) => this.versionKey(id))) : [];
    return raws.flatMap((r, i) => (r === null ? [] : [this.parse(r, versions[i])]));
  }

  save(record: T): Promise<void> {
    return this.saveAtLeast(record, 0);
  }

  async saveAtLeast(record: T, atLeast: number): Promise<void> {
    const v = record as T & Versioned;
    const expected = this.options.versioned ? (v.version ?? -1) : -2;
    const { version: _drop, ...body } = v;
    const terms = this.index?.terms(record) ?? [];
    const score = this.index ? this.index.created(record) || Date.now() : Date.now();
    const r = Number(
      await this.redis.eval(
        SAVE,
        4,
        this.key(record.id),
        this.versionKey(record.id),
        this.all,
        this.termsKey(record.id),
        JSON.stringify(body),
        String(expected),
        String(score),
        record.id,
        String(atLeast),
        this.termPrefix,
        ...terms,
      ),
    );
    if (r < 0) throw new StaleRecordError(this.kind, record.id, expected, -1 - r);
    if (this.options.versioned) v.version = r;
  }

  async delete(id: string): Promise<void> {
    await this.redis.eval(
      DELETE,
      4,
      this.key(id),
      this.versionKey(id),
      this.all,
      this.termsKey(id),
      id,
      this.termPrefix,
    );
  }

  update(id: string, change: (current: T) => boolean | void, attempts?: number): Promise<T | undefined> {
    return updateLoop(this, id, change, attempts);
  }

  /**
   * One page from the sorted sets: the smallest of the `where` terms' sets (else every record's) walked from the
   * cursor in `order` within since/until; the other terms are checked against their sets (ZMSCORE) before any
   * record is read. Reads at most SCAN_LIMIT entries: a page may come back short with a `next` to go on from.
   */
  async page(query: PageQuery, fallback: RecordIndex<T>): Promise<Page<T>> {
    if (!this.index) return pageOf(await this.list(), query, fallback);
    const terms = [...new Set(query.where ?? [])].map((t) => this.termPrefix + t);
    let key = this.all;
    let rest: string[] = [];
    if (terms.length) {
      const sizes = await Promise.all(terms.map((t) => this.redis.zcard(t)));
      const smallest = sizes.indexOf(Math.min(...sizes));
      key = terms[smallest]!;
      rest = terms.filter((_, i) => i !== smallest);
    }
    const desc = query.order === 'desc';
    let low = query.since ?? -Infinity;
    let high = query.until ?? Infinity;
    if (query.cursor) {
      if (desc) high = Math.min(high, query.cursor.score);
      else low = Math.max(low, query.cursor.score);
    }
    if (low > high) return { items: [] };
    const bound = (n: number) => (n === Infinity ? '+inf' : n === -Infinity ? '-inf' : String(n));
    const items: T[] = [];
    let last: { score: number; id: string } | undefined;
    for (let offset = 0; offset < SCAN_LIMIT; offset += BATCH) {
      const flat = desc
        ? await this.redis.zrevrangebyscore(key, bound(high), bound(low), 'WITHSCORES', 'LIMIT', offset, BATCH)
        : await this.redis.zrangebyscore(key, bound(low), bound(high), 'WITHSCORES', 'LIMIT', offset, BATCH);
      let entries: { id: string; score: number }[] = [];
      for (let i = 0; i < flat.length; i += 2) entries.push({ id: flat[i]!, score: Number(flat[i + 1]) });
      if (query.cursor) entries = entries.filter((e) => before(query.cursor!, e, query.order));
      const scanned = entries.at(-1);
      for (const term of rest) {
        if (entries.length === 0) break;
        const scores = await this.redis.zmscore(term, ...entries.map((e) => e.id));
        entries = entries.filter((_, i) => scores[i] !== null);
      }
      const records = new Map((await this.load(entries.map((e) => e.id))).map((r) => [r.id, r]));
      for (const e of entries) {
        const r = records.get(e.id);
        if (!r) continue; // deleted since it was listed
        items.push(r);
        if (items.length === query.limit) return { items, next: encodeCursor(e) };
      }
      last = scanned ?? last;
      if (flat.length < 2 * BATCH) return { items };
    }
    return last ? { items, next: encodeCursor(last) } : { items };
  }

  /**
   * Deletes records of one term (`state=completed`) created before `beforeMs`, at most `max` of them, oldest
   * first: retention. `stillDone` is asked about each record as read, so one that changed since it was indexed
   * stays. Returns the ids deleted.
   */
  async trim(termOf: string, beforeMs: number, max: number, stillDone: (r: T) => boolean): Promise<string[]> {
    const ids = await this.redis.zrangebyscore(this.termPrefix + termOf, '-inf', `(${beforeMs}`, 'LIMIT', 0, max);
    const gone: string[] = [];
    for (const r of await this.load(ids)) {
      if (!stillDone(r)) continue;
      await this.delete(r.id);
      gone.push(r.id);
    }
    return gone;
  }

  /**
   * Rebuilds the term sets of every record (records written before their kind had an index, or by an older
   * version), BATCH at a time; a save racing it writes the same terms. Returns how many records it went over.
   */
  async reindex(): Promise<number> {
    if (!this.index) return 0;
    let count = 0;
    for (let start = 0; ; start += BATCH) {
      const flat = await this.redis.zrange(this.all, start, start + BATCH - 1, 'WITHSCORES');
      if (flat.length === 0) return count;
      const scores = new Map<string, number>();
      for (let i = 0; i < flat.length; i += 2) scores.set(flat[i]!, Number(flat[i + 1]));
      const records = await this.load([...scores.keys()]);
      const pipe = this.redis.pipeline();
      for (const r of records) {
        // The score the record already has in the kind's set: its place in every list stays the same.
        const score = scores.get(r.id)!;
        for (const t of this.index.terms(r)) {
          pipe.zadd(this.termPrefix + t, score, r.id);
          pipe.sadd(this.termsKey(r.id), t);
        }
      }
      await pipe.exec();
      count += records.length;
    }
  }
}
