/**
 * The guard path of an evacuation (issue 15: a notice too short for a live move of a guarded workload), as the
 * plan chose it (placement guard-path.ts) and as libs/domain guard-restore.ts steps it:
 * - `guard-restore`: a last checkpoint on top of the guard chain (`POST /checkpoints`' path, mode storage: the
 *   source stops at the dump and is killed once the images are stored), then its restore on another node
 *   (`POST /checkpoints/:id/restore`'s path, placement picks), and if that fails, its restore back on the source.
 * - `guard-checkpoint`: the last guard checkpoint stands in as it is (its age is the work lost); the node-loss
 *   pass restores it once the node is confirmed gone (a notice whose deadline passed confirms it).
 * Everything it decides is on the job, so a worker taking the evacuation over carries on from the record.
 */
import {
  ConflictError,
  guardRestoreStep,
  type EvacuationJob,
  type EvacuationRecord,
  type GuardPathPlan,
} from '@spotlift/domain';
import type { Clock } from '@spotlift/engine';
import type { CheckpointRepository } from '@spotlift/store';
import { CreateCheckpoint, type CheckpointsService } from '../checkpoints/checkpoints.service.js';
import { addEvent } from './evacuation-events.js';

export const isGuardRestore = (j: EvacuationJob): boolean => j.fallback === 'guard-restore';
/** A guard-restore job whose last checkpoint has not started yet (it waits for a guard take under way). */
export const guardRestoreWaiting = (j: EvacuationJob): boolean =>
  isGuardRestore(j) && j.state === 'missed' && j.checkpointId === undefined;

export class EvacuationGuardPath {
  constructor(
    private readonly checkpointsService: CheckpointsService,
    private readonly checkpoints: CheckpointRepository,
    private readonly clock: Clock,
  ) {}

  /** Starts the guard path of missed jobs the plan gave one (once each: the job records what it started). */
  async start(rec: EvacuationRecord): Promise<void> {
    for (const job of rec.jobs.filter((j) => j.state === 'missed' && j.guardPath && j.checkpointId === undefined)) {
      const path = job.guardPath!;
      if (job.fallback === 'guard-checkpoint') {
        await this.standIn(rec, job, path, path.reason);
        continue;
      }
      if (!isGuardRestore(job)) continue;
      try {
        const cp = await this.checkpointsService.create(
          CreateCheckpoint.parse({ workload: job.workloadId, storage: job.fallbackNodeId }),
          { evacuationId: rec.id, guardParentId: path.checkpointId },
        );
        delete job.error;
        Object.assign(job, {
          state: 'checkpointing',
          strategy: 'guard-restore',
          checkpointId: cp.id,
          guardParentId: cp.guardChain?.parentId ?? path.checkpointId,
          startedAt: cp.createdAt,
        });
        const how = cp.guardChain?.parentId ? `incremental on ${cp.guardChain.parentId}` : 'full';
        addEvent(rec, this.now(), `${job.workloadId} (guarded): last checkpoint ${cp.id} (${how}): ${path.reason}`);
      } catch (error) {
        // A guard checkpoint of it begun before the notice holds the workload: the last one waits for it (its
        // job's end wakes the coordinator) and then builds on the chain as it is.
        if (error instanceof ConflictError && typeof error.meta.checkpoint === 'string') {
          const why = `the last checkpoint waits for ${error.meta.checkpoint}, under way`;
          if (job.error !== why) addEvent(rec, this.now(), `${job.workloadId} (guarded): ${why}`);
          job.error = why;
          continue;
        }
        await this.standIn(rec, job, path, `the last checkpoint did not start (${(error as Error).message})`);
      }
    }
  }

  /** At the deadline: a last checkpoint still waiting to start never will; the guard checkpoint stands in. */
  async giveUp(rec: EvacuationRecord): Promise<void> {
    for (const job of rec.jobs.filter(guardRestoreWaiting))
      await this.standIn(rec, job, job.guardPath!, `the deadline came before the last checkpoint could start`);
  }

  /** Moves each guard-restore job one step on from its last checkpoint's record; true when one changed. */
  async advance(rec: EvacuationRecord): Promise<boolean> {
    let any = false;
    const open = rec.jobs.filter(
      (j) => isGuardRestore(j) && (j.state === 'checkpointing' || j.state === 'restoring') && j.checkpointId,
    );
    for (const job of open) {
      const cp = await this.checkpoints.get(job.checkpointId!);
      if (!cp) continue;
      const step = guardRestoreStep(cp);
      const now = this.now();
      switch (step.do) {
        case 'wait':
          continue;
        case 'take-failed':
          await this.standIn(rec, job, job.guardPath!, step.reason);
          break;
        case 'restore':
          await this.restore(rec, job, cp.id, () => this.checkpointsService.restore(cp.id, {}));
          if (job.state === 'restoring') {
            job.guardBytes = { pages: cp.bytes.pages };
            job.beforeDeadline = Date.parse(cp.storedAt ?? cp.updatedAt) <= Date.parse(rec.deadline);
          }
          break;
        case 'rollback':
          addEvent(rec, now, `${job.workloadId}: ${step.reason}; restoring ${cp.id} back on ${rec.nodeId}`);
          await this.restore(rec, job, cp.id, () =>
            this.checkpointsService.restore(cp.id, {}, undefined, { reason: step.reason }),
          );
          break;
        case 'done': {
          const r = cp.restore!;
          const downtime = cp.frozenAt && r.resumedAt ? Date.parse(r.resumedAt) - Date.parse(cp.frozenAt) : undefined;
          Object.assign(job, {
            state: 'completed',
            destinationNodeId: step.nodeId,
            guardRpoSeconds: 0,
            guardBytes: { pages: cp.bytes.pages, ...(r.imageBytes !== undefined ? { restored: r.imageBytes } : {}) },
            endedAt: r.resumedAt ?? cp.updatedAt,
            ...(cp.frozenAt ? { frozenAt: cp.frozenAt } : {}),
            ...(r.resumedAt ? { resumedAt: r.resumedAt } : {}),
            ...(downtime !== undefined ? { downtimeMs: downtime } : {}),
          });
          addEvent(
            rec,
            now,
            `${job.workloadId}: restored from ${cp.id} on ${step.nodeId} (guard-restore, no work lost)`,
          );
          break;
        }
        case 'rolled-back':
          Object.assign(job, { state: 'rolled_back', error: step.reason, endedAt: cp.updatedAt });
          addEvent(rec, now, `${job.workloadId}: ${step.reason}`);
          break;
        case 'stored':
          Object.assign(job, { state: 'checkpointed', error: step.reason, endedAt: cp.updatedAt });
          addEvent(rec, now, `${job.workloadId}: ${step.reason}`);
          break;
      }
      any = true;
    }
    return any;
  }

  /** Asks for a restore; one that cannot even be asked leaves the stored images the workload's one copy. */
  private async restore(rec: EvacuationRecord, job: EvacuationJob, id: string, ask: () => Promise<unknown>) {
    try {
      await ask();
      job.state = 'restoring';
    } catch (error) {
      const why = `restore of ${id} not started (${(error as Error).message}): checkpoint ${id} is the one copy`;
      Object.assign(job, { state: 'checkpointed', error: why, endedAt: this.now().toISOString() });
      addEvent(rec, this.now(), `${job.workloadId}: ${why}`);
    }
  }

  /** The guard checkpoint is the copy: its age now is the work lost; the node-loss pass restores it. */
  private async standIn(rec: EvacuationRecord, job: EvacuationJob, path: GuardPathPlan, why: string): Promise<void> {
    const now = this.now();
    const guard = await this.checkpoints.get(path.checkpointId);
    const frozen = guard ? Date.parse(guard.frozenAt ?? guard.createdAt) : now.getTime() - path.rpoSeconds * 1000;
    const rpo = Math.max(0, (now.getTime() - frozen) / 1000);
    const reason = `${why}: guard checkpoint ${path.checkpointId} is the copy, restored once ${rec.nodeId} is gone`;
    Object.assign(job, {
      state: 'checkpointed',
      checkpointId: path.checkpointId,
      guardRpoSeconds: Math.round(rpo * 10) / 10,
      endedAt: now.toISOString(),
      beforeDeadline: true,
      missReason: reason,
    });
    delete job.error; // the reason is the miss reason now
    addEvent(rec, now, `${job.workloadId} (guarded): ${reason}`);
  }

  private now(): Date {
    return this.clock.now();
  }
}
