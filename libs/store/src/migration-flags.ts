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

/**
 * The worker's view of the flags, for a migration that must reach an end state while Redis is away:
 * - a cancel flag that cannot be read counts as "not cancelled": a cancel is only ever accepted by a SET in
 *   Redis, so while Redis is unreachable no new cancel can be accepted either;
 * - a commit claim that cannot be made is taken locally and written back (SET NX) once Redis answers. The
 *   claim exists to order commit against cancel; with Redis down no cancel can be accepted, so committing
 *   keeps that order. The one cancel this can overtake was accepted just before the outage and not yet seen
 *   at a phase boundary (its read failed); `flushClaims` names such migrations so the record can say so.
 * The API keeps the strict flags: `requestCancel` still needs Redis (a 503 without it).
 */
export class OutageTolerantFlags extends MigrationFlags {
  private readonly offlineClaims = new Set<string>();

  constructor(
    private readonly inner: MigrationFlags,
    private readonly onOutage: (migrationId: string, what: 'cancel read' | 'commit claim', error: Error) => void = () =>
      undefined,
  ) {
    super();
  }

  requestCancel(migrationId: string): Promise<CancelOutcome> {
    return this.inner.requestCancel(migrationId);
  }

  async cancelRequested(migrationId: string): Promise<boolean> {
    try {
      return await this.inner.cancelRequested(migrationId);
    } catch (error) {
      this.onOutage(migrationId, 'cancel read', error as Error);
      return false;
    }
  }

  async claimCommit(migrationId: string): Promise<boolean> {
    if (this.offlineClaims.has(migrationId)) return true;
    try {
      return await this.inner.claimCommit(migrationId);
    } catch (error) {
      this.offlineClaims.add(migrationId);
      this.onOutage(migrationId, 'commit claim', error as Error);
      return true;
    }
  }

  /** Claims taken while Redis was away, not yet written back. */
  pendingClaims(): string[] {
    return [...this.offlineClaims];
  }

  /**
   * Writes the local claims to Redis. Returns the migrations whose flag said "cancel" (a cancel accepted
   * before the outage that the commit overtook); stops at the first Redis error, to be called again.
   */
  async flushClaims(): Promise<string[]> {
    const overtaken: string[] = [];
    for (const id of this.pendingClaims()) {
      if (!(await this.inner.claimCommit(id))) overtaken.push(id);
      this.offlineClaims.delete(id);
    }
    return overtaken;
  }
}
