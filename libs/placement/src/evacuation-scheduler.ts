/**
 * One pass of the evacuation heuristic: greedy list scheduling in a given order with a fixed number of
 * slots, on the shared-bandwidth model, admitting through {@link tryAdmit}.
 */
import { reserve } from './capacity-ledger.js';
import { DEFAULT_STRATEGY_MODEL, type StrategyDecision } from './choose-strategy.js';
import { moveCost } from './evacuation-cost.js';
import { EPS, refresh, tryAdmit, type ScheduleContext, type State } from './evacuation-admission.js';
import { linksOf, streamCapOf, valueOf } from './evacuation-model.js';
import type { PlannedMigration } from './evacuation-types.js';
import { fmtSeconds } from './format.js';
import { advance, finishTimes } from './transfer-sim.js';

/** Outcome of one pass. */
export interface ScheduleResult {
  scheduled: PlannedMigration[];
  missed: PlannedMigration[];
  workSaved: number;
  peakConcurrency: number;
  makespan: number;
}

/** Run one pass: admit greedily in queue order, advance the model event by event, record the outcome. */
export function schedulePass(ctx: ScheduleContext): ScheduleResult {
  const links = linksOf(ctx.input);
  const tFix = ctx.input.strategyModel?.fixedCostSeconds ?? DEFAULT_STRATEGY_MODEL.fixedCostSeconds;
  const groups: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(ctx.groups)) groups[k] = [...v];
  const byId = new Map(ctx.input.destinations.map((d) => [d.id, d]));
  const active = ctx.pinned.map((p) => ({ ...p.sim }));
  const bestCap = Math.max(0, ...ctx.input.destinations.map((d) => streamCapOf(ctx.input, d)));
  const st: State = {
    now: ctx.now,
    active,
    mustMeet: new Set(),
    ledger: ctx.ledger,
    groups,
    view: new Map(),
    byId,
    bestCap,
    picks: new Map(),
  };
  for (const id of byId.keys()) refresh(ctx.input, st, id);
  const records = new Map<string, PlannedMigration>();
  const decisions = new Map<string, StrategyDecision>();
  const pinnedFin = finishTimes(st.active, links, st.now);
  for (const p of ctx.pinned) {
    records.set(p.migration.workloadId, { ...p.migration, inFlight: true });
    if ((pinnedFin.get(p.sim.id)?.finishedAt ?? Infinity) <= ctx.deadline + EPS) st.mustMeet.add(p.sim.id);
  }
  let queue = [...ctx.queue];
  const reasons = new Map<string, string>();
  const crowded = new Map<string, string>();
  let peak = st.active.length;
  let order = 0;
  for (;;) {
    // Admitting a job only makes the others' checks harder, so a rejection holds until time moves on.
    const rejectedNow = new Set<string>();
    while (st.active.length < ctx.parallelism && queue.length > 0) {
      let admitted = false;
      for (const w of queue.filter((q) => !rejectedNow.has(q.id))) {
        const a = tryAdmit(ctx, st, w, links);
        if (!a.ok) {
          // Keep the first crowding reason: "it waited for higher-ranked work" explains a later "too late".
          const first = crowded.get(w.id);
          reasons.set(w.id, first && a.permanent ? `${a.reason}; earlier ${first}` : a.reason);
          if (!a.permanent && !first) crowded.set(w.id, `(at ${fmtSeconds(st.now)}) it ${a.reason}`);
          rejectedNow.add(w.id);
          if (a.permanent) queue = queue.filter((q) => q !== w);
          continue;
        }
        st.active.push(a.job);
        st.mustMeet.add(w.id);
        // Placement already checked the unreserved memory against the same ledger, so this succeeds.
        st.ledger = reserve(st.ledger, { id: w.id, nodeId: a.job.destinationId, bytes: w.memoryBytes }).ledger;
        if (w.antiAffinityGroup !== undefined) (st.groups[a.job.destinationId] ??= []).push(w.antiAffinityGroup);
        refresh(ctx.input, st, a.job.destinationId);
        decisions.set(w.id, a.decision);
        st.picks.set(w.id, {
          decision: a.decision,
          ...(w.maxDowntimeSeconds !== undefined ? { maxDowntimeSeconds: w.maxDowntimeSeconds } : {}),
        });
        records.set(w.id, {
          workloadId: w.id,
          priority: w.priority,
          memoryBytes: w.memoryBytes,
          value: valueOf(w),
          order: ++order,
          destinationId: a.job.destinationId,
          destinationReason: a.destinationReason,
          strategy: a.decision.strategy,
          strategyReason: a.decision.reason,
          startSeconds: st.now,
          predictedBytes: a.decision.predictedBytes,
          willMiss: false,
        });
        queue = queue.filter((q) => q !== w);
        admitted = true;
        break;
      }
      if (!admitted) break;
    }
    peak = Math.max(peak, st.active.length);
    if (st.active.length === 0) break;
    const step = advance(st.active, links, st.now);
    st.now = step.now;
    for (const f of step.finished) {
      const rec = records.get(f.id)!;
      if (rec.destinationId) refresh(ctx.input, st, rec.destinationId);
      rec.transferStartSeconds = f.transferStartedAt;
      rec.predictedFinishSeconds = f.finishedAt;
      st.picks.delete(f.id);
      const d = decisions.get(f.id);
      if (d) {
        const c = moveCost(d, f.transferStartedAt, f.finishedAt, tFix);
        rec.predictedDowntimeSeconds = c.downtime;
        if (c.stall > 0) rec.predictedStallSeconds = c.stall;
      }
      if (f.finishedAt > ctx.deadline + EPS) {
        rec.willMiss = true;
        rec.missReason = 'in flight when planned and predicted to finish after the deadline';
      }
    }
  }
  const scheduled = [...records.values()];
  const missed: PlannedMigration[] = ctx.queue
    .filter((w) => !records.has(w.id))
    .map((w) => ({
      workloadId: w.id,
      priority: w.priority,
      memoryBytes: w.memoryBytes,
      value: valueOf(w),
      willMiss: true,
      missReason: reasons.get(w.id) ?? 'no migration slot became free before the deadline',
    }));
  const workSaved = scheduled.filter((m) => !m.willMiss).reduce((s, m) => s + m.value, 0);
  const makespan = Math.max(ctx.now, ...scheduled.map((m) => m.predictedFinishSeconds ?? ctx.now));
  return { scheduled, missed, workSaved, peakConcurrency: peak, makespan };
}
