import { ConflictError, type MigrationRecord, type NodeRecord, type WorkloadRecord } from '@spotlift/domain';
import { MAX_PAGE, type Page, type PageQuery, type RecordIndex, decodeCursor, pageOf } from './record-pages.js';

/**
 * A save that lost a race: the record changed since this copy was read (another writer saved in between).
 * Nothing was written; re-read and decide again (see `Repository.update`).
 */
export class StaleRecordError extends ConflictError {
  constructor(kind: string, id: string, expected: number, found: number) {
    super(
      `${kind} '${id}' changed while this request worked on it (version ${found}, this copy was ${expected}); try again`,
      { id, expected, found },
    );
    this.name = 'StaleRecordError';
  }
}

/** The version a versioned repository stamps on every record it returns and saves. */
export interface Versioned {
  version?: number;
}

/**
 * Records keyed by id. `save` replaces the whole record; callers read, change and save. In a versioned
 * repository (the optimistic-concurrency option of the implementations) every record read carries
 * `version`; saving it succeeds only while the stored record still has that version (else StaleRecordError)
 * and bumps it. A record without `version` (built fresh by its creator) is written unconditionally; one with
 * `version: 0` only if no record has its id (create-if-absent, see `createIfAbsent`).
 */
export abstract class Repository<T extends { id: string }> {
  abstract get(id: string): Promise<T | undefined>;
  abstract list(): Promise<T[]>;
  abstract save(record: T): Promise<void>;
  abstract delete(id: string): Promise<void>;
  /**
   * `save`, with the stored version becoming at least `atLeast` (versioned repositories): a copy written back
   * from a worker's journal keeps its place in the record's order of versions instead of restarting the count
   * (JournaledRepository with a RecordOrder). Optional: a repository without it gets plain saves.
   */
  saveAtLeast?(record: T, atLeast: number): Promise<void>;

  /**
   * One page of records (see record-pages.ts). Repositories on Redis answer from their indexes; this default
   * reads them all and is for the in-memory ones; wrappers pass it on to the repository they wrap.
   */
  async page(query: PageQuery, index: RecordIndex<T>): Promise<Page<T>> {
    return pageOf(await this.list(), query, index);
  }

  /**
   * Read, change, save, again from a fresh read when another writer came first. `change` gets the stored
   * record and edits it in place; returning false saves nothing. Returns the saved record (undefined when
   * there is no such record, or `change` declined).
   */
  update(id: string, change: (current: T) => boolean | void, attempts?: number): Promise<T | undefined> {
    return updateLoop(this, id, change, attempts);
  }
}

/**
 * Stores `record` unless one with its id exists (versioned repositories: the same compare-and-set as every
 * save, expecting version 0). True when this call stored it; the record then carries its version.
 */
export async function createIfAbsent<T extends { id: string }>(
  repo: Pick<Repository<T>, 'save'>,
  record: T,
): Promise<boolean> {
  const v = record as T & Versioned;
  v.version = 0;
  try {
    await repo.save(record);
    return true;
  } catch (error) {
    delete v.version;
    if (error instanceof StaleRecordError) return false;
    throw error;
  }
}

/** Repository.update, shared by the implementations (they `implements` the abstract class). */
export async function updateLoop<T extends { id: string }>(
  repo: Pick<Repository<T>, 'get' | 'save'>,
  id: string,
  change: (current: T) => boolean | void,
  attempts = 10,
): Promise<T | undefined> {
  for (let i = 1; ; i++) {
    const current = await repo.get(id);
    if (!current || change(current) === false) return undefined;
    try {
      await repo.save(current);
      return current;
    } catch (error) {
      if (!(error instanceof StaleRecordError) || i >= attempts) throw error;
    }
  }
}

export abstract class NodeRepository extends Repository<NodeRecord> {}
export abstract class WorkloadRepository extends Repository<WorkloadRecord> {}
export abstract class MigrationRepository extends Repository<MigrationRecord> {}

/**
 * Every record with all of `where`'s terms (`workload=w1`), page by page from the indexes: for checks that
 * need a workload's or a node's records, never every record of the kind.
 */
export async function allWhere<T extends { id: string }>(
  repo: Pick<Repository<T>, 'page'>,
  index: RecordIndex<T>,
  where: string[],
): Promise<T[]> {
  const found: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await repo.page(
      { limit: MAX_PAGE, order: 'asc', where, ...(cursor ? { cursor: decodeCursor(cursor) } : {}) },
      index,
    );
    found.push(...page.items);
    cursor = page.next;
  } while (cursor);
  return found;
}
