import type { Redis } from 'ioredis';
import type { EvacuationRecord } from '@spotlift/domain';
import { InMemoryRecords } from './in-memory-records.js';
import { RedisRecords } from './redis-repository.js';
import { Repository } from './repositories.port.js';

/**
 * Evacuations, with one extra operation: create-if-absent. Several orchestrator replicas can see the same
 * notice; the one whose create wins runs the evacuation, the others read it.
 */
export abstract class EvacuationRepository extends Repository<EvacuationRecord> {
  /** Stores the record unless one with its id exists; true when this call stored it. */
  abstract createIfAbsent(record: EvacuationRecord): Promise<boolean>;
}

/** On Redis: the same keys as {@link RedisRecords} (`<prefix>:evacuation:<id>`, index `<prefix>:evacuations`). */
export class RedisEvacuationRecords extends EvacuationRepository {
  private readonly records: RedisRecords<EvacuationRecord>;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
    this.records = new RedisRecords(redis, prefix, 'evacuation');
  }

  get(id: string): Promise<EvacuationRecord | undefined> {
    return this.records.get(id);
  }

  list(): Promise<EvacuationRecord[]> {
    return this.records.list();
  }

  save(record: EvacuationRecord): Promise<void> {
    return this.records.save(record);
  }

  delete(id: string): Promise<void> {
    return this.records.delete(id);
  }

  async createIfAbsent(record: EvacuationRecord): Promise<boolean> {
    // SET NX is the atomic claim; the index entry follows (ZADD NX is idempotent if two get here).
    const ok = await this.redis.set(`${this.prefix}:evacuation:${record.id}`, JSON.stringify(record), 'NX');
    if (ok !== 'OK') return false;
    await this.redis.zadd(`${this.prefix}:evacuations`, 'NX', Date.now(), record.id);
    return true;
  }
}

/** In process memory, for unit tests. */
export class InMemoryEvacuationRecords extends EvacuationRepository {
  private readonly records = new InMemoryRecords<EvacuationRecord>();

  get(id: string): Promise<EvacuationRecord | undefined> {
    return this.records.get(id);
  }

  list(): Promise<EvacuationRecord[]> {
    return this.records.list();
  }

  save(record: EvacuationRecord): Promise<void> {
    return this.records.save(record);
  }

  delete(id: string): Promise<void> {
    return this.records.delete(id);
  }

  async createIfAbsent(record: EvacuationRecord): Promise<boolean> {
    if (await this.records.get(record.id)) return false;
    await this.records.save(record);
    return true;
  }
}
