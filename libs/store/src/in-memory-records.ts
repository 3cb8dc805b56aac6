import { type Repository, StaleRecordError, type Versioned, updateLoop } from './repositories.port.js';
import { type Page, type PageQuery, type RecordIndex, pageOf } from './record-pages.js';
import type { RecordOptions } from './redis-repository.js';

/**
 * A Repository in process memory, for unit tests and single-process tools. Stores copies, as Redis would,
 * and with `versioned` the same compare-and-set on the version as RedisRecords.
 */
export class InMemoryRecords<T extends { id: string }> implements Repository<T> {
  private readonly records = new Map<string, { raw: string; version: number }>();

  constructor(private readonly options: RecordOptions = {}) {}

  private parse(entry: { raw: string; version: number }): T {
    const record = JSON.parse(entry.raw) as T & Versioned;
    if (this.options.versioned) record.version = entry.version;
    return record;
  }

  get(id: string): Promise<T | undefined> {
    const entry = this.records.get(id);
    return Promise.resolve(entry ? this.parse(entry) : undefined);
  }

  list(): Promise<T[]> {
    return Promise.resolve([...this.records.values()].map((e) => this.parse(e)));
  }

  save(record: T): Promise<void> {
    return this.saveAtLeast(record, 0);
  }

  saveAtLeast(record: T, atLeast: number): Promise<void> {
    const v = record as T & Versioned;
    const found = this.records.get(record.id)?.version ?? 0;
    if (this.options.versioned && v.version !== undefined && v.version !== found) {
      return Promise.reject(new StaleRecordError('record', record.id, v.version, found));
    }
    const { version: _drop, ...body } = v;
    const next = Math.max(found + 1, atLeast);
    this.records.set(record.id, { raw: JSON.stringify(body), version: next });
    if (this.options.versioned) v.version = next;
    return Promise.resolve();
  }

  delete(id: string): Promise<void> {
    this.records.delete(id);
    return Promise.resolve();
  }

  async page(query: PageQuery, index: RecordIndex<T>): Promise<Page<T>> {
    return pageOf(await this.list(), query, index);
  }

  update(id: string, change: (current: T) => boolean | void, attempts?: number): Promise<T | undefined> {
    return updateLoop(this, id, change, attempts);
  }
}
