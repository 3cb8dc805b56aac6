import type { Redis } from 'ioredis';

/** What a cancel request found: it was recorded, or the migration had already passed its commit point. */
export type CancelOutcome = 'requested' | 'committed';

/**
 * One small per-migration flag shared by the API and the workers, kept apart from the migration record:
 * the engine rewrites the whole record on every phase, so a field set there by the API could be lost.
 * The flag decides the race between a cancel and the commit point in one place: whichever of
 * `requestCancel` and `claimCommit` sets it first wins, and the other sees that and gives way.
 */
export abstract class MigrationFlags {
  /** Records a cancel unless the commit point was already claimed. Idempotent. */
  abstract requestCancel(migrationId: string): Promise<CancelOutcome>;
  abstract cancelRequested(migrationId: string): Promise<boolean>;
  /** Claims the commit point. False when a cancel was requested first; true again for an earlier claim. */
  abstract claimCommit(migrationId: string): Promise<boolean>;
}

const CANCEL = 'cancel';
const COMMIT = 'commit';
/** Long enough to outlive any migration and its retries; short enough not to pile up. */
const TTL_SECONDS = 14 * 24 * 3600;

export class RedisMigrationFlags extends MigrationFlags {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    super();
  }

  private key(id: string): string {
    return `${this.prefix}:migration-flag:${id}`;
  }

  /** SET NX then GET: the first writer wins; the value says who. */
  private async setFirst(id: string, value: string): Promise<string> {
    const set = await this.redis.set(this.key(id), value, 'EX', TTL_SECONDS, 'NX');
    if (set === 'OK') return value;
    return (await this.redis.get(this.key(id))) ?? value;
  }

  async requestCancel(migrationId: string): Promise<CancelOutcome> {
    return (await this.setFirst(migrationId, CANCEL)) === COMMIT ? 'committed' : 'requested';
  }

  async cancelRequested(migrationId: string): Promise<boolean> {
    return (await this.redis.get(this.key(migrationId))) === CANCEL;
  }

  async claimCommit(migrationId: string): Promise<boolean> {
    return (await this.setFirst(migrationId, COMMIT)) === COMMIT;
  }
}

/** The same rules in memory, for tests and single-process tools. */
export class InMemoryMigrationFlags extends MigrationFlags {
  private readonly flags = new Map<string, string>();

  private setFirst(id: string, value: string): string {
    if (!this.flags.has(id)) this.flags.set(id, value);
    return this.flags.get(id)!;
  }

  requestCancel(migrationId: string): Promise<CancelOutcome> {
    return Promise.resolve(this.setFirst(migrationId, CANCEL) === COMMIT ? 'committed' : 'requested');
  }

  cancelRequested(migrationId: string): Promise<boolean> {
    return Promise.resolve(this.flags.get(migrationId) === CANCEL);
  }

  claimCommit(migrationId: string): Promise<boolean> {
    return Promise.resolve(this.setFirst(migrationId, COMMIT) === COMMIT);
  }
}
