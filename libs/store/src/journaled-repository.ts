import type { JournalEntry, LocalJournal } from './local-journal.js';
import { Repository, StaleRecordError, type Versioned } from './repositories.port.js';

type Stamped = { id: string; updatedAt?: string };

/** What a flush did: copies written back, copies dropped because Redis held a newer one, and why it stopped. */
export interface FlushReport {
  written: string[];
  skipped: string[];
  error?: string;
}

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
 * Records are compared by `updatedAt` (ISO, or absent) against the journal's `savedAt`.
 */
export class JournaledRepository<T extends Stamped> extends Repository<T> {
  constructor(
    private readonly inner: Repository<T>,
    readonly journal: LocalJournal<T>,
    private readonly now: () => Date = () => new Date(),
    /** Told once per record save that Redis refused (the caller logs the outage, once). */
    private readonly onBuffered: (id: string, error: Error) => void = () => undefined,
    /** Which save errors mean "Redis is away" (journaled); any other is the caller's to see. */
    private readonly isOutage: (error: Error) => boolean = () => true,
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
    return entry?.pending && !newerThan(stored, entry) ? entry.record : stored;
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

  async save(record: T): Promise<void> {
    const savedAt = this.now().toISOString();
    try {
      await this.saveToRedis(record);
    } catch (error) {
      // A stale version is another writer's newer record, never an outage to buffer.
      if (error instanceof StaleRecordError || !this.isOutage(error as Error)) throw error;
      await this.journal.put(record, true, savedAt);
      this.onBuffered(record.id, error as Error);
      return;
    }
    // Best effort: Redis has this copy; the journal's is for the day Redis loses it.
    await this.journal.put(record, false, savedAt).catch(() => undefined);
  }

  async delete(id: string): Promise<void> {
    await this.inner.delete(id);
    await this.journal.remove(id);
  }

  /**
   * A versioned save that meets another version in Redis: when the record is gone (Redis came back empty) or
   * what Redis holds is not newer than this copy (this worker's own write-back of an earlier save, which
   * restarted the version count), this copy is the latest and is written over it. A newer record is another
   * writer's: the StaleRecordError stands.
   */
  private async saveToRedis(record: T): Promise<void> {
    try {
      await this.inner.save(record);
    } catch (error) {
      if (!(error instanceof StaleRecordError)) throw error;
      const stored = await this.inner.get(record.id);
      if (
        stored &&
        !(stored.updatedAt !== undefined && record.updatedAt !== undefined && stored.updatedAt <= record.updatedAt)
      )
        throw error;
      const version = (stored as Versioned | undefined)?.version;
      if (version === undefined) delete (record as Versioned).version;
      else (record as Versioned).version = version;
      await this.inner.save(record);
    }
  }

  /** Writes pending copies back; stops at the first Redis error (the next reconnect tries again). */
  async flush(): Promise<FlushReport> {
    return this.writeBack((e) => e.pending);
  }

  /** Re-creates every journaled record Redis does not have (pending ones included). */
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
      try {
        const stored = await this.inner.get(id);
        if (stored && (missingOnly || newerThan(stored, entry))) {
          if (entry.pending && newerThan(stored, entry)) await this.journal.put(stored, false, entry.savedAt);
          report.skipped.push(id);
          continue;
        }
        // The journal's copy wins here: write it over what Redis holds (its version), or afresh.
        const version = (stored as Versioned | undefined)?.version;
        if (version === undefined) delete (entry.record as Versioned).version;
        else (entry.record as Versioned).version = version;
        await this.inner.save(entry.record);
        await this.journal.put(entry.record, false, entry.savedAt);
        report.written.push(id);
      } catch (error) {
        report.error = `${id}: ${(error as Error).message}`;
        break;
      }
    }
    return report;
  }
}

/** The stored record was updated after the journal's copy was saved (someone else wrote it since). */
function newerThan(stored: Stamped, entry: JournalEntry<Stamped>): boolean {
  return stored.updatedAt !== undefined && stored.updatedAt > entry.savedAt;
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
  save(record: T): Promise<void> {
    return this.inner.save(record);
  }
  async delete(id: string): Promise<void> {
    await this.inner.delete(id);
    await this.journal.remove(id);
  }
}
