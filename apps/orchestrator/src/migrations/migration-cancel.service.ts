import { Injectable } from '@nestjs/common';
import { ConflictError, NotFoundError } from '@spotlift/domain';
import { Clock, isFinished } from '@spotlift/engine';
import { MigrationFlags, MigrationRepository, WorkloadClaims, migrationOwner } from '@spotlift/store';
import { MigrationQueue } from './migration-queue.js';

export interface CancelAnswer {
  id: string;
  /** The migration's state as this answer was written ('cancelled' for a job that never started). */
  state: string;
  /** 'done': cancelled right here. 'requested': the worker stops at its next safe point and rolls back. */
  cancel: 'done' | 'requested';
  message: string;
}

/**
 * POST /migrations/:id/cancel. The cancel is a flag in Redis (MigrationFlags), never a write to the record,
 * which the running engine owns. A queued job is taken off the queue and never starts. A running one stops
 * at its next phase boundary (or its dump is interrupted) and rolls back: source resumed, destination tree
 * killed, images removed, state 'cancelled'. Past the commit point the destination already is the workload,
 * so the cancel is refused; the flag decides that race atomically against the engine's commit claim.
 */
@Injectable()
export class MigrationCancelService {
  constructor(
    private readonly migrations: MigrationRepository,
    private readonly flags: MigrationFlags,
    private readonly queue: MigrationQueue,
    private readonly clock: Clock,
    private readonly claims: WorkloadClaims,
  ) {}

  async cancel(id: string): Promise<CancelAnswer> {
    const m = await this.migrations.get(id);
    if (!m) throw new NotFoundError('migration', id);
    if (isFinished(m))
      throw new ConflictError(`migration '${id}' already ended (${m.state}); there is nothing to cancel`, {
        state: m.state,
      });
    const past = () =>
      new ConflictError(
        `migration '${id}' is past its commit point: the workload already runs on ${m.destinationNodeId}; migrate it back instead`,
        { state: m.state },
      );
    if (m.phases.some((p) => p.name === 'commit')) throw past();
    if ((await this.flags.requestCancel(id)) === 'committed') throw past();

    if (m.state === 'queued' && (await this.queue.removeIfIdle(id)) !== 'held') {
      // No worker holds the job and none will: the migration ends here, before anything ran. Versioned
      // records: if a worker picked the job up after all, its write wins and the flag stops it instead.
      const message = 'cancelled by request before it started; the workload was not touched';
      const done = await this.migrations.update(id, (fresh) => {
        if (fresh.state !== 'queued') return false;
        Object.assign(fresh, { state: 'cancelled', error: message, updatedAt: this.clock.now().toISOString() });
      });
      if (done) {
        if (done.claimKey) await this.claims.release(done.claimKey, migrationOwner(id)).catch(() => undefined);
        return { id, state: done.state, cancel: 'done', message };
      }
    }
    return {
      id,
      state: m.state,
      cancel: 'requested',
      message: 'the migration stops at its next safe point and rolls back; poll GET /migrations/:id for the end state',
    };
  }
}
