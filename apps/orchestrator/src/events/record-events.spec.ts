import type { EvacuationRecord, MigrationRecord, PreCopyRound } from '@spotlift/domain';
import { aMigration, aNode } from '@spotlift/testing';
import { evacuationEvents, migrationEvents, nodeEvents } from './record-events.js';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const types = (events: { type: string }[]) => events.map((e) => e.type);

describe('migrationEvents', () => {
  it('a new record is queued, scoped to its workload, both nodes and its evacuation', () => {
    const [e, ...rest] = migrationEvents(undefined, aMigration({ evacuationId: 'evac-1', requestedStrategy: 'auto' }));
    expect(rest).toEqual([]);
    expect(e).toEqual({
      type: 'migration.queued',
      at: at(0),
      nodes: ['node-a', 'node-b'],
      workload: 'wl-1',
      migration: 'mig-1',
      evacuation: 'evac-1',
      source: 'node-a',
      destination: 'node-b',
      strategy: 'auto',
      transport: 'tcp',
    });
  });

  it('a phase started, then ended with its duration: one event each, never twice', () => {
    const queued = aMigration();
    const running: MigrationRecord = {
      ...structuredClone(queued),
      state: 'running',
      phases: [{ name: 'preflight', startedAt: at(1) }],
      updatedAt: at(1),
    };
    expect(migrationEvents(queued, running)).toEqual([
      expect.objectContaining({ type: 'migration.phase', phase: 'preflight', status: 'started', at: at(1) }),
      expect.objectContaining({ type: 'migration.state', state: 'running', previous: 'queued' }),
    ]);
    const ended = structuredClone(running);
    ended.phases[0] = { ...ended.phases[0]!, endedAt: at(2), durationMs: 1000, ok: true };
    ended.phases.push({ name: 'prepare', startedAt: at(2) });
    expect(migrationEvents(running, ended)).toEqual([
      expect.objectContaining({ phase: 'preflight', status: 'ended', ok: true, durationMs: 1000 }),
      expect.objectContaining({ phase: 'prepare', status: 'started' }),
    ]);
    expect(migrationEvents(ended, structuredClone(ended))).toEqual([]);
  });

  it('a phase of the same name started again (a retry) is a new phase', () => {
    const one = aMigration({ phases: [{ name: 'dump', startedAt: at(1), endedAt: at(2), ok: false }] });
    const two = structuredClone(one);
    two.phases.push({ name: 'dump', startedAt: at(3) });
    expect(migrationEvents(one, two)).toEqual([expect.objectContaining({ phase: 'dump', status: 'started' })]);
  });

  it('pre-copy rounds, lazy fill progress and downtime are published once each', () => {
    const round: PreCopyRound = {
      round: 1,
      pagesScanned: 100,
      pagesWritten: 90,
      pagesSkippedParent: 0,
      bytes: 90 * 4096,
      durationMs: 40,
      frozenMs: 3,
      bandwidthBytesPerSec: 1e9,
    };
    const prev = aMigration({ state: 'running' });
    const next = { ...structuredClone(prev), rounds: [round] };
    expect(migrationEvents(prev, next)).toEqual([expect.objectContaining({ type: 'migration.round', round })]);
    const filling = { ...structuredClone(next), postCopy: { lazyPages: 10, transferred: ['10/90'] } };
    expect(migrationEvents(next, filling)).toEqual([
      expect.objectContaining({ type: 'migration.fill', done: false, progress: filling.postCopy }),
    ]);
    const done: MigrationRecord = {
      ...structuredClone(filling),
      postCopy: { lazyPages: 90, allPagesAt: at(5), pagesAfterResumeMs: 800 },
      downtimeMs: 120,
      frozenAt: at(3),
      resumedAt: at(4),
      state: 'completed',
    };
    expect(types(migrationEvents(filling, done))).toEqual(['migration.fill', 'migration.downtime', 'migration.state']);
    expect(migrationEvents(filling, done)[1]).toMatchObject({ downtimeMs: 120, frozenAt: at(3), resumedAt: at(4) });
    expect(migrationEvents(filling, done)[2]).toMatchObject({ state: 'completed', downtimeMs: 120 });
    expect(migrationEvents(done, structuredClone(done))).toEqual([]);
  });

  it("pre-copy's lazy restore fill counts as fill", () => {
    const prev = aMigration({ state: 'running', precopy: { stopReason: 'x', predictedFinalFreezeMs: 1 } });
    const next = structuredClone(prev);
    next.precopy!.lazyFill = { lazyPages: 3, allPagesAt: at(9) };
    expect(migrationEvents(prev, next)).toEqual([expect.objectContaining({ type: 'migration.fill', done: true })]);
  });

  it('a rollback says why, bounded', () => {
    const prev = aMigration({ state: 'running' });
    const next = { ...structuredClone(prev), state: 'rolled_back' as const, rollbackReason: 'r'.repeat(2000) };
    const [e] = migrationEvents(prev, next);
    expect(e).toMatchObject({ type: 'migration.state', state: 'rolled_back', previous: 'running' });
    expect((e as { rollbackReason: string }).rollbackReason).toHaveLength(500);
  });
});

describe('nodeEvents', () => {
  it('a new node, a state change with the previous state, and nothing for unrelated changes', () => {
    const a = aNode('node-a', { zone: 'z1', spotPool: 'p1' });
    expect(nodeEvents(undefined, a)).toEqual([
      {
        type: 'node.updated',
        at: a.updatedAt,
        nodes: ['node-a'],
        node: {
          state: 'ready',
          lifecycle: 'spot',
          zone: 'z1',
          spotPool: 'p1',
          memAvailableBytes: 8 * 2 ** 30,
          criuOk: true,
        },
      },
    ]);
    const terminating = { ...structuredClone(a), state: 'terminating' as const };
    expect(nodeEvents(a, terminating)).toEqual([
      expect.objectContaining({ previousState: 'ready', node: expect.objectContaining({ state: 'terminating' }) }),
    ]);
    expect(nodeEvents(a, { ...structuredClone(a), labels: { x: 'y' }, updatedAt: at(9) })).toEqual([]);
    const probed = structuredClone(a);
    probed.probe!.memAvailableBytes = 1;
    expect(nodeEvents(a, probed)).toEqual([expect.not.objectContaining({ previousState: expect.anything() })]);
  });
});

function anEvacuation(over: Partial<EvacuationRecord> = {}): EvacuationRecord {
  return {
    id: 'evac-1',
    nodeId: 'node-a',
    notice: {
      source: 'aws',
      kind: 'termination',
      deadline: at(120),
      deadlineEstimated: false,
      receivedAt: at(0),
      reason: 'spot interruption',
      dedupKey: 'k',
      raw: {},
    },
    policy: 'evacuate',
    state: 'planning',
    deadline: at(120),
    replans: 0,
    jobs: [],
    predictedMisses: [],
    events: [],
    createdAt: at(0),
    updatedAt: at(0),
    ...over,
  };
}

describe('evacuationEvents', () => {
  it('a new evacuation: its notice and its state', () => {
    expect(evacuationEvents(undefined, anEvacuation())).toEqual([
      expect.objectContaining({
        type: 'notice',
        nodes: ['node-a'],
        evacuation: 'evac-1',
        source: 'aws',
        kind: 'termination',
        deadline: at(120),
        policy: 'evacuate',
      }),
      expect.objectContaining({ type: 'evacuation.state', state: 'planning' }),
    ]);
  });

  it('the plan, then jobs moving (scoped to their workload and migration), then the end with its outcome', () => {
    const planning = anEvacuation();
    const running = anEvacuation({
      state: 'running',
      plan: {
        deadlineSeconds: 120,
        plannedAtSeconds: 0,
        parallelism: 2,
        ordering: 'o',
        strategies: 's',
        predictedMisses: 0,
        workSaved: 1,
        workTotal: 1,
        upperBound: 1,
        summary: 'one job',
      },
      jobs: [
        { workloadId: 'wl-1', memoryBytes: 1, priority: 5, order: 1, destinationNodeId: 'node-b', state: 'pending' },
      ],
    });
    expect(types(evacuationEvents(planning, running))).toEqual([
      'evacuation.plan',
      'evacuation.job',
      'evacuation.state',
    ]);
    expect(evacuationEvents(planning, running)[0]).toMatchObject({
      jobs: [{ workloadId: 'wl-1', order: 1, destinationNodeId: 'node-b' }],
      replans: 0,
    });
    const moving = structuredClone(running);
    moving.jobs[0] = { ...moving.jobs[0]!, state: 'running', migrationId: 'mig-9' };
    expect(evacuationEvents(running, moving)).toEqual([
      expect.objectContaining({
        type: 'evacuation.job',
        workload: 'wl-1',
        migration: 'mig-9',
        state: 'running',
        previous: 'pending',
      }),
    ]);
    const done = structuredClone(moving);
    done.jobs[0] = { ...done.jobs[0]!, state: 'completed', downtimeMs: 300 };
    done.state = 'completed';
    done.outcome = { moved: 1, missed: 0, failed: 0, beforeDeadline: true, summary: 'all moved' };
    expect(evacuationEvents(moving, done)).toEqual([
      expect.objectContaining({ type: 'evacuation.job', state: 'completed', downtimeMs: 300 }),
      expect.objectContaining({ type: 'evacuation.state', state: 'completed', outcome: done.outcome }),
    ]);
  });

  it('a later notice and an earlier deadline', () => {
    const open = anEvacuation({ state: 'running' });
    const joined = structuredClone(open);
    joined.otherNotices = [{ ...open.notice, source: 'webhook', kind: 'termination', deadline: at(60) }];
    joined.deadlineChanges = [
      { at: at(5), from: at(120), to: at(60), source: 'webhook', kind: 'termination', reason: 'x' },
    ];
    expect(evacuationEvents(open, joined)).toEqual([
      expect.objectContaining({ type: 'notice', source: 'webhook', deadline: at(60) }),
      expect.objectContaining({ type: 'notice.deadline', from: at(120), to: at(60) }),
    ]);
  });
});
