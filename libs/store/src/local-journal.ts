import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * One copy of a record in Redis, exactly: its version (absent in unversioned kinds) and a digest of its
 * content. Versions alone cannot say it (the count restarts when Redis comes back empty); clocks cannot either
 * (worker hosts' clocks disagree).
 */
export interface RecordStamp {
  version?: number;
  digest: string;
}

/** One record as this process last saved it, and whether Redis has that copy yet. */
export interface JournalEntry<T> {
  record: T;
  /** True while Redis has not acknowledged this copy (it was unreachable when the record was saved). */
  pending: boolean;
  /** When this process saved it (its own clock): for pruning only, never to compare with Redis's copy. */
  savedAt: string;
  /** The last copies this process wrote to Redis, oldest first: Redis holding one of them holds nothing newer. */
  written?: RecordStamp[];
  /** A pending copy: the copy of Redis's it was made from, when known (Redis still holding it means no one wrote since). */
  basis?: RecordStamp;
}

/** Ids become file names: anything else than plain characters is not journaled (and never read back). */
const SAFE_ID = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Records of one kind on this worker's own disk, one JSON file per id (`<dir>/<id>.json`, written to a
 * temporary file and renamed, so a reader or a crash never sees half a record). It is the worker's memory of
 * what it did while Redis could not take it, and of the workloads it moved, for when Redis comes back
 * without them. Not shared between processes: each worker keeps its own.
 */
export class LocalJournal<T extends { id: string }> {
  private ready: Promise<unknown> | undefined;

  constructor(readonly dir: string) {}

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  async put(
    record: T,
    pending: boolean,
    savedAt: string,
    stamps: Pick<JournalEntry<T>, 'written' | 'basis'> = {},
  ): Promise<void> {
    if (!SAFE_ID.test(record.id)) return;
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.ready;
    const entry: JournalEntry<T> = {
      record,
      pending,
      savedAt,
      ...(stamps.written?.length ? { written: stamps.written } : {}),
      ...(stamps.basis ? { basis: stamps.basis } : {}),
    };
    const tmp = `${this.file(record.id)}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
    await rename(tmp, this.file(record.id));
  }

  async get(id: string): Promise<JournalEntry<T> | undefined> {
    if (!SAFE_ID.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(this.file(id), 'utf8')) as JournalEntry<T>;
    } catch {
      return undefined; // missing, or unreadable: the journal only ever adds to what Redis says
    }
  }

  async list(): Promise<JournalEntry<T>[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const ids = names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
    const entries = await Promise.all(ids.map((id) => this.get(id)));
    return entries.filter((e): e is JournalEntry<T> => e !== undefined);
  }

  async remove(id: string): Promise<void> {
    if (SAFE_ID.test(id)) await rm(this.file(id), { force: true });
  }
}
