import { DomainError, NotFoundError, processKey, type MigrationRecord, type PhaseName } from '@spotlift/domain';
import {
  InMemoryPairLinks,
  InMemoryPostCopyTrials,
  MigrationRepository,
  NodeRepository,
  type PairLinks,
  PostCopyTrials,
  WorkloadRepository,
} from '@spotlift/store';
import { DirectoryStreamer } from '@spotlift/transport';
import { Clock } from './clock.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from './engine.types.js';
import { type NodeLock, NodeOps } from './node-ops/node-ops.js';
import { keepFailedJobLogs } from './failed-job-logs.js';
import { ContainerRecovery, ContainerRollback } from './container-recovery.js';
import { PodmanOps } from './node-ops/podman/podman-ops.js';
import { ContainerPreCopy } from './strategies/container-pre-copy.js';
import { ContainerStopAndCopy } from './strategies/container-stop-and-copy.js';
import { WorkloadFiles } from './files/workload-files.js';
import { PhaseRecorder } from './phase-recorder.js';
import { watchForCancel } from './cancel-watch.js';
import {
  Recovery,
  addNote,
  commitStarted,
  committed,
  exitedInsteadOfHeld,
  mayBeFrozen,
  type RecoveryOutcome,
} from './recovery.js';
import { Rollback } from './rollback.js';
import { saveWorkloadFields } from './workload-writes.js';
import {
  CancelledError,
  LeaseLostError,
  MigrationInterrupted,
  MovedElsewhere,
  UNCONTROLLED,
  type RunControl,
} from './run-control.js';
import { MigrationSteps } from './steps/migration-steps.js';
import type { MigrationStrategy } from './strategies/migration-strategy.port.js';
import type { StrategyDeps } from './strategies/strategy-deps.js';
import { StopAndCopy } from './strategies/stop-and-copy.js';
import { DEFAULT_LIVE_CONFIG, type LiveConfig } from './strategies/live-config.js';
import { withLiveStrategies } from './strategies/live-strategies.js';
import type { StrategyChain } from './strategies/strategy-chain.js';
import type { PageTransport } from './transports/page-transport.port.js';
import { PageTransports } from './transports/page-transports.js';
import { TcpPageTransport } from './transports/tcp-page-transport.js';

/**
 * Runs one migration to an end state (completed, rolled back or failed). Safe to call again for the same
 * migration: a record left mid-flight by a dead worker is reconciled with what the nodes say before
 * anything else happens, so the workload ends up running in exactly one place.
 */
export class MigrationEngine {
  private readonly phases: PhaseRecorder;
  private readonly steps: MigrationSteps;
  private readonly strategies: Map<string, MigrationStrategy>;
  private readonly rollback: Rollback;
  private readonly recovery: Recovery;
  /** Selection (auto, capabilities) and fallbacks around the strategies. */
  private readonly chain: StrategyChain;
  /** The `podman` kind: its stop-and-copy, rollback and recovery (the process kind's are the ones above). */
  private readonly containers: {
    move: ContainerStopAndCopy;
    preCopy: ContainerPreCopy;
    rollback: ContainerRollback;
    recovery: ContainerRecovery;
  };
  /** Node-side locks held by the runs in this process, per migration id (see lockSource). */
  private readonly locks = new Map<string, NodeLock>();

  constructor(
    private readonly migrations: MigrationRepository,
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    streamer: DirectoryStreamer,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
    transports: PageTransport[] = [new TcpPageTransport()],
    trials: PostCopyTrials = new InMemoryPostCopyTrials(),
    live: LiveConfig = DEFAULT_LIVE_CONFIG,
    links: PairLinks = new InMemoryPairLinks(),
    podman: PodmanOps = new PodmanOps(ops, streamer),
  ) {
    this.phases = new PhaseRecorder(migrations, clock);
    const files = new WorkloadFiles(ops, streamer, this.phases, config.fileSync);
    this.steps = new MigrationSteps(ops, this.phases, workloads, clock, config, files);
    this.rollback = new Rollback(ops, this.phases, workloads, config);
    // Each migration names its page transport (migration.transport); tcp is always there.
    const pageTransports = new PageTransports(transports);
    const deps: StrategyDeps = {
      ops,
      phases: this.phases,
      config,
      steps: this.steps,
      streamer,
      transports: pageTransports,
      files,
    };
    this.strategies = new Map<string, MigrationStrategy>([['stop-and-copy', new StopAndCopy(deps)]]);
    const lives = withLiveStrategies(this.strategies, {
      ...deps,
      trials,
      links,
      clock,
      live,
    });
    this.chain = lives.chain;
    this.recovery = new Recovery(this.steps, this.rollback, ops, config, lives.settle);
    const move = new ContainerStopAndCopy({ ...deps, podman, workloads, clock });
    const containerRollback = new ContainerRollback(podman, this.phases, workloads, config);
    this.containers = {
      move,
      preCopy: new ContainerPreCopy({ ...deps, podman, workloads, clock }, live),
      rollback: containerRollback,
      recovery: new ContainerRecovery(move, containerRollback, this.phases, podman, config),
    };
  }

  /**
   * Runs (or, for a record left 'running', recovers) one migration. Returns it in an end state, or throws
   * MigrationInterrupted when it had to stop without one (an unreachable node, a lost job lock); the record
   * then stays 'running' and a re-run continues from what the nodes say.
   */
  async run(migrationId: string, control: RunControl = UNCONTROLLED): Promise<MigrationRecord> {
    // A finished migration is answered as it is, before its workload and nodes are looked up: a job handed
    // out again after a Redis outage must not fail (or retry) because Redis lost those records meanwhile.
    const recorded = await this.migrations.get(migrationId);
    if (recorded && isFinished(recorded)) return recorded;
    const ctx = await this.load(migrationId);
    const { migration } = ctx;
    if (isFinished(migration)) return migration;
    // A job run again after its worker stopped: a node lock held now may be that worker's own, under its lease.
    const resumed = migration.state === 'running';
    this.phases.guard(migration.id, (name) => this.guard(ctx, control, name, resumed));
    try {
      let outcome: RecoveryOutcome = 'restart';
      if (migration.state === 'running') {
        // Only the job that froze the tree may resume or kill it: recovery decides under the node lock too.
        if (mayBeFrozen(migration) && !(await this.lockSource(ctx))) {
          throw new MigrationInterrupted(
            `the node-side lock of this workload on ${ctx.source.id} is held by another session (a previous attempt still alive, or another orchestrator); nothing was decided, trying again later`,
            true,
            true,
          );
        }
        outcome = isContainer(ctx)
          ? await this.containers.recovery.recover(ctx, control)
          : await this.recovery.recover(ctx, control);
      }
      if (outcome === 'restart') {
        outcome = migration.restoredFromJournal ? await this.notStartedAgain(ctx) : await this.attempt(ctx, control);
      }
      await this.finish(ctx, outcome);
      return migration;
    } catch (error) {
      if (error instanceof MovedElsewhere) {
        // Decided from the records and nothing touched: an end state now (a retry would find the same), and no
        // cleanup (the image directories may be the other run's). The run that moved it may have written its end
        // state meanwhile: that one is the migration's outcome, and stays.
        const current = await this.migrations.get(migration.id).catch(() => undefined);
        if (current && isFinished(current)) return current;
        migration.error = error.message;
        await this.finish(ctx, 'failed', false);
        return migration;
      }
      throw await this.interrupted(ctx, error as Error);
    } finally {
      this.phases.guard(migration.id, undefined);
      await this.unlockSource(migration.id);
    }
  }

  /**
   * A record a worker's journal brought back after Redis lost it (`restoredFromJournal`), in which recovery
   * found nothing frozen: it may be a stale copy of a migration another worker finished (or drives) since, so
   * it is never started over, which would freeze the workload again on the word of an old record. Under the
   * node-side lock (a run still driving it holds that lock: then wait for it), it ends `failed`, the workload
   * untouched.
   */
  private async notStartedAgain(ctx: MigrationContext): Promise<MigrationRecord['state']> {
    if (!(await this.lockSource(ctx))) {
      throw new MigrationInterrupted(
        `the node-side lock of this workload on ${ctx.source.id} is held by another session (a run still driving this migration?); nothing was touched, trying again later`,
        true,
        false,
      );
    }
    ctx.migration.error = `this record was brought back from a worker's journal after Redis lost it (${ctx.migration.restoredFromJournal}) and nothing of it was frozen: not started again, since the copy may be stale (another worker may have moved the workload since); the workload was not touched; start a new migration if it should still move`;
    return 'failed';
  }

  /** The key of the process this job moves: its claim and its node-side lock. */
  private claimKey(ctx: MigrationContext): string {
    return ctx.migration.claimKey ?? processKey(ctx.workload);
  }

  /**
   * Takes the source node's lock on the process for this run (held by its own SSH channel until the run
   * ends, after commit or rollback): false when another session holds it. A second freezer of the same
   * process (a job of another installation, whose claims live in another Redis) stops here.
   */
  private async lockSource(ctx: MigrationContext): Promise<boolean> {
    if (this.locks.has(ctx.migration.id)) return true;
    const lock = await this.ops.holdLock(ctx.source, this.claimKey(ctx));
    if (!lock) return false;
    this.locks.set(ctx.migration.id, lock);
    return true;
  }

  private async unlockSource(migrationId: string): Promise<void> {
    const lock = this.locks.get(migrationId);
    this.locks.delete(migrationId);
    await lock?.release();
  }

  /**
   * Before the first phase that may touch the workload: the job's claim (Redis, this installation) and the
   * node-side lock (the source node, every installation). Either held by another means this job never freezes.
   */
  private async claimBeforeFreeze(ctx: MigrationContext, control: RunControl, resumed: boolean): Promise<void> {
    const key = this.claimKey(ctx);
    const holder = await control.claimWorkload?.(key);
    if (holder) {
      throw new MigrationStepError(
        'prepare',
        `workload '${ctx.workload.id}' is claimed by ${holder} (process ${key}); this job did not touch it`,
        true,
      );
    }
    if (!(await this.lockSource(ctx))) {
      // The lock outlives a dead worker for its lease (node-lock.ts): a run resumed after that worker stopped
      // waits it out through the job's retries instead of failing a migration nothing else holds.
      if (resumed) {
        throw new MigrationInterrupted(
          `the node-side lock of this workload on ${ctx.source.id} is held by another session (the previous attempt's, until its lease ends, or another orchestrator's); nothing was touched, trying again later`,
          true,
          false,
        );
      }
      throw new MigrationStepError(
        'prepare',
        `another session holds the node-side lock of workload '${ctx.workload.id}' on ${ctx.source.id} (${key}), e.g. a migration run by another orchestrator; this job did not touch it`,
        true,
      );
    }
  }

  /**
   * Gives up on a migration that kept being interrupted: records why and cleans up what can be. Called by
   * the worker once its retries are spent; the reason says what a person must check.
   */
  async giveUp(migrationId: string, reason: string): Promise<MigrationRecord> {
    const ctx = await this.load(migrationId);
    if (isFinished(ctx.migration)) return ctx.migration;
    const { migration, source, destination, workload } = ctx;
    const frozen = mayBeFrozen(migration) && !committed(migration);
    const id = workload.container?.slice(0, 12);
    migration.error = !frozen
      ? reason
      : isContainer(ctx)
        ? commitStarted(migration)
          ? `${reason}; container ${id} runs on ${destination.id} but its checkpointed copy on ${source.id} was not removed: podman rm it there`
          : `${reason}; container ${id} may be checkpointed (stopped) on ${source.id}, or restored on ${destination.id}: check both nodes' Podman before restoring it`
        : commitStarted(migration)
          ? `${reason}; the workload runs on ${destination.id} (pid ${migration.restoredPid ?? '?'}) but its frozen source on ${source.id} (pid ${workload.pid}) was not killed: kill it there`
          : `${reason}; the workload may still be frozen on ${source.id} (pid ${workload.pid}): check both nodes before resuming it`;
    await this.finish(ctx, committed(migration) ? 'completed' : 'failed', !frozen);
    return migration;
  }

  /**
   * Before every phase: stop at this boundary when the job was lost or cancelled; claim the workload (and its
   * node-side lock) before 'prepare'; claim the commit point.
   */
  private async guard(ctx: MigrationContext, control: RunControl, name: PhaseName, resumed: boolean): Promise<void> {
    if (control.lost?.()) throw new LeaseLostError(name);
    if (name === 'rollback' || name === 'cleanup') return;
    if (name === 'commit') {
      if (!(await control.claimCommit())) throw new CancelledError(name, false);
      return;
    }
    await this.checkLease(ctx, name);
    if (await control.cancelRequested()) throw new CancelledError(name, !mayBeFrozen(ctx.migration));
    // 'prepare' follows the checks of every strategy and precedes anything that seizes the tree.
    if (name === 'prepare') await this.claimBeforeFreeze(ctx, control, resumed);
  }

  /**
   * The node-side lock's lease (node-lock.ts) found lost: its holder ended, so another session may hold the
   * lock now. Before the freeze the job stops here and is retried (the retry takes the lock afresh, or waits
   * for whoever holds it); the lease is renewed right before a phase that seizes the tree (the dump, a pre-copy
   * round), so a lapse is seen there rather than by the next timer. After the freeze nothing is stopped: what
   * this job froze is its own to finish or roll back by the usual rules, and no later phase seizes the tree.
   */
  private async checkLease(ctx: MigrationContext, name: PhaseName): Promise<void> {
    const lock = this.locks.get(ctx.migration.id);
    if (!lock || mayBeFrozen(ctx.migration)) return;
    const lost = SEIZES.has(name) ? (await lock.renew()) === 'lost' : lock.lost;
    if (!lost) return;
    throw new MigrationInterrupted(
      `the node-side lock's lease on ${ctx.source.id} was lost before '${name}' (another session may hold the lock now); nothing was frozen, trying again`,
      true,
      false,
    );
  }

  private async attempt(ctx: MigrationContext, control: RunControl): Promise<MigrationRecord['state']> {
    const { migration } = ctx;
    migration.state = 'running';
    await this.phases.save(migration);
    const interrupt = () => this.ops.waitCriuIdle(ctx.destination, ctx.destinationDir, 1_000).then(() => undefined);
    const watch = watchForCancel(ctx, control, this.config.cancelPollMs ?? 500, interrupt);
    try {
      if (isContainer(ctx)) {
        const requested = ctx.migration.requestedStrategy ?? ctx.migration.strategy;
        await (requested === 'pre-copy' ? this.containers.preCopy : this.containers.move).run(ctx);
      } else await this.chain.run(ctx);
      return 'completed';
    } catch (error) {
      return await this.settle(ctx, control, error as Error);
    } finally {
      watch.stop();
    }
  }

  /** A strategy failed: decide the end state, rolling back when the source may be frozen. */
  private async settle(ctx: MigrationContext, control: RunControl, error: Error): Promise<MigrationRecord['state']> {
    const { migration, workload } = ctx;
    if (error instanceof LeaseLostError || error instanceof MigrationInterrupted) throw error;
    if (committed(migration)) {
      addNote(migration, `after the commit point: ${error.message}`);
      return 'completed';
    }
    // A commit that started and failed (the source could not be killed) is finished by a re-run.
    if (commitStarted(migration)) throw error;
    const cancelled = error instanceof CancelledError || (await control.cancelRequested());
    const phase = migration.phases.at(-1)?.name ?? 'start';
    const frozen = error instanceof MigrationStepError ? !error.beforeFreeze : mayBeFrozen(migration);
    if (!frozen) {
      // Nothing was frozen: a transient error (an unreachable node) is worth another try from the start.
      if (!cancelled && isTransient(error)) throw error;
      // A page-server started by 'prepare' would wait for a dump that never comes.
      if (migration.phases.some((p) => p.name === 'prepare')) {
        await this.ops.waitCriuIdle(ctx.destination, ctx.destinationDir, 1_000).catch(() => undefined);
      }
      // A tree CRIU could not seize because it was exiting is gone, not held by another tracer.
      const gone = !cancelled && (await exitedInsteadOfHeld(this.ops, ctx, error));
      if (workload.state === 'migrating' || gone) {
        workload.state = gone ? 'gone' : 'running';
        await saveWorkloadFields(this.workloads, workload, ['state']);
      }
      if (gone) {
        migration.error = `workload gone: pid ${workload.pid} on ${ctx.source.id} exited before the migration could move it; nothing was restored and it runs nowhere (${error.message})`;
        return 'failed';
      }
      migration.error = cancelled
        ? `cancelled by request before any freeze; the workload was not touched`
        : error.message;
      return cancelled ? 'cancelled' : 'failed';
    }
    const why = cancelled ? `cancelled by request during '${phase}'` : error.message;
    migration.rollbackReason = why;
    migration.error = cancelled && !(error instanceof CancelledError) ? `${why} (${error.message})` : why;
    const rollback = isContainer(ctx) ? this.containers.rollback : this.rollback;
    if (await rollback.run(ctx)) return cancelled ? 'cancelled' : 'rolled_back';
    if (isContainer(ctx)) {
      migration.error = `workload gone: its container left ${ctx.source.id} before the migration could move it; it runs nowhere (${error.message})`;
      return cancelled ? 'cancelled' : 'failed';
    }
    migration.error = `workload gone: pid ${workload.pid} on ${ctx.source.id} exited before the migration could move it; nothing was restored and it runs nowhere (${error.message})`;
    return cancelled ? 'cancelled' : 'failed';
  }

  /** Cleanup, then the end state: a reader never sees an end state with images left behind. */
  private async finish(ctx: MigrationContext, outcome: MigrationRecord['state'], removeImages = true): Promise<void> {
    if (removeImages && !ctx.migration.keepImages) {
      if (outcome !== 'completed') await keepFailedJobLogs(this.ops, ctx, this.config.imageRoot);
      await this.cleanup(ctx);
    }
    ctx.migration.state = outcome;
    await this.phases.save(ctx.migration);
  }

  /** Records why the run stopped without an end state; never saves after a lost lease (not ours any more). */
  private async interrupted(ctx: MigrationContext, error: Error): Promise<MigrationInterrupted> {
    const { migration } = ctx;
    const frozen = mayBeFrozen(migration) && !committed(migration);
    const lost = error instanceof LeaseLostError;
    const result =
      error instanceof MigrationInterrupted
        ? error
        : new MigrationInterrupted(
            `${error.message}`,
            lost || isTransient(error) || !(error instanceof MigrationStepError),
            frozen,
            error,
          );
    if (!lost) {
      addNote(migration, `stopped without an end state: ${error.message}`);
      await this.phases.save(migration).catch(() => undefined);
    }
    return result;
  }

  /**
   * Removes `<imageRoot>/<id>` on both nodes (process memory lives there). A node that does not answer is
   * tried again for a while (an sshd restarting); what is left after that is named in the phase detail.
   */
  private async cleanup(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const dir = this.steps.migrationDir(ctx);
    const until = Date.now() + (this.config.cleanupRetryMs ?? 60_000);
    await this.phases
      .run(migration, 'cleanup', async (phase) => {
        let left = [ctx.source, ctx.destination];
        for (let wait = 500; ; wait = Math.min(wait * 2, 5_000)) {
          const removed = await Promise.all(left.map((n) => this.ops.removeDir(n, dir)));
          left = left.filter((_, i) => !removed[i]);
          if (left.length === 0 || Date.now() + wait > until) break;
          await new Promise((r) => setTimeout(r, wait));
        }
        phase.detail = left.length
          ? `${dir} could not be removed on ${left.map((n) => n.id).join(', ')}`
          : `${dir} removed on both nodes`;
        if (left.length) throw new Error(phase.detail);
      })
      .catch(() => undefined);
  }

  private async load(migrationId: string): Promise<MigrationContext> {
    const migration = await this.migrations.get(migrationId);
    if (!migration) throw new NotFoundError('migration', migrationId);
    const workload = await this.workloads.get(migration.workloadId);
    const source = await this.nodes.get(migration.sourceNodeId);
    const destination = await this.nodes.get(migration.destinationNodeId);
    if (!workload || !source || !destination) {
      throw new Error(`migration '${migrationId}' refers to a workload or node that no longer exists`);
    }
    const dir = `${this.config.imageRoot}/${migration.id}`;
    return { migration, workload, source, destination, sourceDir: `${dir}/src`, destinationDir: `${dir}/dst` };
  }
}

/** A Podman container (kind `podman`): the kind's own move, rollback and recovery run. */
function isContainer(ctx: MigrationContext): boolean {
  return ctx.workload.kind === 'podman';
}

/** Phases that seize the source tree (a dump, a pre-dump round): the lease is renewed right before them. */
const SEIZES: ReadonlySet<PhaseName> = new Set<PhaseName>(['dump', 'precopy']);

/** Errors a later try may not see again: a node that did not answer over SSH. */
function isTransient(error: Error): boolean {
  return error instanceof DomainError && error.retryable;
}

export function isFinished(m: MigrationRecord): boolean {
  return m.state === 'completed' || m.state === 'rolled_back' || m.state === 'failed' || m.state === 'cancelled';
}
