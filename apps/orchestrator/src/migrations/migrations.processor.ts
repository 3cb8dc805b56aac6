import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger, type OnModuleInit } from '@nestjs/common';
import { UnrecoverableError, type Job } from 'bullmq';
import { DomainError, type MigrationRecord } from '@spotlift/domain';
import { MigrationEngine, MigrationInterrupted, type RunControl } from '@spotlift/engine';
import { MIGRATION_WORKER_OPTIONS, MigrateJobData, QueueName } from '@spotlift/queue';
import { CLAIM_REFRESH_MS, OutageTolerantFlags, WorkloadClaims, migrationOwner } from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { RedisLink, isRedisUnreachableError } from '../core/redis-link.js';
import { MigrationMetrics } from '../metrics/migration-metrics.js';

/** Errors that a retry cannot fix: a bug, or input that will stay wrong. */
const DETERMINISTIC = [TypeError, RangeError, SyntaxError, ReferenceError];

/**
 * The worker role: parses the job, hands it to the engine with its cancel flag and lock, and decides in this
 * one place what an error means for the job:
 * - an end state: completed and cancelled jobs complete; failed and rolled-back ones fail as unrecoverable
 *   (the engine already rolled back; a retry would migrate again without anyone asking);
 * - MigrationInterrupted (no end state: a node that did not answer, a rollback that could not yet prove the
 *   destination holds no copy): retried with backoff, the record stays 'running' and the engine continues
 *   from what the nodes say; when the attempts are spent the engine records why it gave up;
 * - a retryable domain error (an unreachable node before the engine started) or a Redis hiccup: retried;
 * - anything deterministic (bad job data, a missing migration, a bug): unrecoverable.
 *
 * Redis going away does not stop a running migration: the engine's records go to the local journal, an
 * unreadable cancel flag means "not cancelled", the commit claim is kept locally (OutageTolerantFlags), and a
 * job lock that could not be renewed because of the outage is not taken as "another worker has it" (no
 * other worker can take a job while Redis is down). When Redis returns, BullMQ may hand that job out again;
 * in this process the second run waits for the first and returns its outcome, elsewhere the engine finds
 * the record (written back from the journal) finished.
 */
@Processor(QueueName.Migrations, MIGRATION_WORKER_OPTIONS)
export class MigrationsProcessor extends WorkerHost implements OnModuleInit {
  private readonly logger = new Logger('migrations');
  /** Jobs whose lock renewal failed: another worker may own them now, so the engine stops at the next step. */
  private readonly lost = new Set<string>();
  /** Jobs this process runs now, by job id: when each started (epoch ms). */
  private readonly startedAt = new Map<string, number>();
  /** Migrations this process drives now, by migration id: a second job for one joins the first run. */
  private readonly running = new Map<string, Promise<{ state: string }>>();

  constructor(
    private readonly engine: MigrationEngine,
    private readonly config: AppConfig,
    private readonly metrics: MigrationMetrics,
    private readonly flags: OutageTolerantFlags,
    private readonly claims: WorkloadClaims,
    private readonly link?: RedisLink,
  ) {
    super();
  }

  onModuleInit(): void {
    this.worker.concurrency = this.config.workerConcurrency;
    this.worker.on('lockRenewalFailed', (ids: string[]) => ids.forEach((id) => this.lockLost(id)));
  }

  /**
   * A lock lost while (or right after) Redis was away was lost to the outage, not to another worker: the
   * lock key expired unrenewed. This worker keeps driving the migration; it alone knows where it stands.
   */
  private lockLost(jobId: string): void {
    const since = this.startedAt.get(jobId);
    if (since === undefined) return; // not running here (any more): nothing to stop
    if (this.link?.wasDownSince(since)) {
      this.logger.warn({ msg: 'job lock lost to a redis outage; this worker drives the migration to its end', jobId });
      return;
    }
    this.lost.add(jobId);
  }

  async process(job: Job<unknown>): Promise<{ state: string }> {
    const data = MigrateJobData.safeParse(job.data);
    if (!data.success) throw new UnrecoverableError(`malformed job data: ${data.error.message}`);
    const { migrationId } = data.data;
    const current = this.running.get(migrationId);
    if (current) {
      // BullMQ handed out again a job whose lock the outage cost us: never a second attempt beside the first.
      this.logger.warn({ msg: 'migration already running in this worker; waiting for its end', migrationId });
      return current;
    }
    const run = this.runJob(job, migrationId);
    this.running.set(migrationId, run);
    try {
      return await run;
    } finally {
      this.running.delete(migrationId);
    }
  }

  private async runJob(job: Job<unknown>, migrationId: string): Promise<{ state: string }> {
    const jobId = job.id ?? migrationId;
    this.startedAt.set(jobId, Date.now());
    this.logger.log({ msg: 'migration started', migrationId, jobId, attempt: job.attemptsMade + 1 });
    // The claim taken by POST /migrations is refreshed while this job runs (it must not lapse under a live job).
    const claim: { key?: string } = {};
    const refresh = setInterval(() => {
      if (claim.key) void this.claims.claim(claim.key, migrationOwner(migrationId)).catch(() => undefined);
    }, CLAIM_REFRESH_MS);
    try {
      const m = await this.engine.run(migrationId, this.control(migrationId, jobId, claim));
      await this.finished(m);
      if (m.state === 'failed' || m.state === 'rolled_back')
        throw new UnrecoverableError(`${m.state}: ${m.error ?? ''}`);
      return { state: m.state };
    } catch (error) {
      throw await this.classify(job, migrationId, error as Error);
    } finally {
      clearInterval(refresh);
      this.lost.delete(jobId);
      this.startedAt.delete(jobId);
    }
  }

  private control(migrationId: string, jobId: string, claim: { key?: string }): RunControl {
    return {
      cancelRequested: () => this.flags.cancelRequested(migrationId),
      claimCommit: () => this.flags.claimCommit(migrationId),
      lost: () => this.lost.has(jobId),
      claimWorkload: async (key) => {
        claim.key = key;
        const r = await this.claims.claim(key, migrationOwner(migrationId)).catch((error: Error) => {
          // Redis away: POST /migrations took this claim, and no other job of this installation can be
          // created or claim the workload meanwhile; the node-side lock taken next stops any other freezer.
          // The refresh writes the claim again once Redis answers (it may have come back empty).
          if (!isRedisUnreachableError(error)) throw error;
          this.logger.warn({
            msg: 'workload claim not re-checked while Redis is away (the creation claim and the node lock stand)',
            migrationId,
            key,
          });
          return { ok: true as const };
        });
        if (!r.ok) {
          claim.key = undefined;
          return r.holder;
        }
        return undefined;
      },
    };
  }

  /** The one place where an error becomes "retry" or "never again". */
  private async classify(job: Job<unknown>, migrationId: string, error: Error): Promise<Error> {
    if (error instanceof UnrecoverableError) return error;
    // Another worker owns the job now: leave the record alone, whatever this attempt's number.
    if (this.lost.has(job.id ?? migrationId)) return error;
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const retry =
      error instanceof MigrationInterrupted
        ? error.transient
        : error instanceof DomainError
          ? error.retryable
          : !DETERMINISTIC.some((kind) => error instanceof kind);
    this.logger.warn({ msg: 'migration interrupted', migrationId, retry, lastAttempt, error: error.message });
    if (retry && !lastAttempt) return error;
    if (error instanceof MigrationInterrupted || retry) {
      // The record still says 'running': say why it stops here, so nobody waits for it.
      const why = retry
        ? `gave up after ${job.attemptsMade + 1} attempts: ${error.message}`
        : `stopped: ${error.message}`;
      const m = await this.engine.giveUp(migrationId, why).catch(() => undefined);
      if (m) await this.finished(m);
    }
    return new UnrecoverableError(error.message);
  }

  /** An end state: the job lets go of the workload's claim (only if it still holds it). */
  private async finished(m: MigrationRecord): Promise<void> {
    if (m.claimKey) await this.claims.release(m.claimKey, migrationOwner(m.id)).catch(() => undefined);
    this.metrics.record(m);
    this.logger.log({
      msg: 'migration finished',
      migrationId: m.id,
      state: m.state,
      downtimeMs: m.downtimeMs,
      ...(m.error ? { error: m.error } : {}),
    });
  }
}
