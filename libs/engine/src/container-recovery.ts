import type { WorkloadRepository } from '@spotlift/store';
import type { EngineConfig, MigrationContext } from './engine.types.js';
import type { PodmanOps } from './node-ops/podman/podman-ops.js';
import type { PhaseRecorder } from './phase-recorder.js';
import { closeInterruptedPhases } from './phase-recorder.js';
import { addNote, commitStarted, mayBeFrozen, type RecoveryOutcome } from './recovery.js';
import type { RunControl } from './run-control.js';
import { type ContainerStopAndCopy, containerId } from './strategies/container-stop-and-copy.js';
import { refuseStaleRun, saveWorkloadFields } from './workload-writes.js';

/**
 * Undo of a container's move before the commit point. The source's container may be restored only once the
 * destination provably runs no copy: its container (by id: a container of the same name there is somebody
 * else's) is removed first, and a removal that fails leaves the source stopped (stopped beats running twice).
 * Then the source: still running (the checkpoint failed before stopping it) -> nothing to do; checkpointed ->
 * `podman container restore` from the checkpoint Podman kept; unknown to Podman -> gone. Idempotent.
 * As for processes, a rollback undoes only this job's own move: when the stored workload record no longer
 * names the container's source (a stale copy of the job run again after another worker committed), it
 * throws MovedElsewhere before removing anything: the destination's container may be the workload itself.
 */
export class ContainerRollback {
  constructor(
    private readonly podman: PodmanOps,
    private readonly phases: PhaseRecorder,
    private readonly workloads: WorkloadRepository,
    private readonly config: EngineConfig,
  ) {}

  /** False when the container turned out to be gone from the source (it runs nowhere). */
  async run(ctx: MigrationContext): Promise<boolean> {
    const { migration, workload, source, destination } = ctx;
    const id = containerId(ctx);
    let alive = true;
    await refuseStaleRun(this.workloads, ctx, 'rolls nothing back (nothing removed, nothing restored)');
    await this.phases.run(migration, 'rollback', async (phase) => {
      const notes: string[] = [];
      if (migration.phases.some((p) => p.name === 'restore')) {
        if (!(await this.podman.remove(destination, id))) {
          throw new Error(
            `the restored container ${id.slice(0, 12)} on ${destination.id} could not be removed; the source stays stopped`,
          );
        }
        // A restore that got as far as creating the container's volumes leaves them (preflight saw none there).
        const volumes = migration.container?.volumes ?? [];
        if (volumes.length && !(await this.podman.removeVolumes(destination, volumes))) {
          notes.push(`volume(s) ${volumes.join(', ')} could not be removed on ${destination.id}`);
        }
        notes.push(`no container ${id.slice(0, 12)} left on ${destination.id}`);
        delete migration.restoredPid;
      }
      const before = await this.podman.inspect(source, id);
      if (!before) {
        alive = false;
        workload.state = 'gone';
        notes.push(`the container is gone from ${source.id}: it runs nowhere`);
      } else if (before.running) {
        workload.pid = before.mainPid ?? workload.pid;
        workload.state = 'running';
        notes.push(`the container still runs on ${source.id} (pid ${workload.pid}): the checkpoint never stopped it`);
      } else {
        const r = await this.podman.restoreLocal(source, id, this.config.criuTimeoutMs);
        const after = await this.podman.inspect(source, id);
        if (!after?.running || after.mainPid === undefined) {
          throw new Error(
            `restoring container ${id.slice(0, 12)} on ${source.id} from its kept checkpoint failed (${after?.rawState ?? 'gone'}): ${r.error}`,
          );
        }
        workload.pid = after.mainPid;
        workload.state = 'running';
        notes.push(`container restored on ${source.id} from its kept checkpoint (pid ${after.mainPid})`);
      }
      await saveWorkloadFields(this.workloads, workload, ['state', 'pid']);
      phase.detail = notes.join('; ');
    });
    return alive;
  }
}

/**
 * A container's migration found 'running' (its worker died). Decided from the record, then from the nodes:
 * the commit was entered -> finish it; a rollback was entered -> run it again; the source may be frozen -> a
 * restored container running on the destination is adopted (verify, then commit), else roll back; nothing
 * frozen -> start over.
 */
export class ContainerRecovery {
  constructor(
    private readonly move: ContainerStopAndCopy,
    private readonly rollback: ContainerRollback,
    private readonly phases: PhaseRecorder,
    private readonly podman: PodmanOps,
    private readonly config: EngineConfig,
  ) {}

  async recover(ctx: MigrationContext, control: RunControl): Promise<RecoveryOutcome> {
    const { migration, workload } = ctx;
    const last = migration.phases.at(-1)?.name ?? 'start';
    addNote(migration, `picked up again after the previous attempt stopped during '${last}'`);
    closeInterruptedPhases(migration, new Date());
    if (commitStarted(migration)) {
      await this.move.commit(ctx);
      return 'completed';
    }
    const cancel = await control.cancelRequested();
    if (migration.phases.some((p) => p.name === 'rollback')) {
      return this.rollBack(ctx, migration.rollbackReason ?? 'the previous attempt stopped during its rollback', cancel);
    }
    if (!mayBeFrozen(migration)) {
      workload.state = 'running';
      return 'restart';
    }
    // A checkpoint or restore the dead worker started may still run on a node: decide only once both ended.
    const idleMs = this.config.criuIdleTimeoutMs ?? 300_000;
    for (const [node, dir] of [
      [ctx.source, ctx.sourceDir],
      [ctx.destination, ctx.destinationDir],
    ] as const) {
      if (!(await this.podman.waitIdle(node, dir, idleMs))) {
        throw new Error(
          `a Podman checkpoint or restore of this migration still runs on ${node.id}; nothing was decided`,
        );
      }
    }
    if (!cancel && migration.phases.some((p) => p.name === 'restore')) {
      const adopted = await this.phases
        .run(migration, 'verify', () => this.move.verify(ctx, containerId(ctx)))
        .then(() => true)
        .catch(() => false);
      if (adopted) {
        await this.move.commit(ctx);
        return 'completed';
      }
    }
    const why = cancel
      ? `cancelled by request; the previous attempt had stopped during '${last}'`
      : `the worker running this migration stopped during '${last}' before the commit point`;
    return this.rollBack(ctx, why, cancel);
  }

  private async rollBack(ctx: MigrationContext, why: string, cancelled: boolean): Promise<RecoveryOutcome> {
    const { migration, source } = ctx;
    migration.rollbackReason = why;
    migration.error = why;
    if (!(await this.rollback.run(ctx))) {
      migration.error = `workload gone: its container left ${source.id} before the migration could move it; it runs nowhere (${why})`;
      return cancelled ? 'cancelled' : 'failed';
    }
    return cancelled ? 'cancelled' : 'rolled_back';
  }
}
