/**
 * Events from record saves: each function compares the record as this process last saw it with the one being
 * saved and says what happened in between. Pure (no I/O, no clock but the records' own times), so the table of
 * what produces which event is tested without Redis. An unknown previous record (first sight in this process)
 * counts as an empty one: everything the record holds is news.
 */
import type {
  EvacuationRecord,
  EventBody,
  EventScope,
  MigrationRecord,
  NodeRecord,
  NodeSummary,
  PostCopyProgress,
  SpotliftEvent,
} from '@spotlift/domain';

function withScope(scope: EventScope, at: string, bodies: EventBody[]): SpotliftEvent[] {
  return bodies.map((b) => ({ ...scope, ...b, at }));
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function migrationEvents(prev: MigrationRecord | undefined, next: MigrationRecord): SpotliftEvent[] {
  const out: EventBody[] = [];
  if (!prev)
    out.push({
      type: 'migration.queued',
      source: next.sourceNodeId,
      destination: next.destinationNodeId,
      strategy: next.requestedStrategy ?? next.strategy,
      transport: next.transport,
    });
  // Phases are appended and then closed in place; a phase is matched by its name and start time.
  const before = new Map((prev?.phases ?? []).map((p) => [`${p.name}@${p.startedAt}`, p]));
  for (const p of next.phases) {
    const old = before.get(`${p.name}@${p.startedAt}`);
    if (!old) out.push({ type: 'migration.phase', phase: p.name, status: 'started' });
    if (p.endedAt && !old?.endedAt)
      out.push({
        type: 'migration.phase',
        phase: p.name,
        status: 'ended',
        ...(p.ok !== undefined ? { ok: p.ok } : {}),
        ...(p.durationMs !== undefined ? { durationMs: p.durationMs } : {}),
        ...(p.detail ? { detail: p.detail.slice(0, 500) } : {}),
      });
  }
  const seenRounds = new Set((prev?.rounds ?? []).map((r) => r.round));
  for (const r of next.rounds ?? []) if (!seenRounds.has(r.round)) out.push({ type: 'migration.round', round: r });
  const fill = next.postCopy ?? next.precopy?.lazyFill;
  const fillBefore = prev?.postCopy ?? prev?.precopy?.lazyFill;
  if (fill && !same(fill, fillBefore)) out.push({ type: 'migration.fill', progress: fill, done: fillDone(fill) });
  if (next.downtimeMs !== undefined && next.downtimeMs !== prev?.downtimeMs)
    out.push({
      type: 'migration.downtime',
      downtimeMs: next.downtimeMs,
      ...(next.frozenAt ? { frozenAt: next.frozenAt } : {}),
      ...(next.resumedAt ? { resumedAt: next.resumedAt } : {}),
    });
  if (prev && next.state !== prev.state)
    out.push({
      type: 'migration.state',
      state: next.state,
      previous: prev.state,
      strategy: next.strategy,
      ...(next.downtimeMs !== undefined ? { downtimeMs: next.downtimeMs } : {}),
      ...(next.error ? { error: next.error.slice(0, 500) } : {}),
      ...(next.rollbackReason ? { rollbackReason: next.rollbackReason.slice(0, 500) } : {}),
    });
  const nodes = [...new Set([next.sourceNodeId, next.destinationNodeId].filter(Boolean))];
  const scope: EventScope = {
    nodes,
    workload: next.workloadId,
    migration: next.id,
    ...(next.evacuationId ? { evacuation: next.evacuationId } : {}),
  };
  return withScope(scope, next.updatedAt, out);
}

function fillDone(p: PostCopyProgress): boolean {
  return p.allPagesAt !== undefined;
}

export function nodeSummary(n: NodeRecord): NodeSummary {
  return {
    state: n.state,
    lifecycle: n.lifecycle,
    ...(n.zone ? { zone: n.zone } : {}),
    ...(n.spotPool ? { spotPool: n.spotPool } : {}),
    ...(n.probe?.memAvailableBytes !== undefined ? { memAvailableBytes: n.probe.memAvailableBytes } : {}),
    ...(n.probe?.memTotalBytes !== undefined ? { memTotalBytes: n.probe.memTotalBytes } : {}),
    ...(n.probe ? { criuOk: n.probe.criuOk } : {}),
  };
}

export function nodeEvents(prev: NodeRecord | undefined, next: NodeRecord): SpotliftEvent[] {
  const summary = nodeSummary(next);
  if (prev && same(nodeSummary(prev), summary)) return [];
  const body: EventBody = {
    type: 'node.updated',
    node: summary,
    ...(prev && prev.state !== next.state ? { previousState: prev.state } : {}),
  };
  return withScope({ nodes: [next.id] }, next.updatedAt, [body]);
}

export function nodeRemoved(id: string, at: string): SpotliftEvent {
  return { nodes: [id], type: 'node.removed', at };
}

export function evacuationEvents(prev: EvacuationRecord | undefined, next: EvacuationRecord): SpotliftEvent[] {
  const out: EventBody[] = [];
  const notices = [next.notice, ...(next.otherNotices ?? [])];
  const noticesBefore = prev ? 1 + (prev.otherNotices?.length ?? 0) : 0;
  for (const n of notices.slice(noticesBefore))
    out.push({
      type: 'notice',
      source: n.source,
      kind: n.kind,
      deadline: n.deadline,
      reason: n.reason.slice(0, 500),
      policy: next.policy,
    });
  for (const c of (next.deadlineChanges ?? []).slice(prev?.deadlineChanges?.length ?? 0))
    out.push({ type: 'notice.deadline', from: c.from, to: c.to, source: c.source, kind: c.kind });
  if (next.plan && (!same(prev?.plan, next.plan) || prev?.replans !== next.replans))
    out.push({
      type: 'evacuation.plan',
      deadline: next.deadline,
      replans: next.replans,
      plan: next.plan,
      predictedMisses: next.predictedMisses.length,
      jobs: next.jobs.map((j) => ({
        workloadId: j.workloadId,
        ...(j.order !== undefined ? { order: j.order } : {}),
        ...(j.destinationNodeId ? { destinationNodeId: j.destinationNodeId } : {}),
        ...(j.strategy ? { strategy: j.strategy } : {}),
        ...(j.predictedFinishSeconds !== undefined ? { predictedFinishSeconds: j.predictedFinishSeconds } : {}),
        ...(j.predictedDowntimeSeconds !== undefined ? { predictedDowntimeSeconds: j.predictedDowntimeSeconds } : {}),
      })),
    });
  const scope: EventScope = { nodes: [next.nodeId], evacuation: next.id };
  const jobs: SpotliftEvent[] = [];
  const jobsBefore = new Map((prev?.jobs ?? []).map((j) => [j.workloadId, j]));
  for (const j of next.jobs) {
    const old = jobsBefore.get(j.workloadId);
    if (old && old.state === j.state && old.migrationId === j.migrationId) continue;
    const jobScope = { ...scope, workload: j.workloadId, ...(j.migrationId ? { migration: j.migrationId } : {}) };
    jobs.push(
      ...withScope(jobScope, next.updatedAt, [
        {
          type: 'evacuation.job',
          workloadId: j.workloadId,
          state: j.state,
          ...(old ? { previous: old.state } : {}),
          ...(j.migrationId ? { migrationId: j.migrationId } : {}),
          ...(j.destinationNodeId ? { destinationNodeId: j.destinationNodeId } : {}),
          ...(j.downtimeMs !== undefined ? { downtimeMs: j.downtimeMs } : {}),
          ...(j.missReason ? { missReason: j.missReason.slice(0, 500) } : {}),
        },
      ]),
    );
  }
  const state: EventBody[] =
    next.state === prev?.state
      ? []
      : [
          {
            type: 'evacuation.state',
            state: next.state,
            ...(prev ? { previous: prev.state } : {}),
            ...(next.outcome ? { outcome: next.outcome } : {}),
          },
        ];
  // Notices and plan first, then the jobs, then the evacuation's own state (its end comes after its jobs').
  return [...withScope(scope, next.updatedAt, out), ...jobs, ...withScope(scope, next.updatedAt, state)];
}
