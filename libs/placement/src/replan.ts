/**
 * Re-planning as jobs finish: completed work is kept (and its memory counted as used), failed workloads
 * go back into the queue away from the node that failed, running jobs stay pinned where they are with
 * their remaining bytes, and everything not yet started is planned again with the time left.
 */
import { commit, reserve } from './capacity-ledger.js';
import type { PinnedJob } from './evacuation-admission.js';
import { evacuationUpperBound } from './evacuation-bound.js';
import { streamCap, valueOf } from './evacuation-model.js';
import type { EvacuationPlan, FinishedJob, PlannedMigration } from './evacuation-types.js';
import { ledgerOf, planCore, validate, withDefaults, withShortlist } from './plan-evacuation.js';
import type { CandidateNode } from './types.js';

/** Options for {@link replan}. */
export interface ReplanOptions {
  /** Bytes each running migration has sent so far; otherwise estimated from the previous plan. */
  bytesSent?: Readonly<Record<string, number>>;
  /** Fresh probes of the destinations (their free memory then already includes completed migrations). */
  destinations?: readonly CandidateNode[];
}

/**
 * Re-plan at `nowSeconds` (the evacuation's clock) after some jobs finished. Completed work is kept;
 * failed workloads are planned again away from the node that failed; running jobs stay where they are;
 * jobs not yet started are planned again with the time and capacity left.
 */
export function replan(
  plan: EvacuationPlan,
  finished: readonly FinishedJob[],
  nowSeconds: number,
  opts: ReplanOptions = {},
): EvacuationPlan {
  const input = withDefaults({ ...plan.input, destinations: opts.destinations ?? plan.input.destinations });
  validate(input);
  const lines = new Map(plan.migrations.map((m) => [m.workloadId, m]));
  const history = { completed: [...plan.history.completed], failedOn: { ...plan.history.failedOn } };
  for (const f of finished) {
    const line = lines.get(f.workloadId);
    if (f.outcome === 'completed' && !history.completed.includes(f.workloadId)) history.completed.push(f.workloadId);
    if (f.outcome === 'failed' && line?.destinationId) {
      history.failedOn[f.workloadId] = [...(history.failedOn[f.workloadId] ?? []), line.destinationId];
    }
  }
  const failedNow = new Set(finished.filter((f) => f.outcome === 'failed').map((f) => f.workloadId));
  const fresh = ledgerOf(input.destinations);
  const groups = fresh.groups;
  let ledger = fresh.ledger;
  const done: PlannedMigration[] = [];
  const pinned: PinnedJob[] = [];
  const bytesLeft: Record<string, number> = {};
  const o = input.perMigrationOverheadSeconds;
  for (const w of input.workloads) {
    const line = lines.get(w.id);
    const dest = line?.destinationId;
    if (history.completed.includes(w.id)) {
      done.push({
        ...(line ?? { workloadId: w.id, priority: w.priority, memoryBytes: w.memoryBytes, value: valueOf(w) }),
        completed: true,
        willMiss: false,
        inFlight: false,
      });
      // A fresh probe already shows the restored workload's memory; the old figures do not.
      if (dest && !opts.destinations)
        ledger = commit(reserve(ledger, { id: w.id, nodeId: dest, bytes: w.memoryBytes }).ledger, w.id);
      if (dest && !opts.destinations && w.antiAffinityGroup) (groups[dest] ??= []).push(w.antiAffinityGroup);
      continue;
    }
    const running =
      line && dest && !line.willMiss && !failedNow.has(w.id) && (line.startSeconds ?? Infinity) <= nowSeconds;
    if (!running) continue;
    const total = line.predictedBytes ?? w.memoryBytes;
    const ts = line.transferStartSeconds ?? (line.startSeconds ?? 0) + o;
    const tf = line.predictedFinishSeconds ?? ts;
    const est =
      tf > ts ? total * Math.min(1, Math.max(0, (nowSeconds - ts) / (tf - ts))) : nowSeconds >= ts ? total : 0;
    const left = Math.max(0, total - (opts.bytesSent?.[w.id] ?? est));
    bytesLeft[w.id] = left;
    ledger = reserve(ledger, { id: w.id, nodeId: dest, bytes: w.memoryBytes }).ledger;
    if (w.antiAffinityGroup) (groups[dest] ??= []).push(w.antiAffinityGroup);
    pinned.push({
      migration: { ...line, willMiss: false },
      sim: {
        id: w.id,
        destinationId: dest,
        capBytesPerSec: streamCap(input, dest),
        bytesLeft: left,
        overheadLeftSeconds: Math.max(0, (line.startSeconds ?? 0) + o - nowSeconds),
        startedAt: line.startSeconds ?? 0,
      },
    });
  }
  const taken = new Set([...history.completed, ...pinned.map((p) => p.sim.id)]);
  const queue = input.workloads.filter((w) => !taken.has(w.id));
  const remaining = input.workloads.filter((w) => !history.completed.includes(w.id));
  const bound = evacuationUpperBound(input, remaining, {
    fromSeconds: nowSeconds,
    payOverhead: pinned.length === 0,
    bytesLeft,
  }).value;
  const next = planCore({ input, now: nowSeconds, queue, pinned, ledger, groups, history, done, bound });
  return plan.shortlist ? withShortlist(next, plan.shortlist) : next;
}
