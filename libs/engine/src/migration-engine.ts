import type { MigrationRecord } from '@spotlift/domain';
import { MigrationRepository, NodeRepository, WorkloadRepository } from '@spotlift/store';
import { DirectoryStreamer } from '@spotlift/transport';
import { Clock } from './clock.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from './engine.types.js';
import { NodeOps } from './node-ops.js';
import { PhaseRecorder } from './phase-recorder.js';
import { Rollback } from './rollback.js';
import { MigrationSteps } from './steps/migration-steps.js';
import type { MigrationStrategy } from './strategies/migration-strategy.port.js';
import { StopAndCopy } from './strategies/stop-and-copy.js';
import type { PageTransport } from './transports/page-transport.port.js';
import { TcpPageTransport } from './transports/tcp-page-transport.js';

/** Phases after which the source may be frozen: a failure from here on must roll back. */
const FREEZE_PHASES = new Set(['dump', 'transfer', 'restore', 'verify']);

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

  constructor(
    private readonly migrations: MigrationRepository,
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    streamer: DirectoryStreamer,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
    transports: PageTransport[] = [new TcpPageTransport()],
  ) {
    this.phases = new PhaseRecorder(migrations, clock);
    this.steps = new MigrationSteps(ops, this.phases, workloads, clock, config);
    this.rollback = new Rollback(ops, this.phases, workloads);
    const tcp = transports.find((t) => t.name === 'tcp') ?? new TcpPageTransport();
    this.strategies = new Map<string, MigrationStrategy>([['stop-and-copy', new StopAndCopy(this.steps, streamer, tcp)]]);
  }

  private strategyFor(ctx: MigrationContext): MigrationStrategy {
    const strategy = this.strategies.get(ctx.migration.strategy);
    if (!strategy) {
      throw new MigrationStepError('preflight', `strategy '${ctx.migration.strategy}' is not available`, true);
    }
    return strategy;
  }

  async run(migrationId: string): Promise<MigrationRecord> {
    const ctx = await this.load(migrationId);
    const { migration } = ctx;
    if (isFinished(migration)) return migration;

    if (migration.state === 'running') {
      // A previous worker died mid-job. Decide from the nodes, not from the queue.
      await this.recover(ctx);
      return migration;
    }

    migration.state = 'running';
    await this.phases.save(migration);
    let outcome: MigrationRecord['state'];
    try {
      await this.strategyFor(ctx).run(ctx);
      outcome = 'completed';
    } catch (error) {
      outcome = await this.fail(ctx, error as Error);
    }
    // The end state is written only after cleanup, so a reader never sees 'completed' with images left.
    await this.cleanup(ctx);
    migration.state = outcome;
    await this.phases.save(migration);
    return migration;
  }

  private async fail(ctx: MigrationContext, error: Error): Promise<MigrationRecord['state']> {
    const { migration } = ctx;
    const frozen = error instanceof MigrationStepError ? !error.beforeFreeze : this.mayBeFrozen(migration);
    migration.error = error.message;
    if (!frozen) return 'failed';
    migration.rollbackReason = error.message;
    await this.rollback.run(ctx);
    return 'rolled_back';
  }

  private async recover(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const last = migration.phases.at(-1)?.name;
    let outcome: MigrationRecord['state'];
    if (last === 'commit' || last === 'cleanup') {
      // The destination was verified; finish the commit (killing the source again is harmless).
      await this.steps.commit(ctx);
      outcome = 'completed';
    } else if (last && FREEZE_PHASES.has(last)) {
      if (await this.steps.adoptRestored(ctx)) {
        outcome = 'completed';
      } else {
        migration.rollbackReason = `the worker running this migration stopped during '${last}'; the source was resumed`;
        migration.error = migration.rollbackReason;
        await this.rollback.run(ctx);
        outcome = 'rolled_back';
      }
    } else {
      outcome = 'failed';
      migration.error = `the worker running this migration stopped during '${last ?? 'start'}', before any freeze; nothing was changed`;
      // The workload was never frozen, but the record may say 'migrating'.
      ctx.workload.state = 'running';
      await this.workloads.save(ctx.workload);
    }
    await this.cleanup(ctx);
    migration.state = outcome;
    await this.phases.save(migration);
  }

  private mayBeFrozen(migration: MigrationRecord): boolean {
    return migration.phases.some((p) => FREEZE_PHASES.has(p.name));
  }

  private async cleanup(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    if (migration.keepImages) return;
    await this.phases
      .run(migration, 'cleanup', async (phase) => {
        const [a, b] = await Promise.all([
          this.ops.removeDir(ctx.source, ctx.sourceDir),
          this.ops.removeDir(ctx.destination, ctx.destinationDir),
        ]);
        phase.detail = a && b ? 'image directories removed on both nodes' : 'an image directory could not be removed';
      })
      .catch(() => undefined);
  }

  private async load(migrationId: string): Promise<MigrationContext> {
    const migration = await this.migrations.get(migrationId);
    if (!migration) throw new Error(`migration '${migrationId}' does not exist`);
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

export function isFinished(m: MigrationRecord): boolean {
  return m.state === 'completed' || m.state === 'rolled_back' || m.state === 'failed' || m.state === 'cancelled';
}

