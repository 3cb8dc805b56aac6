/**
 * Builds the placement library's evacuation input from stored records. Pure: the caller reads the
 * records, the fresh memory figures and the reservations; this only translates them.
 */
import {
  guardCopyOf,
  type CheckpointRecord,
  type EarlySignalScope,
  type EarlySignalWorkload,
  type EvacuationJob,
  type EvacuationRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import type { CandidateNode, EvacuationInput, EvacuationPlan, PlacementWorkload } from '@spotlift/placement';
import type { EvacuationSettings } from '../config/evacuation-config.js';
import type { PairCapability } from './evacuation-capabilities.js';
import type { Calibration } from './evacuation-calibration.js';

export interface EvacuationInputSources {
  deadline: Date;
  now: Date;
  source: NodeRecord;
  workloads: readonly WorkloadRecord[];
  nodes: readonly NodeRecord[];
  /** MemAvailable read just now, bytes, where the read answered; the stored probe otherwise. */
  freshMemAvailable: Readonly<Record<string, number>>;
  /** Memory promised to migrations in flight towards each node (not visible in MemAvailable yet). */
  reservedByNode: Readonly<Record<string, number>>;
  settings: EvacuationSettings;
  /** Per destination: the stored post-copy trial and measured throughput from the source (absent: unknown). */
  pairs?: Readonly<Record<string, PairCapability>>;
  /** Fixed costs measured on completed migrations (absent, or too few samples: the settings' figures). */
  calibration?: Calibration;
  /** Every checkpoint: a guarded workload's last good guard checkpoint is what a too-short notice builds on. */
  checkpoints?: readonly CheckpointRecord[];
}

/** The workload's declared priority and dirty rate where it has them, the fleet's defaults otherwise. */
export function placementWorkload(w: WorkloadRecord, settings: EvacuationSettings): PlacementWorkload {
  return {
    id: w.id,
    memoryBytes: w.rssBytes ?? 0,
    dirtyRateBytesPerSec: w.dirtyRateBytesPerSec ?? settings.defaultDirtyRateBytesPerSec,
    priority: w.priority ?? settings.defaultPriority,
    ...(w.maxDowntimeMs !== undefined ? { maxDowntimeSeconds: w.maxDowntimeMs / 1000 } : {}),
  };
}

/**
 * `low-risk-first` on an early signal: low-priority workloads move now (a needless move costs them little);
 * the others are warmed up with a pre-copy start where the source tracks dirty pages (the engine's pre-copy
 * runs its rounds while the workload runs, then freezes only for the last dirty set), and otherwise stay
 * until a termination notice, saying why.
 */
export function earlySignalScope(
  workloads: readonly WorkloadRecord[],
  source: NodeRecord,
  settings: EvacuationSettings,
): EarlySignalScope {
  const max = settings.lowRiskMaxPriority;
  const softDirty = source.probe?.features?.mem_dirty_track === true;
  const decide = (w: WorkloadRecord): EarlySignalWorkload => {
    const priority = w.priority ?? settings.defaultPriority;
    const base = { workloadId: w.id, priority };
    if (priority <= max) return { ...base, action: 'move', reason: `priority ${priority} <= ${max}: moved early` };
    if (!settings.earlySignalPreCopy)
      return { ...base, action: 'hold', reason: `priority ${priority} > ${max}: stays until a termination notice` };
    if (softDirty)
      return { ...base, action: 'pre-copy', reason: `priority ${priority} > ${max}: pre-copy started early` };
    return {
      ...base,
      action: 'hold',
      reason: `priority ${priority} > ${max}: pre-copy is unavailable on ${source.id} (no soft-dirty tracking: criu check --feature mem_dirty_track failed), so no warm-up; it stays until a termination notice`,
    };
  };
  return { lowRiskMaxPriority: max, workloads: workloads.map(decide) };
}

/** The workloads an evacuation plans for: all of them, or those its early-signal scope moves. */
export function workloadsInScope(rec: EvacuationRecord, workloads: readonly WorkloadRecord[]): WorkloadRecord[] {
  if (!rec.earlySignal) return [...workloads];
  const moving = new Set(rec.earlySignal.workloads.filter((w) => w.action !== 'hold').map((w) => w.workloadId));
  return workloads.filter((w) => moving.has(w.id));
}

/** The strategy a job's migration asks for: pre-copy for an early-signal warm-up, else the plan's. */
export function strategyFor(rec: EvacuationRecord, job: EvacuationJob): string | undefined {
  const scoped = rec.earlySignal?.workloads.find((w) => w.workloadId === job.workloadId);
  return scoped?.action === 'pre-copy' ? 'pre-copy' : job.strategy;
}

export function candidateNode(n: NodeRecord, src: EvacuationInputSources): CandidateNode {
  const s = src.settings;
  return {
    id: n.id,
    state: n.state,
    criuOk: n.probe?.criuOk ?? false,
    freeMemoryBytes: src.freshMemAvailable[n.id] ?? n.probe?.memAvailableBytes ?? 0,
    reservedMemoryBytes: src.reservedByNode[n.id] ?? 0,
    cpu: { ...(n.probe?.cpuModel ? { model: n.probe.cpuModel } : {}) },
    ...(n.zone ? { zone: n.zone } : {}),
    ...(n.spotPool ? { spotPool: n.spotPool } : {}),
    lifecycle: n.lifecycle,
    labels: n.labels,
    // What migrations on this pair measured, else the fleet's figure; the trial as stored (untested: none).
    bandwidthFromSourceBytesPerSec: src.pairs?.[n.id]?.bandwidthBytesPerSec ?? s.streamBandwidthBytesPerSec,
    postCopyTrial: src.pairs?.[n.id]?.postCopyTrial ?? 'untested',
    ...(n.releasable ? { releasable: true } : {}),
  };
}

/**
 * The calibrated parts of the strategy model. Lazy pages: the planner times a fill as pages / stream rate x
 * `lazyTransferFactor`, so the measured fill rate becomes that factor against the configured stream rate (the
 * per-migration cap the planner uses; never below 1: a fill is never faster than a stream here).
 */
function strategyModelOf(src: EvacuationInputSources): Pick<EvacuationInput, 'strategyModel'> {
  const c = src.calibration;
  const model = {
    ...(c?.fixedCostSeconds !== undefined ? { fixedCostSeconds: c.fixedCostSeconds } : {}),
    ...(c?.lazyFillBytesPerSec
      ? { lazyTransferFactor: Math.max(1, src.settings.streamBandwidthBytesPerSec / c.lazyFillBytesPerSec) }
      : {}),
  };
  return Object.keys(model).length ? { strategyModel: model } : {};
}

/** The planner's input. The deadline is net of the safety margin, on the plan's clock (0 = now). */
export function buildEvacuationInput(src: EvacuationInputSources): EvacuationInput {
  const s = src.settings;
  const seconds = (src.deadline.getTime() - src.now.getTime()) / 1000 - s.safetyMarginSeconds;
  return {
    deadlineSeconds: Math.max(0, seconds),
    source: {
      id: src.source.id,
      ...(src.source.zone ? { zone: src.source.zone } : {}),
      ...(src.source.spotPool ? { spotPool: src.source.spotPool } : {}),
      cpu: { ...(src.source.probe?.cpuModel ? { model: src.source.probe.cpuModel } : {}) },
      softDirty: src.source.probe?.features?.mem_dirty_track ?? false,
    },
    sourceOutboundBytesPerSec: s.sourceBandwidthBytesPerSec,
    perMigrationMaxBytesPerSec: s.streamBandwidthBytesPerSec,
    perMigrationOverheadSeconds: src.calibration?.perMigrationOverheadSeconds ?? s.perMigrationOverheadSeconds,
    ...strategyModelOf(src),
    maxParallel: s.maxParallel,
    objective: s.objective,
    parallelDumpSlowdown: s.parallelDumpSlowdown,
    postCopyStallWeight: s.postCopyStallWeight,
    workloads: src.workloads.map((w) => {
      const guard = src.checkpoints && guardCopyOf(w, [...src.checkpoints], src.now).copy;
      return { ...placementWorkload(w, s), ...(guard ? { guardCopy: guard } : {}) };
    }),
    destinations: src.nodes.filter((n) => n.id !== src.source.id).map((n) => candidateNode(n, src)),
    ...(s.storageNodeId ? { storageNodeId: s.storageNodeId } : {}),
    // A probe that could not read the CPU must not strand a workload with the node about to go: the
    // restore's own CPU check still refuses a bad pair, and the job is then re-planned elsewhere.
    placement: { allowUnverifiedCpu: true },
  };
}

/**
 * The plan as `replan` must see it: the plan's lines carry predicted start times, but what counts is
 * what actually happened. A started job is running from its real start; a job not started is not
 * running, even if the prediction said it should have started by now.
 */
export function planAsExecuted(plan: EvacuationPlan, jobs: readonly EvacuationJob[], plannedAt: Date): EvacuationPlan {
  const byWorkload = new Map(jobs.map((j) => [j.workloadId, j]));
  const migrations = plan.migrations.map((line) => {
    const job = byWorkload.get(line.workloadId);
    if (line.completed || !job) return line;
    if (!job.startedAt || job.state === 'pending' || job.state === 'missed') {
      const { startSeconds: _s, transferStartSeconds: _t, predictedFinishSeconds: _f, ...rest } = line;
      return rest;
    }
    const actual = (new Date(job.startedAt).getTime() - plannedAt.getTime()) / 1000;
    const shift = actual - (line.startSeconds ?? actual);
    return {
      ...line,
      destinationId: job.destinationNodeId ?? line.destinationId,
      willMiss: false,
      startSeconds: actual,
      ...(line.transferStartSeconds !== undefined ? { transferStartSeconds: line.transferStartSeconds + shift } : {}),
      ...(line.predictedFinishSeconds !== undefined
        ? { predictedFinishSeconds: line.predictedFinishSeconds + shift }
        : {}),
    };
  });
  return { ...plan, migrations };
}
