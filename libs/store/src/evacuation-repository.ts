import type { Redis } from 'ioredis';
import type { EvacuationRecord } from '@spotlift/domain';
import { InMemoryRecords } from './in-memory-records.js';
import { RedisRecords } from './redis-repository.js';
import { Repository, createIfAbsent } from './repositories.port.js';
import type { Page, PageQuery, RecordIndex } from './record-pages.js';

/**
 * Evacuations, versioned like every record several writers touch (the coordinator, a notice joining from
 * another replica, the cordon, an Azure approval: each goes through `update`), with one extra operation:
 * create-if-absent. Several orchestrator replicas can see the same notice; the one whose create wins runs the
 * evacuation, the others read it.
 */
export abstract class EvacuationRepository extends Repository<EvacuationRecord> {
  /** Stores the record unless one with its id exists; true when this call stored it. */
  abstract createIfAbsent(record: EvacuationRecord): Promise<boolean>;
}

/** Over any versioned repository of evacuations (Redis, memory, the journal in front of Redis). */
export class VersionedEvacuationRecords extends EvacuationRepository {
  constructor(private readonly records: Repository<EvacuationRecord>) {
    super();
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

  createIfAbsent(record: EvacuationRecord): Promise<boolean> {
    return createIfAbsent(this.records, record);
  }
}

/** On Redis: the same keys as {@link RedisRecords} (`<prefix>:evacuation:<id>`, index `<prefix>:evacuations`). */
export class RedisEvacuationRecords extends VersionedEvacuationRecords {
  constructor(redis: Redis, prefix: string) {
    super(new RedisRecords(redis, prefix, 'evacuation', { versioned: true }));
  }
}

/** In process memory, for unit tests. */
export class InMemoryEvacuationRecords extends VersionedEvacuationRecords {
  constructor() {
    super(new InMemoryRecords<EvacuationRecord>({ versioned: true }));
  }
}
