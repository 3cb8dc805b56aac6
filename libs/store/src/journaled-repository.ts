import { createHash } from 'node:crypto';
import type { JournalEntry, LocalJournal, RecordStamp } from './local-journal.js';
import type { Page, PageQuery, RecordIndex } from './record-pages.js';
import { Repository, StaleRecordError, type Versioned } from './repositories.port.js';

type Stamped = { id: string; updatedAt?: string };

/** Copies of a record this worker wrote that its journal remembers (enough for a Redis snapshot a few saves old). */
const WRITTEN_KEPT = 8;

/** What a flush did: copies written back, copies dropped because Redis held a newer one, and why it stopped. */
export interface FlushReport {
  written: string[];
  skipped: string[];
  error?: string;
}

/** The exact identity of one copy of a record: its version and a digest of the rest. */
export function stampOf(record: object): RecordStamp {
  const { version, ...body } = record as Versioned;
  const digest = createHash('sha256').update(JSON.stringify(body)).digest('base64url').slice(0, 22);
  return version !== undefined ? { version, digest } : { digest };
}

const same = (a: RecordStamp, b: RecordStamp): boolean => a.version === b.version && a.digest === b.digest;

/**
 * How copies of one record made on different hosts are ordered (migrations and workloads, whose copies
 * several worker hosts journal). Versions order them: a copy written back keeps its version (saveAtLeast)
 * instead of restarting the count when Redis came back empty, so every later copy, on any host, carries a
 * higher one; clocks and local stamps cannot order copies across hosts. A final copy (a migration's end state)
 * outranks every unfinished one whatever the versions: the host that drove the job to its end knows more than
 * one that saw it under way.
 */
export interface RecordOrder<T> {
  isFinal(record: T): boolean;
  /**
   * Marks an unfinished copy written back into a Redis that had lost the record: it may be a stale copy of a
   * host that did not drive the job to its end (the driver's copy lost with Redis, or not written back yet), so
   * whatever runs it next must decide from the nodes, not from this copy.
   */
  restored?(record: T, at: string): void;
}

const versionOf = (record: object): number => (record as Versioned).version ?? 0;

/**
 * A Repository (the Redis one) with a local journal in front, for the worker's engine: a migration in
 * flight must reach an end state even when Redis goes away under it, so
 * - `save` never fails because Redis did: the copy goes to the journal, marked pending, and the caller
 *   carries on; every successful save is journaled too (not pending), which keeps the latest copy of each
 *   record this worker wrote for the day Redis comes back without it;
 * - `get` answers from the journal when Redis cannot, and prefers a pending journal copy to an older Redis
 *   one (Redis restarted from a snapshot taken before the worker's last writes);
 * - `flush` writes pending copies back once Redis answers, unless someone updated the record in Redis after
 *   this worker saved it (then Redis's copy stands); `restoreMissing` re-creates every journaled record Redis
 *   lost (called when Redis came back empty).
 * "Redis's copy is not newer than this worker's" is decided exactly, with no clock: Redis holds a copy this
 * worker wrote (the journal keeps the stamps of its last writes, see RecordStamp), or, for a pending copy, the
 * very copy it was made from. Anything else in Redis was written by someone else since, and stands.
 */
export class JournaledRepository<T extends Stamped> extends Repository<T> {
  /** Per id, the stamp of Redis's copy this process last read or wrote: what a pending copy was made from. */
  private readonly seen = new Map<string, RecordStamp>();

  constructor(
    private readonly inner: Repository<T>,
    readonly journal: LocalJournal<T>,
    private readonly now: () => Date = () => new Date(),
    /** Told once per record save that Redis refused (the caller logs the outage, once). */
    private readonly onBuffered: (id: string, error: Error) => void = () => undefined,
    /** Which save errors mean "Redis is away" (journaled); any other is the caller's to see. */
    private readonly isOutage: (error: Error) => boolean = () => true,
    /** Copies of this kind from several hosts are ordered (see RecordOrder); absent: Redis's copy stands. */
    private readonly order?: RecordOrder<T>,
  ) {
    super();
  }

  async get(id: string): Promise<T | undefined> {
    const entry = await this.journal.get(id);
    let stored: T | undefined;
    try {
      stored = await this.inner.get(id);
    } catch (error) {
      if (entry) return entry.record;
      throw error;
    }
    if (!stored) return entry?.record;
    this.seen.set(id, stampOf(stored));
    return entry && this.journalWins(entry, stored) ? entry.record : stored;
  }

  /**
   * Whether the journal's copy stands over Redis's. Unordered kinds: only a pending copy, and only while Redis
   * holds nothing someone else wrote since. Ordered kinds (RecordOrder): a final copy over an unfinished one;
   * else the higher version, a pending copy counting one above the version it was made from (it is that
   * version's next save, so it also goes over the very copy it was made from). Equal versions from two writers:
   * Redis's copy stands (it was there first).
   */
  private journalWins(entry: JournalEntry<T>, stored: T): boolean {
    if (!this.order) return entry.pending && !redisHasNewer(stored, entry);
    const mineFinal = this.order.isFinal(entry.record);
    if (mineFinal !== this.order.isFinal(stored)) return mineFinal;
    return versionOf(entry.record) + (entry.pending ? 1 : 0) > versionOf(stored);
  }

  async list(): Promise<T[]> {
    try {
      return await this.inner.list();
    } catch (error) {
      const entries = await this.journal.list();
      if (entries.length === 0) throw error;
      return entries.map((e) => e.record);
    }
  }

  /** Pages come from Redis only (the journal answers for single records while Redis is away). */
  override page(query: PageQuery, index: RecordIndex<T>): Promise<Page<T>> {
    return this.inner.page(query, index);
  }

  async save(record: T): Promise<void> {
    const savedAt = this.now().toISOString();
    const prior = await this.journal.get(record.id);
    const written = prior?.written ?? [];
    try {
      await this.saveToRedis(record, written);
    } catch (error) {
      // A stale version is another writer's newer record, never an outage to buffer.
      if (error instanceof StaleRecordError || !this.isOutage(error as Error)) throw error;
      const basis = this.basisOf(record, prior);
      await this.journal.put(record, true, savedAt, { written, ...(basis ? { basis } : {}) });
      this.onBuffered(record.id, error as Error);
      return;
    }
    const stamp = stampOf(record);
    this.seen.set(record.id, stamp);
    // Best effort: Redis has this copy; the journal's is for the day Redis loses it.
    await this.journal
      .put(record, false, savedAt, { written: [...written, stamp].slice(-WRITTEN_KEPT) })
      .catch(() => undefined);
  }

  async delete(id: string): Promise<void> {
    await this.inner.delete(id);
    await this.journal.remove(id);
    this.seen.delete(id);
  }

  /** Journals a copy that Redis has just taken through another handle on the same records (JournalCopies). */
  async remember(record: T): Promise<void> {
    const prior = await this.journal.get(record.id);
    const stamp = stampOf(record);
    this.seen.set(record.id, stamp);
    await this.journal.put(record, false, this.now().toISOString(), {
      written: [...(prior?.written ?? []), stamp].slice(-WRITTEN_KEPT),
    });
  }

  /** The copy of Redis's a copy saved now was made from: the one read or written last at its version. */
  private basisOf(record: T, prior: JournalEntry<T> | undefined): RecordStamp | undefined {
    const version = (record as Versioned).version;
    const seen = this.seen.get(record.id);
    if (seen && seen.version === version) return seen;
    const written = [...(prior?.written ?? [])].reverse().find((w) => w.version === version);
    return written ?? (prior?.pending ? prior.basis : undefined);
  }

  /**
   * A versioned save that meets another version in Redis: when the record is gone (Redis came back empty), or
   * Redis holds a copy this worker wrote at a lower version than this one (an older snapshot, or this worker's
   * own write-back, which restarted the version count), this copy is the latest and is written over it. Any
   * other copy is another writer's (or this worker's newer one, saved through another copy): the
   * StaleRecordError stands.
   */
  private async saveToRedis(record: T, written: RecordStamp[]): Promise<void> {
    try {
      await this.inner.save(record);
    } catch (error) {
      if (!(error instanceof StaleRecordError)) throw error;
      const stored = await this.inner.get(record.id);
      if (stored && !supersedes(record, stored, written) && !this.outranks(record, stored)) throw error;
      // Ordered kinds keep their place in the order: this save is the next version after the one it was made from.
      const next = versionOf(record) + 1;
      const version = (stored as Versioned | undefined)?.version;
      if (version === undefined) delete (record as Versioned).version;
      else (record as Versioned).version = version;
      await this.write(record, next);
    }
  }

  /**
   * Ordered kinds: a save made from a version above Redis's (Redis holds an older copy, e.g. another host's
   * stale one written back after Redis came back empty) is the newer copy, unless Redis's is final and it is not.
   */
  private outranks(record: T, stored: T): boolean {
    if (!this.order) return false;
    if (this.order.isFinal(stored) && !this.order.isFinal(record)) return false;
    return versionOf(record) > versionOf(stored);
  }

  /** A save that keeps the record's place in the order of versions (ordered kinds, where Redis can). */
  private async write(record: T, atLeast: number): Promise<void> {
    if (this.order && this.inner.saveAtLeast) await this.inner.saveAtLeast(record, atLeast);
    else await this.inner.save(record);
  }

  /** Writes pending copies back; stops at the first Redis error (the next reconnect tries again). */
  async flush(): Promise<FlushReport> {
    return this.writeBack((e) => e.pending);
  }

  /**
   * Re-creates every journaled record Redis does not have (pending ones included); for ordered kinds also
   * writes over an older copy Redis holds (another host's, written back before this one's: see RecordOrder).
   */
  async restoreMissing(): Promise<FlushReport> {
    return this.writeBack(() => true, true);
  }

  /**
   * Forgets copies Redis has (not pending) that were saved before `before` and that `done` says are over
   * (finished migrations): the journal stays the size of what may still be needed.
   */
  async prune(before: string, done: (record: T) => boolean): Promise<string[]> {
    const removed: string[] = [];
    for (const entry of await this.journal.list()) {
      if (entry.pending || entry.savedAt >= before || !done(entry.record)) continue;
      await this.journal.remove(entry.record.id);
      removed.push(entry.record.id);
    }
    return removed;
  }

  private async writeBack(which: (e: JournalEntry<T>) => boolean, missingOnly = false): Promise<FlushReport> {
    const report: FlushReport = { written: [], skipped: [] };
    for (const entry of (await this.journal.list()).filter(which)) {
      const id = entry.record.id;
      const written = entry.written ?? [];
      try {
        const stored = await this.inner.get(id);
        if (stored !== undefined && !this.writesOver(entry, stored, missingOnly)) {
          // Redis's copy stands; the journal takes it in place of a copy it beat (a pending one; for ordered
          // kinds any), so a later write-back (Redis emptied again) cannot bring a stale copy back.
          const beaten = this.order
            ? !same(stampOf(stored), stampOf(entry.record))
            : entry.pending && redisHasNewer(stored, entry);
          if (beaten) await this.journal.put(stored, false, entry.savedAt, { written });
          report.skipped.push(id);
          continue;
        }
        // The journal's copy wins here: write it over what Redis holds (its version), or afresh; ordered kinds at
        // (at least) the copy's own version, so that it keeps its place among the copies other hosts hold.
        const atLeast = versionOf(entry.record);
        const version = (stored as Versioned | undefined)?.version;
        if (version === undefined) delete (entry.record as Versioned).version;
        else (entry.record as Versioned).version = version;
        // A copy Redis lost, brought back from what this host last wrote (not a pending copy: that is the latest
        // of a run this host drove through the outage) may be stale: marked (RecordOrder.restored).
        if (stored === undefined && missingOnly && !entry.pending) {
          this.order?.restored?.(entry.record, this.now().toISOString());
        }
        await this.write(entry.record, atLeast);
        const stamp = stampOf(entry.record);
        this.seen.set(id, stamp);
        await this.journal.put(entry.record, false, entry.savedAt, {
          written: [...written, stamp].slice(-WRITTEN_KEPT),
        });
        report.written.push(id);
      } catch (error) {
        report.error = `${id}: ${(error as Error).message}`;
        break;
      }
    }
    return report;
  }

  /**
   * A write-back's journal copy goes over the copy Redis holds: ordered kinds by the order (journalWins);
   * unordered ones only from the flush, for a pending copy Redis holds nothing newer than (restoreMissing leaves
   * a record Redis has alone: without an order nothing says whose copy is newer).
   */
  private writesOver(entry: JournalEntry<T>, stored: T, missingOnly: boolean): boolean {
    if (this.order) return this.journalWins(entry, stored);
    return !missingOnly && this.journalWins(entry, stored);
  }
}

/** Redis holds a copy neither written by this worker nor the one its pending copy was made from. */
function redisHasNewer(stored: object, entry: JournalEntry<unknown>): boolean {
  const s = stampOf(stored);
  return !((entry.written ?? []).some((w) => same(w, s)) || (entry.basis !== undefined && same(entry.basis, s)));
}

/** `record` may be written over `stored`: a copy this worker wrote, at a lower version than `record`'s. */
function supersedes(record: object, stored: object, written: RecordStamp[]): boolean {
  const s = stampOf(stored);
  if (!written.some((w) => same(w, s))) return false;
  const mine = (record as Versioned).version;
  return mine === undefined || s.version === undefined || mine > s.version;
}

/**
 * The API's view of records a worker journals: a delete also forgets this host's journal copy, so a record
 * deleted on purpose is not re-created from the journal when Redis comes back empty.
 */
export class ForgetOnDelete<T extends { id: string }> extends Repository<T> {
  constructor(
    private readonly inner: Repository<T>,
    private readonly journal: LocalJournal<T>,
  ) {
    super();
  }
  get(id: string): Promise<T | undefined> {
    return this.inner.get(id);
  }
  list(): Promise<T[]> {
    return this.inner.list();
  }
  override page(query: PageQuery, index: RecordIndex<T>): Promise<Page<T>> {
    return this.inner.page(query, index);
  }
  save(record: T): Promise<void> {
    return this.inner.save(record);
  }
  async delete(id: string): Promise<void> {
    await this.inner.delete(id);
    await this.journal.remove(id);
  }
}

/**
 * The API's view of records that must come back when Redis does without them (nodes added by `POST /nodes`,
 * evacuations): reads and writes go to Redis as they are (an outage is the caller's 503, as for every other
 * record), and every copy Redis took is also journaled on this host, so the journal's `restoreMissing`
 * re-creates it after Redis came back empty. A delete forgets it.
 */
export class JournalCopies<T extends Stamped> extends Repository<T> {
  constructor(
    private readonly inner: Repository<T>,
    private readonly journaled: JournaledRepository<T>,
  ) {
    super();
  }
  get(id: string): Promise<T | undefined> {
    return this.inner.get(id);
  }
  list(): Promise<T[]> {
    return this.inner.list();
  }
  override page(query: PageQuery, index: RecordIndex<T>): Promise<Page<T>> {
    return this.inner.page(query, index);
  }
  async save(record: T): Promise<void> {
    await this.inner.save(record);
    // Best effort: Redis has it; the copy is for the day Redis loses it.
    await this.journaled.remember(record).catch(() => undefined);
  }
  async delete(id: string): Promise<void> {
    await this.inner.delete(id);
    await this.journaled.journal.remove(id);
  }
}
