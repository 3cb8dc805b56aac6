import type { Repository } from './repositories.port.js';

/** A Repository in process memory, for unit tests and single-process tools. Stores copies, as Redis would. */
export class InMemoryRecords<T extends { id: string }> implements Repository<T> {
  private readonly records = new Map<string, string>();

  get(id: string): Promise<T | undefined> {
    const raw = this.records.get(id);
    return Promise.resolve(raw ? (JSON.parse(raw) as T) : undefined);
  }

  list(): Promise<T[]> {
    return Promise.resolve([...this.records.values()].map((r) => JSON.parse(r) as T));
  }

  save(record: T): Promise<void> {
    this.records.set(record.id, JSON.stringify(record));
    return Promise.resolve();
  }

  delete(id: string): Promise<void> {
    this.records.delete(id);
    return Promise.resolve();
  }
}
