import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';

/** Records keyed by id. `save` replaces the whole record; callers read, change and save. */
export abstract class Repository<T extends { id: string }> {
  abstract get(id: string): Promise<T | undefined>;
  abstract list(): Promise<T[]>;
  abstract save(record: T): Promise<void>;
  abstract delete(id: string): Promise<void>;
}

export abstract class NodeRepository extends Repository<NodeRecord> {}
export abstract class WorkloadRepository extends Repository<WorkloadRecord> {}
export abstract class MigrationRepository extends Repository<MigrationRecord> {}
