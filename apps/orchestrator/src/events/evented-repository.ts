import type { EvacuationRecord, SpotliftEvent } from '@spotlift/domain';
import { EvacuationRepository, type Page, type PageQuery, type RecordIndex, Repository } from '@spotlift/store';
import type { EventPublisher } from './event-publisher.js';

/** Records remembered per repository for diffing (the ones in flight; the oldest are forgotten first). */
const REMEMBERED = 2_000;

type Diff<T> = (prev: T | undefined, next: T) => SpotliftEvent[];

/**
 * Remembers a copy of each record as this process last read or saved it, so the next save can say what
 * changed. The engine keeps one record object and saves it again and again, hence copies, not references.
 */
class LastSeen<T extends { id: string }> {
  private readonly copies = new Map<string, T>();

  get(id: string): T | undefined {
    return this.copies.get(id);
  }

  remember(record: T): void {
    this.copies.delete(record.id);
    this.copies.set(record.id, structuredClone(record));
    if (this.copies.size > REMEMBERED) this.copies.delete(this.copies.keys().next().value!);
  }

  forget(id: string): void {
    this.copies.delete(id);
  }
}

/** Derives events from a save; a diff that throws loses its events, never the save. */
function eventsOf<T>(diff: Diff<T>, prev: T | undefined, next: T, onError: (e: Error) => void): SpotliftEvent[] {
  try {
    return diff(prev, next);
  } catch (error) {
    onError(error as Error);
    return [];
  }
}

/**
 * A repository that publishes what each save changed (see record-events.ts), after the save succeeded: a save
 * that fails publishes nothing, and publishing never fails a save (EventPublisher swallows Redis errors). The
 * engine, the services and the coordinator save through these wrappers without knowing it.
 */
export class EventedRepository<T extends { id: string }> extends Repository<T> {
  private readonly seen = new LastSeen<T>();

  constructor(
    private readonly inner: Repository<T>,
    private readonly publisher: EventPublisher,
    private readonly diff: Diff<T>,
    private readonly onDelete?: (id: string) => SpotliftEvent | undefined,
    private readonly onError: (e: Error) => void = () => undefined,
  ) {
    super();
  }

  async get(id: string): Promise<T | undefined> {
    const record = await this.inner.get(id);
    if (record) this.seen.remember(record);
    return record;
  }

  list(): Promise<T[]> {
    return this.inner.list();
  }

  override page(query: PageQuery, index: RecordIndex<T>): Promise<Page<T>> {
    return this.inner.page(query, index);
  }

  async save(record: T): Promise<void> {
    await this.inner.save(record);
    const events = eventsOf(this.diff, this.seen.get(record.id), record, this.onError);
    this.seen.remember(record);
    this.publisher.publish(events);
  }

  /** A record stored by other means (create-if-absent): later saves diff against it. */
  remember(record: T): void {
    this.seen.remember(record);
  }

  async delete(id: string): Promise<void> {
    await this.inner.delete(id);
    this.seen.forget(id);
    const e = this.onDelete?.(id);
    if (e) this.publisher.publish([e]);
  }
}

/** The same for evacuations, whose repository adds create-if-absent (the replica whose create wins publishes). */
export class EventedEvacuations extends EvacuationRepository {
  private readonly records: EventedRepository<EvacuationRecord>;

  constructor(
    private readonly inner: EvacuationRepository,
    private readonly publisher: EventPublisher,
    private readonly diff: Diff<EvacuationRecord>,
    private readonly onError: (e: Error) => void = () => undefined,
  ) {
    super();
    this.records = new EventedRepository(inner, publisher, diff, undefined, onError);
  }

  get(id: string): Promise<EvacuationRecord | undefined> {
    return this.records.get(id);
  }

  list(): Promise<EvacuationRecord[]> {
    return this.records.list();
  }

  override page(query: PageQuery, index: RecordIndex<EvacuationRecord>): Promise<Page<EvacuationRecord>> {
    return this.records.page(query, index);
  }

  save(record: EvacuationRecord): Promise<void> {
    return this.records.save(record);
  }

  delete(id: string): Promise<void> {
    return this.records.delete(id);
  }

  async createIfAbsent(record: EvacuationRecord): Promise<boolean> {
    const created = await this.inner.createIfAbsent(record);
    if (created) {
      this.publisher.publish(eventsOf(this.diff, undefined, record, this.onError));
      this.records.remember(record);
    }
    return created;
  }
}
