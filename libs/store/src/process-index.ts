import type { Redis } from 'ioredis';
import { processKey, type WorkloadRecord } from '@spotlift/domain';
import { type Repository, WorkloadRepository } from './repositories.port.js';
import type { Page, PageQuery, RecordIndex } from './record-pages.js';

/**
 * One workload record per process (issue 9): an index `processKey -> workload id` that registrations claim
 * atomically (first one wins, across requests and replicas) and that follows every save of a workload record
 * (a migration's commit gives the workload a new process, a checkpoint or an exit leaves it none), so no other
 * code has to remember it.
 */
export abstract class ProcessIndex {
  /**
   * Claims `key` for workload `id` unless another holds it, and answers the holder (`id` when won). The claim
   * is pending (it expires after `pendingMs`) until a save of the record follows it, so a registration that
   * died halfway blocks nobody for long. `replacing`: a holder the caller proved stale, taken over only if it
   * still holds the key.
   */
  abstract claim(key: string, id: string, opts?: { replacing?: string; pendingMs?: number }): Promise<string>;
  /** True while the key's claim waits for its record. */
  abstract pending(key: string): Promise<boolean>;
  /** The record `id` is now under `key` (undefined: under none): its previous key is released. */
  abstract follow(id: string, key: string | undefined): Promise<void>;
  /** Gives up a claim of `key` by `id` (a registration that failed after claiming). */
  abstract unclaim(key: string, id: string): Promise<void>;
}

/** 30 s: a registration is one SSH inspection and two Redis writes away from its save. */
export const PENDING_CLAIM_MS = 30_000;

/** The key a record holds: the process it runs as; none once it runs nowhere. */
export function indexKey(w: WorkloadRecord): string | undefined {
  return w.state === 'gone' || w.state === 'checkpointed' ? undefined : processKey(w);
}

// KEYS[1] process key; ARGV: id, pending ms, replacing ('' for none). Returns the holder.
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return cur end
if (not cur) or (ARGV[3] ~= '' and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return ARGV[1]
end
return cur`;

// KEYS[1] the record's reverse key, KEYS[2] its new process key ('' for none); ARGV[1] id.
// A plain SET clears the pending claim's expiry. A key held by another record is left to it.
const FOLLOW = `
local old = redis.call('GET', KEYS[1])
if old and old ~= KEYS[2] and redis.call('GET', old) == ARGV[1] then redis.call('DEL', old) end
if KEYS[2] == '' then redis.call('DEL', KEYS[1]) return 1 end
local cur = redis.call('GET', KEYS[2])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[1], KEYS[2])
  return 1
end
redis.call('DEL', KEYS[1])
return 0`;

const UNCLAIM = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export class RedisProcessIndex extends ProcessIndex {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
  }

  private key(processKey: string): string {
    return `${this.prefix}:process:${processKey}`;
  }

  private reverse(id: string): string {
    return `${this.prefix}:workload-process:${id}`;
  }

  async claim(key: string, id: string, opts: { replacing?: string; pendingMs?: number } = {}): Promise<string> {
    const pendingMs = opts.pendingMs ?? PENDING_CLAIM_MS;
    return (await this.redis.eval(CLAIM, 1, this.key(key), id, pendingMs, opts.replacing ?? '')) as string;
  }

  async pending(key: string): Promise<boolean> {
    return (await this.redis.pttl(this.key(key))) > 0;
  }

  async follow(id: string, key: string | undefined): Promise<void> {
    await this.redis.eval(FOLLOW, 2, this.reverse(id), key === undefined ? '' : this.key(key), id);
  }

  async unclaim(key: string, id: string): Promise<void> {
    await this.redis.eval(UNCLAIM, 1, this.key(key), id);
  }
}

/** The same rules in memory, for unit tests. A pending claim stays pending until followed (no clock here). */
export class InMemoryProcessIndex extends ProcessIndex {
  private readonly holders = new Map<string, string>();
  private readonly keysOf = new Map<string, string>();
  private readonly pendingKeys = new Set<string>();

  /** Test view: the holder of a key. */
  holder(key: string): string | undefined {
    return this.holders.get(key);
  }

  claim(key: string, id: string, opts: { replacing?: string } = {}): Promise<string> {
    const cur = this.holders.get(key);
    if (cur === id) return Promise.resolve(id);
    if (cur === undefined || (opts.replacing !== undefined && cur === opts.replacing)) {
      this.holders.set(key, id);
      this.pendingKeys.add(key);
      return Promise.resolve(id);
    }
    return Promise.resolve(cur);
  }

  pending(key: string): Promise<boolean> {
    return Promise.resolve(this.pendingKeys.has(key));
  }

  follow(id: string, key: string | undefined): Promise<void> {
    const old = this.keysOf.get(id);
    if (old !== undefined && old !== key && this.holders.get(old) === id) this.holders.delete(old);
    this.keysOf.delete(id);
    const cur = key === undefined ? undefined : this.holders.get(key);
    if (key !== undefined && (cur === undefined || cur === id)) {
      this.holders.set(key, id);
      this.pendingKeys.delete(key);
      this.keysOf.set(id, key);
    }
    return Promise.resolve();
  }

  unclaim(key: string, id: string): Promise<void> {
    if (this.holders.get(key) === id) {
      this.holders.delete(key);
      this.pendingKeys.delete(key);
    }
    return Promise.resolve();
  }
}

/**
 * Workload records whose saves and deletes keep the process index in step: every writer (the API, the
 * engine's commit, checkpoints) goes through it, so the index follows the record without them knowing.
 * The record is written first: a crash in between leaves an index that registrations check against the
 * record anyway (a holder whose record moved on is stale).
 */
export class IndexedWorkloadRepository extends WorkloadRepository {
  constructor(
    private readonly records: Repository<WorkloadRecord>,
    readonly index: ProcessIndex,
  ) {
    super();
  }

  get(id: string): Promise<WorkloadRecord | undefined> {
    return this.records.get(id);
  }

  list(): Promise<WorkloadRecord[]> {
    return this.records.list();
  }

  override page(query: PageQuery, index: RecordIndex<WorkloadRecord>): Promise<Page<WorkloadRecord>> {
    return this.records.page(query, index);
  }

  async save(record: WorkloadRecord): Promise<void> {
    await this.records.save(record);
    await this.index.follow(record.id, indexKey(record));
  }

  override async saveAtLeast(record: WorkloadRecord, atLeast: number): Promise<void> {
    await (this.records.saveAtLeast ? this.records.saveAtLeast(record, atLeast) : this.records.save(record));
    await this.index.follow(record.id, indexKey(record));
  }

  async delete(id: string): Promise<void> {
    await this.records.delete(id);
    await this.index.follow(id, undefined);
  }
}
