/**
 * Pure bookkeeping of an evacuation's jobs: from a plan to job lines, a re-plan applied to the jobs not
 * started yet, and the outcome once nothing more will happen.
 */
import type {
  EvacuationJob,
  EvacuationOutcome,
  EvacuationRecord,
  EvacuationState,
  MigrationRecord,
  PredictedMiss,
  WorkloadRecord,
} from '@spotlift/domain';
import type { EvacuationPlan, PlannedMigration } from '@spotlift/placement';

/** Job states after which the coordinator does nothing more with the job. */
const DONE = new Set(['completed', 'rolled_back', 'failed', 'cancelled', 'skipped', 'missed']);
/** Migration states that end a migration. */
const MIGRATION_ENDED = new Set(['completed', 'rolled_back', 'failed', 'cancelled']);

export const jobEnded = (j: EvacuationJob): boolean => DONE.has(j.state) && j.state !== 'missed';
export const jobInFlight = (j: EvacuationJob): boolean =>
  j.migrationId !== undefined && !MIGRATION_ENDED.has(j.state) && j.state !== 'skipped';
export const migrationEnded = (m: MigrationRecord): boolean => MIGRATION_ENDED.has(m.state);

function lineFields(line: PlannedMigration): Partial<EvacuationJob> {
  return {
    ...(line.order !== undefined ? { order: line.order } : {}),
    ...(line.destinationId ? { destinationNodeId: line.destinationId } : {}),
    ...(line.strategy ? { strategy: line.strategy } : {}),
    ...(line.predictedFinishSeconds !== undefined ? { predictedFinishSeconds: line.predictedFinishSeconds } : {}),
    ...(line.predictedDowntimeSeconds !== undefined ? { predictedDowntimeSeconds: line.predictedDowntimeSeconds } : {}),
    ...(line.predictedStallSeconds !== undefined ? { predictedStallSeconds: line.predictedStallSeconds } : {}),
    ...(line.explanation ? { explanation: line.explanation } : {}),
    ...(line.missReason ? { missReason: line.missReason } : {}),
    ...(line.fallback ? { fallback: line.fallback } : {}),
    ...(line.fallbackNodeId ? { fallbackNodeId: line.fallbackNodeId } : {}),
    ...(line.guardPath ? { guardPath: line.guardPath } : {}),
  };
}

/** Job lines of a first plan: scheduled ones pending in plan order, predicted misses as missed. */
export function jobsFromPlan(plan: EvacuationPlan, workloads: readonly WorkloadRecord[]): EvacuationJob[] {
  const names = new Map(workloads.map((w) => [w.id, w.name]));
  return plan.migrations.map((line) => ({
    workloadId: line.workloadId,
    ...(names.get(line.workloadId) ? { workloadName: names.get(line.workloadId) } : {}),
    memoryBytes: line.memoryBytes,
    priority: line.priority,
    state: line.willMiss ? 'missed' : 'pending',
    ...lineFields(line),
  }));
}

export function predictedMissesOf(plan: EvacuationPlan): PredictedMiss[] {
  return plan.migrations
    .filter((m) => m.willMiss)
    .map((m) => ({
      workloadId: m.workloadId,
      reason: m.missReason ?? 'predicted to miss the deadline',
      ...(m.fallback ? { fallback: m.fallback, fallbackNodeId: m.fallbackNodeId } : {}),
    }));
}

/**
 * Applies a re-plan to jobs that have not started: new destination, order and prediction; a job the
 * new plan schedules becomes pending (also one predicted to miss before), one it gives up on becomes
 * missed. Started and ended jobs keep their state. A job whose migration failed is pending again when
 * the plan moved it elsewhere (`retry`), as long as attempts are left.
 */
export function applyPlan(jobs: EvacuationJob[], plan: EvacuationPlan, maxAttempts: number): void {
  const lines = new Map(plan.migrations.map((m) => [m.workloadId, m]));
  for (const job of jobs) {
    const line = lines.get(job.workloadId);
    if (!line || line.completed) continue;
    const failed = job.state === 'rolled_back' || job.state === 'failed';
    const attempts = (job.earlierMigrationIds?.length ?? 0) + (job.migrationId ? 1 : 0);
    const open = job.state === 'pending' || job.state === 'missed' || (failed && attempts < maxAttempts);
    if (!open) continue;
    if (line.willMiss) {
      if (job.state === 'pending') Object.assign(job, { state: 'missed' }, lineFields(line));
      continue;
    }
    if (failed && job.migrationId) {
      job.earlierMigrationIds = [...(job.earlierMigrationIds ?? []), job.migrationId];
      delete job.migrationId;
      delete job.startedAt;
      delete job.endedAt;
    }
    delete job.missReason;
    Object.assign(job, { state: 'pending' }, lineFields(line));
  }
}

/** The end state and outcome once no job is pending or in flight. */
export function outcomeOf(rec: EvacuationRecord): { state: EvacuationState; outcome: EvacuationOutcome } {
  const total = rec.jobs.length;
  const moved = rec.jobs.filter((j) => j.state === 'completed');
  const missed = rec.jobs.filter((j) => j.state === 'missed' || j.state === 'skipped' || j.state === 'pending').length;
  const checkpointed = rec.jobs.filter((j) => j.state === 'checkpointed').length;
  const failed = total - moved.length - missed - checkpointed;
  const downtimes = moved.map((j) => j.downtimeMs).filter((d): d is number => d !== undefined);
  const beforeDeadline = rec.jobs.every((j) => j.state !== 'completed' || j.beforeDeadline !== false);
  const state: EvacuationState =
    moved.length === total ? 'completed' : moved.length + checkpointed > 0 ? 'partial' : 'failed';
  const dt = downtimes.length
    ? `; downtime max ${Math.round(Math.max(...downtimes))} ms, total ${Math.round(downtimes.reduce((a, b) => a + b, 0))} ms`
    : '';
  return {
    state,
    outcome: {
      moved: moved.length,
      missed,
      failed,
      ...(checkpointed ? { checkpointed } : {}),
      beforeDeadline,
      ...(downtimes.length
        ? { maxDowntimeMs: Math.max(...downtimes), totalDowntimeMs: downtimes.reduce((a, b) => a + b, 0) }
        : {}),
      summary: `${moved.length}/${total} workload(s) moved${checkpointed ? `, ${checkpointed} checkpointed to storage` : ''}${missed ? `, ${missed} missed` : ''}${failed ? `, ${failed} failed` : ''}${dt}`,
    },
  };
}
