import { Logger } from '@nestjs/common';
import {
  ConflictError,
  type CheckpointRecord,
  type EvacuationRecord,
  type MigrationRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import { Clock, type NodeOps } from '@spotlift/engine';
import {
  InMemoryEvacuationRecords,
  InMemoryPostCopyTrials,
  InMemoryRecords,
  type PostCopyTrials,
} from '@spotlift/store';
import { aNode, aWorkload } from '@spotlift/testing';
import type { CheckpointsService, CreateCheckpoint } from '../checkpoints/checkpoints.service.js';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { DestinationRefused, type MigrationRequest, type MigrationsService } from '../migrations/migrations.service.js';
import { EvacuationCoordinator } from './evacuation-coordinator.js';
import { EvacuationSignals, type Timers } from './evacuation-signals.js';

const MIB = 2 ** 20;
const GIB = 2 ** 30;

/** Time that moves only when a test says so. */
class ManualClock extends Clock {
  t = Date.UTC(2026, 11, 6, 12, 0, 0);
  override now(): Date {
    return new Date(this.t);
  }
}

/** Timers that never fire: the coordinator moves only on a signal (the safety net is not under test here). */
const NEVER: Timers = { setTimeout: () => 0, clearTimeout: () => undefined };

/**
 * The world of one coordinator: in-memory records, a MigrationsService that only records, no SSH, a clock
 * that stands still and signals the test gives by hand (ending a migration or a checkpoint signals, as the
 * queue's events would). Nothing here waits on wall-clock time, so nothing can hang under load.
 */
function world(settings: Partial<EvacuationSettings> = {}, pairs: { trials?: PostCopyTrials } = {}) {
  const clock = new ManualClock();
  const signals = new EvacuationSignals(NEVER);
  const evacuations = new InMemoryEvacuationRecords();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<NodeRecord>();
  const created: MigrationRequest[] = [];
  let n = 0;
  const service = {
    async start(request: MigrationRequest): Promise<MigrationRecord> {
      // As MigrationsService: a named destination out of placement now is refused.
      const dest = request.destinationNodeId ? await nodes.get(request.destinationNodeId) : undefined;
      if (dest && dest.state !== 'ready')
        throw new DestinationRefused(dest.id, request.workloadId, `is ${dest.state}: never a destination`);
      created.push(request);
      const now = clock.now().toISOString();
      const m = {
        id: `mig-${++n}`,
        workloadId: request.workloadId,
        sourceNodeId: 'node-a',
        destinationNodeId: request.destinationNodeId!,
        destinationReason: 'requested',
        strategy: request.strategy,
        transport: request.transport,
        state: 'queued',
        phases: [],
        criu: {},
        bytes: { pages: 0, images: 0 },
        evacuationId: request.evacuationId,
        createdAt: now,
        updatedAt: now,
      } as MigrationRecord;
      await migrations.save(m);
      return m;
    },
  } as unknown as MigrationsService;
  // A CheckpointsService that only records; tests end the checkpoints by hand.
  const checkpoints = new InMemoryRecords<CheckpointRecord>();
  const restores: Array<{ id: string; destination?: string; rollback: boolean }> = [];
  /** Set by a test: the next create refuses with it (e.g. a guard checkpoint of the workload under way). */
  const refuse: { next?: Error } = {};
  const checkpointsService = {
    async create(
      body: CreateCheckpoint,
      link: { evacuationId?: string; guardParentId?: string } = {},
    ): Promise<CheckpointRecord> {
      const refusal = refuse.next;
      delete refuse.next;
      if (refusal) throw refusal;
      const now = clock.now().toISOString();
      const cp = {
        id: `cp-${body.workload}`,
        workloadId: body.workload,
        sourceNodeId: 'node-a',
        storageNodeId: body.storage!,
        transport: body.transport,
        imageDir: `/cp/${body.workload}`,
        state: 'queued',
        phases: [],
        criu: {},
        bytes: { pages: 0, images: 0 },
        evacuationId: link.evacuationId,
        ...(link.guardParentId ? { guardChain: { parentId: link.guardParentId, depth: 2, trackMem: false } } : {}),
        createdAt: now,
        updatedAt: now,
      } as CheckpointRecord;
      await checkpoints.save(cp);
      return cp;
    },
    /** Records the request as CheckpointsService.restore does (placement's pick: node-b; a rollback: the source). */
    async restore(id: string, body: { destination?: string }, _t?: unknown, rollback?: { reason: string }) {
      restores.push({ id, ...(body.destination ? { destination: body.destination } : {}), rollback: !!rollback });
      const cp = (await checkpoints.get(id))!;
      if (cp.state !== 'stored') throw new Error(`checkpoint '${id}' is ${cp.state}`);
      cp.state = 'restoring';
      cp.restore = {
        attempt: (cp.restore?.attempt ?? 0) + 1,
        destinationNodeId: rollback ? cp.sourceNodeId : (body.destination ?? 'node-b'),
        destinationReason: rollback ? 'rollback' : 'placement',
        requestedAt: clock.now().toISOString(),
        phases: [],
        ...(rollback ? { rollback: true } : {}),
      };
      await checkpoints.save(cp);
      return cp;
    },
  } as unknown as CheckpointsService;
  // MemAvailable "read over SSH": whatever the stored probe says.
  const ops = { memAvailableBytes: () => Promise.resolve(undefined) } as unknown as NodeOps;
  const config = { evacuation: EvacuationSettings.parse({ safetyMarginSeconds: 0, ...settings }) } as AppConfig;
  const coordinator = new EvacuationCoordinator(
    evacuations,
    migrations,
    workloads,
    nodes,
    ops,
    service,
    clock,
    config,
    checkpointsService,
    checkpoints,
    signals,
    pairs.trials,
  );
  const end = async (id: string, state: MigrationRecord['state'], downtimeMs = 120) => {
    const m = (await migrations.get(id))!;
    Object.assign(m, { state, ...(state === 'completed' ? { downtimeMs, resumedAt: clock.now().toISOString() } : {}) });
    await migrations.save(m);
    signals.wake();
  };
  const endCheckpoint = async (id: string, state: CheckpointRecord['state']) => {
    const cp = (await checkpoints.get(id))!;
    Object.assign(cp, { state, ...(state === 'stored' ? { storedAt: clock.now().toISOString() } : { error: 'boom' }) });
    await checkpoints.save(cp);
    signals.wake();
  };
  return {
    evacuations,
    migrations,
    workloads,
    nodes,
    created,
    coordinator,
    end,
    checkpoints,
    endCheckpoint,
    restores,
    refuse,
    clock,
    signals,
  };
}

async function seed(w: ReturnType<typeof world>, sizes: number[], deadlineSeconds: number): Promise<EvacuationRecord> {
  const probe = (free: number) => ({
    probedAt: '',
    criuOk: true,
    features: {},
    memAvailableBytes: free,
    cpuModel: 'lab',
  });
  await w.nodes.save(aNode('node-a', { state: 'terminating', zone: 'z1', spotPool: 'p1', probe: probe(64 * GIB) }));
  await w.nodes.save(aNode('node-b', { zone: 'z1', spotPool: 'p2', probe: probe(64 * GIB) }));
  await w.nodes.save(aNode('node-c', { zone: 'z1', lifecycle: 'on-demand', probe: probe(64 * GIB) }));
  for (const [i, size] of sizes.entries())
    await w.workloads.save(aWorkload({ id: `wl-${i + 1}`, name: `w${i + 1}`, rssBytes: size }));
  const now = w.clock.now();
  const deadline = new Date(now.getTime() + deadlineSeconds * 1000).toISOString();
  const rec: EvacuationRecord = {
    id: 'evac-1',
    nodeId: 'node-a',
    notice: {
      source: 'aws',
      kind: 'preemption',
      deadline,
      deadlineEstimated: false,
      receivedAt: now.toISOString(),
      reason: 'test',
      dedupKey: 'k',
      raw: {},
    },
    policy: 'evacuate',
    state: 'planning',
    deadline,
    replans: 0,
    jobs: [],
    predictedMisses: [],
    events: [],
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  await w.evacuations.save(rec);
  return rec;
}

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('EvacuationCoordinator', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });
  it('predicts the miss up front, checkpoints it to the storage node, moves what fits, ends partial', async () => {
    const w = world({
      sourceBandwidthBytesPerSec: 100 * MIB,
      streamBandwidthBytesPerSec: 100 * MIB,
      storageNodeId: 'node-c',
    });
    await seed(w, [64 * MIB, 8 * GIB, 32 * MIB], 30);
    const run = w.coordinator.run('evac-1');
    const planned = await until(async () =>
      (await w.evacuations.get('evac-1'))!.plan ? w.evacuations.get('evac-1') : undefined,
    );
    expect(planned.predictedMisses).toEqual([
      expect.objectContaining({
        workloadId: 'wl-2',
        reason: expect.stringMatching(/even alone/),
        fallback: 'checkpoint-to-storage',
        fallbackNodeId: 'node-c',
      }),
    ]);
    expect(planned.storageNote).toMatch(/checkpointed to storage node 'node-c'/);
    expect(planned.storageNote).not.toMatch(/TODO|not implemented/);
    const cp = await until(async () => (await w.checkpoints.get('cp-wl-2')) ?? undefined);
    expect(cp).toMatchObject({ workloadId: 'wl-2', storageNodeId: 'node-c', evacuationId: 'evac-1' });
    const checkpointing = await until(async () => {
      const job = (await w.evacuations.get('evac-1'))!.jobs.find((j) => j.workloadId === 'wl-2')!;
      return job.state === 'checkpointing' ? job : undefined;
    });
    expect(checkpointing.checkpointId).toBe('cp-wl-2');
    await w.endCheckpoint('cp-wl-2', 'stored');
    for (const id of ['wl-1', 'wl-3']) {
      const m = await until(async () => (await w.migrations.list()).find((x) => x.workloadId === id));
      expect(m.evacuationId).toBe('evac-1');
      await w.end(m.id, 'completed', id === 'wl-1' ? 150 : 90);
    }
    // Pages leaving a terminating node are encrypted unless someone chose otherwise (the API's default).
    expect(w.created.map((c) => c.transport)).toEqual(['tls', 'tls']);
    expect(cp.transport).toBe('tls');
    const done = (await run)!;
    expect(done.state).toBe('partial');
    expect(done.outcome).toMatchObject({
      moved: 2,
      missed: 0,
      checkpointed: 1,
      failed: 0,
      beforeDeadline: true,
      maxDowntimeMs: 150,
      totalDowntimeMs: 240,
    });
    expect(
      done.jobs
        .filter((j) => j.state === 'completed')
        .map((j) => j.downtimeMs)
        .sort(),
    ).toEqual([150, 90].sort());
    expect(w.created.map((c) => c.workloadId)).not.toContain('wl-2');
    expect(done.jobs.find((j) => j.workloadId === 'wl-2')).toMatchObject({
      state: 'checkpointed',
      checkpointId: 'cp-wl-2',
      beforeDeadline: true,
    });
    expect(done.outcome!.summary).toMatch(/2\/3 workload\(s\) moved, 1 checkpointed to storage/);
  });

  it('a failed checkpoint leaves the workload missed, with why', async () => {
    const w = world({
      sourceBandwidthBytesPerSec: 100 * MIB,
      streamBandwidthBytesPerSec: 100 * MIB,
      storageNodeId: 'node-c',
    });
    await seed(w, [8 * GIB], 30);
    const run = w.coordinator.run('evac-1');
    await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
    await w.endCheckpoint('cp-wl-1', 'failed');
    const done = (await run)!;
    expect(done.state).toBe('failed');
    expect(done.jobs[0]).toMatchObject({ state: 'missed', checkpointId: 'cp-wl-1', error: 'checkpoint failed: boom' });
    expect(done.outcome).toMatchObject({ moved: 0, missed: 1, failed: 0 });
  });

  describe('a guarded workload the notice is too short for', () => {
    /** wl-1 (8 GiB: missed by the plan) guarded, with a stored guard checkpoint whose take lasted `takeS`. */
    async function guardedMiss(takeS: number) {
      const w = world({
        sourceBandwidthBytesPerSec: 100 * MIB,
        streamBandwidthBytesPerSec: 100 * MIB,
        storageNodeId: 'node-c',
      });
      await seed(w, [8 * GIB], 30);
      const wl = (await w.workloads.get('wl-1'))!;
      await w.workloads.save({ ...wl, guard: { intervalSeconds: 10 } });
      const t = (s: number) => new Date(w.clock.now().getTime() - s * 1000).toISOString();
      await w.checkpoints.save({
        id: 'cp-guard',
        mode: 'guard',
        workloadId: 'wl-1',
        sourceNodeId: 'node-a',
        storageNodeId: 'node-c',
        imageDir: '/cp/wl-1/cp-guard',
        state: 'stored',
        phases: [
          { name: 'dump', startedAt: t(9), ok: true },
          { name: 'commit', startedAt: t(9 - takeS), endedAt: t(9 - takeS), ok: true },
        ],
        criu: {},
        bytes: { pages: 0, images: 0 },
        frozenAt: t(9),
        createdAt: t(10),
        updatedAt: t(9 - takeS),
      });
      return w;
    }

    it('a final checkpoint would not fit: the last guard checkpoint stands in, with the RPO, nothing is dumped', async () => {
      const w = await guardedMiss(45);
      const done = (await w.coordinator.run('evac-1'))!;
      expect(done.jobs[0]).toMatchObject({
        state: 'checkpointed',
        checkpointId: 'cp-guard',
        guardRpoSeconds: 9,
        missReason: expect.stringMatching(/needs about 45.0 s, 30.0 s left: guard checkpoint cp-guard is the copy/),
      });
      expect(await w.checkpoints.get('cp-wl-1')).toBeUndefined();
      expect(done.outcome).toMatchObject({ checkpointed: 1, missed: 0 });
    });

    it('a final checkpoint fits: it is taken; when it fails, the guard checkpoint stands in', async () => {
      const w = await guardedMiss(5);
      const run = w.coordinator.run('evac-1');
      await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
      await w.endCheckpoint('cp-wl-1', 'failed');
      const done = (await run)!;
      expect(done.jobs[0]).toMatchObject({
        state: 'checkpointed',
        checkpointId: 'cp-guard',
        missReason: expect.stringMatching(
          /the final checkpoint cp-wl-1 failed \(boom\); .*guard checkpoint cp-guard is the copy/,
        ),
      });
      expect(done.events.map((e) => e.msg).join('\n')).toMatch(
        /wl-1 \(guarded\): a final checkpoint fits: .* took 5.0 s/,
      );
    });
  });

  describe('the guard path: a last checkpoint on the guard chain, restored at once (guard-restore)', () => {
    /**
     * wl-1 (8 GiB: no live move fits 30 s at 100 MiB/s) guarded every 10 s, its guard checkpoint of this very
     * process 9 s old on node-c; node-a tracks dirty memory when `softDirty`, the workload dirties 1 MiB/s.
     */
    async function guarded(softDirty: boolean) {
      const w = world({
        sourceBandwidthBytesPerSec: 100 * MIB,
        streamBandwidthBytesPerSec: 100 * MIB,
        storageNodeId: 'node-c',
        defaultDirtyRateBytesPerSec: MIB,
      });
      await seed(w, [8 * GIB], 30);
      const a = (await w.nodes.get('node-a'))!;
      await w.nodes.save({ ...a, probe: { ...a.probe!, features: { mem_dirty_track: softDirty } } });
      const wl = (await w.workloads.get('wl-1'))!;
      await w.workloads.save({ ...wl, guard: { intervalSeconds: 10 } });
      const t = (s: number) => new Date(w.clock.now().getTime() - s * 1000).toISOString();
      await w.checkpoints.save({
        id: 'cp-guard',
        mode: 'guard',
        workloadId: 'wl-1',
        sourceNodeId: 'node-a',
        storageNodeId: 'node-c',
        imageDir: '/cp/wl-1/cp-guard',
        state: 'stored',
        tree: [wl.pid],
        phases: [],
        criu: {},
        bytes: { pages: 0, images: 0 },
        frozenAt: t(9),
        createdAt: t(10),
        updatedAt: t(8),
      });
      return w;
    }
    const job = async (w: ReturnType<typeof world>) => (await w.evacuations.get('evac-1'))!.jobs[0]!;
    /** The checkpoint as the flow leaves it: taken (stored), restored, or a failed restore undone (stored again). */
    const set = async (w: ReturnType<typeof world>, over: Partial<CheckpointRecord>) => {
      const cp = (await w.checkpoints.get('cp-wl-1'))!;
      await w.checkpoints.save({
        ...cp,
        ...over,
        restore: over.restore ? { ...cp.restore!, ...over.restore } : cp.restore,
      });
      w.signals.wake();
    };

    it('the plan picks the guard path; the last checkpoint builds on the guard one, is restored elsewhere, the job says so', async () => {
      const w = await guarded(true);
      const run = w.coordinator.run('evac-1');
      const cp = await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
      const planned = (await w.evacuations.get('evac-1'))!;
      expect(planned.predictedMisses[0]).toMatchObject({ fallback: 'guard-restore', fallbackNodeId: 'node-c' });
      expect(planned.storageNote).toBe(
        '1 guarded workload(s) cannot move live in time: they take the guard path (wl-1: guard-restore)',
      );
      // A storage checkpoint (the source stops at its dump), on top of the guard chain, to the guard's storage node.
      expect(cp).toMatchObject({ storageNodeId: 'node-c', guardChain: { parentId: 'cp-guard' } });
      expect(cp.mode).toBeUndefined();
      expect(await job(w)).toMatchObject({
        state: 'checkpointing',
        strategy: 'guard-restore',
        guardParentId: 'cp-guard',
      });
      expect((await job(w)).guardPath).toMatchObject({ checkpointId: 'cp-guard', incremental: true, rpoSeconds: 0 });
      // Not restored before the images are stored (the source's commit).
      expect(w.restores).toEqual([]);
      const frozenAt = w.clock.now().toISOString();
      w.clock.t += 2_000;
      await set(w, {
        state: 'stored',
        storedAt: w.clock.now().toISOString(),
        frozenAt,
        bytes: { pages: 9 * MIB, images: 0 },
      });
      await until(async () => ((await job(w)).state === 'restoring' ? true : undefined));
      expect(w.restores).toEqual([{ id: 'cp-wl-1', rollback: false }]);
      w.clock.t += 3_000;
      await set(w, {
        state: 'restored',
        restore: {
          resumedAt: w.clock.now().toISOString(),
          imageBytes: 8 * GIB + 9 * MIB,
        } as CheckpointRecord['restore'],
      });
      const done = (await run)!;
      expect(done.jobs[0]).toMatchObject({
        state: 'completed',
        strategy: 'guard-restore',
        destinationNodeId: 'node-b',
        guardParentId: 'cp-guard',
        guardRpoSeconds: 0,
        guardBytes: { pages: 9 * MIB, restored: 8 * GIB + 9 * MIB },
        downtimeMs: 5_000,
        beforeDeadline: true,
      });
      expect(done.outcome).toMatchObject({ moved: 1, missed: 0, failed: 0 });
      expect(w.created).toEqual([]);
    });

    it('a failed restore elsewhere rolls back on the source, only once its copy is proven gone (one copy)', async () => {
      const w = await guarded(true);
      const run = w.coordinator.run('evac-1');
      await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
      await set(w, { state: 'stored', storedAt: w.clock.now().toISOString() });
      await until(async () => ((await job(w)).state === 'restoring' ? true : undefined));
      // The restore failed but its copy is not proven dead yet: the flow keeps it restoring; nothing may start.
      // A tick that read it has run once the record carries this clock time (every open tick saves it).
      w.clock.t += 1;
      const seen = w.clock.now().toISOString();
      await set(w, { restore: { error: 'verify failed' } as CheckpointRecord['restore'] });
      await until(async () => ((await w.evacuations.get('evac-1'))!.updatedAt === seen ? true : undefined));
      expect(w.restores).toHaveLength(1);
      expect((await job(w)).state).toBe('restoring');
      // Undone (the restored copy killed): stored again, so it goes back to the source.
      await set(w, { state: 'stored' });
      await until(() => (w.restores.length === 2 ? true : undefined));
      expect(w.restores[1]).toEqual({ id: 'cp-wl-1', rollback: true });
      expect((await w.checkpoints.get('cp-wl-1'))!.restore).toMatchObject({
        destinationNodeId: 'node-a',
        rollback: true,
      });
      await set(w, { state: 'restored' });
      const done = (await run)!;
      expect(done.jobs[0]).toMatchObject({
        state: 'rolled_back',
        error: expect.stringMatching(/restored back on node-a after the restore elsewhere failed/),
      });
      expect(done.events.map((e) => e.msg).join('\n')).toMatch(
        /the restore on node-b failed \(verify failed\) and was undone/,
      );
    });

    it('the rollback failing too leaves the stored images the one copy: no third restore', async () => {
      const w = await guarded(true);
      const run = w.coordinator.run('evac-1');
      await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
      await set(w, { state: 'stored' });
      await until(() => (w.restores.length === 1 ? true : undefined));
      await set(w, { state: 'stored', restore: { error: 'x' } as CheckpointRecord['restore'] });
      await until(() => (w.restores.length === 2 ? true : undefined));
      await set(w, { state: 'stored', restore: { error: 'y' } as CheckpointRecord['restore'] });
      const done = (await run)!;
      expect(w.restores).toHaveLength(2);
      expect(done.jobs[0]).toMatchObject({ state: 'checkpointed', error: expect.stringMatching(/is the one copy/) });
    });

    it('a guard checkpoint under way when the notice came: the last one waits for it, then is taken', async () => {
      const w = await guarded(true);
      w.refuse.next = new ConflictError("workload 'wl-1' is being checkpointed in cp-busy", { checkpoint: 'cp-busy' });
      const run = w.coordinator.run('evac-1');
      await until(async () => ((await w.evacuations.get('evac-1'))!.jobs[0]?.error ? true : undefined));
      expect(await job(w)).toMatchObject({
        state: 'missed',
        error: 'the last checkpoint waits for cp-busy, under way',
      });
      // The guard checkpoint's job ended (a checkpoint job's end wakes the coordinator).
      w.signals.wake();
      await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
      expect(await job(w)).toMatchObject({ state: 'checkpointing', strategy: 'guard-restore' });
      expect((await job(w)).error).toBeUndefined();
      await set(w, { state: 'stored' });
      await until(async () => ((await job(w)).state === 'restoring' ? true : undefined));
      await set(w, {
        state: 'restored',
        restore: { resumedAt: w.clock.now().toISOString() } as CheckpointRecord['restore'],
      });
      expect((await run)!.jobs[0]!.state).toBe('completed');
    });

    it('a guard take under way past the deadline: the last checkpoint never starts, the guard checkpoint stands in', async () => {
      const w = await guarded(true);
      w.refuse.next = new ConflictError('busy', { checkpoint: 'cp-busy' });
      const run = w.coordinator.run('evac-1');
      await until(async () => ((await w.evacuations.get('evac-1'))!.jobs[0]?.error ? true : undefined));
      w.clock.t += 31_000;
      w.signals.wake();
      const done = (await run)!;
      expect(await w.checkpoints.get('cp-wl-1')).toBeUndefined();
      expect(done.jobs[0]).toMatchObject({
        state: 'checkpointed',
        checkpointId: 'cp-guard',
        guardRpoSeconds: 40,
        missReason: expect.stringMatching(/the deadline came before the last checkpoint could start/),
      });
    });

    it('the last checkpoint fails: the guard checkpoint stands in with its age as RPO', async () => {
      const w = await guarded(true);
      const run = w.coordinator.run('evac-1');
      await until(async () => (await w.checkpoints.get('cp-wl-1')) ?? undefined);
      w.clock.t += 1_000;
      await w.endCheckpoint('cp-wl-1', 'failed');
      const done = (await run)!;
      expect(w.restores).toEqual([]);
      expect(done.jobs[0]).toMatchObject({
        state: 'checkpointed',
        checkpointId: 'cp-guard',
        guardRpoSeconds: 10,
        missReason: expect.stringMatching(
          /the last checkpoint cp-wl-1 failed \(boom\): guard checkpoint cp-guard is the copy/,
        ),
      });
    });

    it('without soft-dirty the last checkpoint is all 8 GiB and cannot fit: the guard checkpoint stands in, nothing dumped', async () => {
      const w = await guarded(false);
      const done = (await w.coordinator.run('evac-1'))!;
      expect(await w.checkpoints.get('cp-wl-1')).toBeUndefined();
      expect(done.jobs[0]).toMatchObject({
        state: 'checkpointed',
        fallback: 'guard-checkpoint',
        checkpointId: 'cp-guard',
        guardRpoSeconds: 9,
        missReason: expect.stringMatching(/a full last checkpoint .* stands in as it is/),
      });
    });
  });

  it('keeps at most the plan parallelism in flight and starts the next as one ends', async () => {
    const w = world({ maxParallel: 1 });
    await seed(w, [16 * MIB, 32 * MIB, 64 * MIB], 120);
    const run = w.coordinator.run('evac-1');
    for (let i = 1; i <= 3; i++) {
      await until(() => (w.created.length === i ? true : undefined));
      // Parked until the next signal: everything it would start now, it has started.
      await until(() => (w.signals.waiting === 1 ? true : undefined));
      expect(w.created).toHaveLength(i);
      await w.end(`mig-${i}`, 'completed');
    }
    const done = (await run)!;
    expect(done.state).toBe('completed');
    expect(done.plan?.parallelism).toBe(1);
    expect(done.replans).toBe(3);
  });

  it('skips a planned job whose workload another migration moved off the node meanwhile, starting nothing for it', async () => {
    const w = world({ maxParallel: 1 });
    await seed(w, [16 * MIB, 32 * MIB], 120);
    const run = w.coordinator.run('evac-1');
    await until(() => (w.created.length === 1 ? true : undefined));
    // While the first moves, a manual migration (elsewhere) moves the second to node-c.
    await w.workloads.update('wl-1', (x) => void (x.nodeId = 'node-c'));
    await w.workloads.update('wl-2', (x) => void (x.nodeId = 'node-c'));
    await w.end('mig-1', 'completed');
    const done = (await run)!;
    expect(w.created).toHaveLength(1);
    const skipped = done.jobs.find((j) => j.state === 'skipped');
    expect(skipped?.error).toMatch(/already left node-a: it runs on 'node-c' now/);
  });

  it('re-plans a rolled-back job away from the node that failed it', async () => {
    const w = world();
    await seed(w, [64 * MIB], 120);
    const run = w.coordinator.run('evac-1');
    await until(() => (w.created.length === 1 ? true : undefined));
    const first = w.created[0]!.destinationNodeId!;
    await w.end('mig-1', 'rolled_back');
    await until(() => (w.created.length === 2 ? true : undefined));
    expect(w.created[1]!.destinationNodeId).not.toBe(first);
    await w.end('mig-2', 'completed');
    const done = (await run)!;
    expect(done.state).toBe('completed');
    expect(done.jobs[0]).toMatchObject({ migrationId: 'mig-2', earlierMigrationIds: ['mig-1'], state: 'completed' });
  });

  it('re-plans for an earlier deadline a later notice brought: what can no longer make it is missed', async () => {
    const w = world({ maxParallel: 1 });
    await seed(w, [64 * MIB, 64 * MIB, 64 * MIB], 120);
    const run = w.coordinator.run('evac-1');
    await until(() => (w.created.length === 1 ? true : undefined));
    const before = (await w.evacuations.get('evac-1'))!;
    expect(before.plan!.predictedMisses).toBe(0);
    // What EvacuationsService.join writes when a notice with an earlier deadline joins (then it nudges).
    const soon = new Date(w.clock.t + 2_000).toISOString();
    await w.evacuations.update('evac-1', (e) => {
      e.deadlineChanges = [
        { at: w.clock.now().toISOString(), from: e.deadline, to: soon, source: 'aws', kind: 'preemption', reason: 'r' },
      ];
      e.deadline = soon;
    });
    w.signals.wake();
    const replanned = await until(async () => {
      const e = (await w.evacuations.get('evac-1'))!;
      return e.deadlineChanges?.[0]?.replannedAt ? e : undefined;
    });
    expect(replanned.deadline).toBe(soon);
    expect(replanned.plan!.deadlineSeconds).toBeLessThan(3);
    expect(replanned.plan!.predictedMisses).toBe(2);
    expect(replanned.jobs.filter((j) => j.state === 'missed').map((j) => j.workloadId)).toHaveLength(2);
    expect(replanned.events.map((e) => e.msg)).toContainEqual(
      expect.stringMatching(/^re-planned for the earlier deadline/),
    );
    // The earlier deadline comes and goes while mig-1 runs.
    w.clock.t += 3_000;
    await w.end('mig-1', 'completed');
    const done = (await run)!;
    expect(w.created).toHaveLength(1);
    expect(done.outcome).toMatchObject({ moved: 1, missed: 2 });
    expect(done.deadline).toBe(soon);
  });

  it('slack and a stored post-copy trial: one at a time by post-copy; the record shows what ran and what was predicted', async () => {
    const trials = new InMemoryPostCopyTrials();
    for (const to of ['node-b', 'node-c'])
      await trials.put(
        { sourceNodeId: 'node-a', destinationNodeId: to, ok: true, at: '2026-01-01T00:00:00.000Z', durationMs: 900 },
        3_600_000,
      );
    const w = world({}, { trials });
    await seed(w, [512 * MIB, 512 * MIB, 512 * MIB], 120);
    const run = w.coordinator.run('evac-1');
    for (let i = 1; i <= 3; i++) {
      await until(() => (w.created.length === i ? true : undefined));
      await until(() => (w.signals.waiting === 1 ? true : undefined));
      expect(w.created).toHaveLength(i);
      w.clock.t += 2_000;
      await w.end(`mig-${i}`, 'completed', 300);
    }
    const done = (await run)!;
    expect(w.created.map((c) => c.strategy)).toEqual(['post-copy', 'post-copy', 'post-copy']);
    // Why no trial ran first: both pairs' trials were stored ahead of the notice, each with its time.
    const stored = done.events.find((e) => /no post-copy trial run first/.test(e.msg))?.msg;
    expect(stored).toMatch(/node-a->node-b ok at 2026-01-01T00:00:00.000Z \(\d+\.\d s before the notice\)/);
    expect(stored).toMatch(/node-a->node-c ok at 2026-01-01T00:00:00.000Z/);
    expect(done.jobs[0]!.explanation).toMatch(/alone: one at a time/);
    expect(done.plan?.objective?.kind).toBe('downtime');
    expect(done.executed).toMatchObject({ peakConcurrency: 1, totalDowntimeMs: 900, finishSeconds: 6 });
    expect(done.executed!.summary).toMatch(/up to 1 at once \(3 post-copy\)/);
    for (const [i, j] of done.executed!.jobs.entries()) {
      expect(j).toMatchObject({ concurrentWith: [], startSeconds: 2 * i, finishSeconds: 2 * (i + 1), downtimeMs: 300 });
      expect(j.predictedDowntimeMs).toBe(100);
    }
  });

  it('a post-copy job ends when its last page is in, not at resume: the source serves pages until then', async () => {
    const trials = new InMemoryPostCopyTrials();
    await trials.put(
      {
        sourceNodeId: 'node-a',
        destinationNodeId: 'node-b',
        ok: true,
        at: '2026-01-01T00:00:00.000Z',
        durationMs: 900,
      },
      3_600_000,
    );
    const w = world({}, { trials });
    await seed(w, [512 * MIB], 30);
    const run = w.coordinator.run('evac-1');
    await until(() => (w.signals.waiting === 1 ? true : undefined));
    w.clock.t += 2_000;
    // Resumed 2 s after the plan, every page in 40 s later: past the 30 s deadline.
    const m = (await w.migrations.get('mig-1'))!;
    m.postCopy = { pagesAfterResumeMs: 40_000 };
    await w.migrations.save(m);
    await w.end('mig-1', 'completed', 300);
    const done = (await run)!;
    expect(w.created.map((c) => c.strategy)).toEqual(['post-copy']);
    expect(done.jobs[0]).toMatchObject({ timeToAllPagesMs: 40_000, beforeDeadline: false });
    expect(Date.parse(done.jobs[0]!.endedAt!) - Date.parse(done.jobs[0]!.resumedAt!)).toBe(40_000);
    expect(done.executed!.finishSeconds).toBe(42);
  });

  it('no slack: all three at once by stop-and-copy, and the executed plan says three ran at once', async () => {
    const w = world({}, { trials: new InMemoryPostCopyTrials() });
    await seed(w, [GIB, GIB, GIB], 9);
    const run = w.coordinator.run('evac-1');
    await until(() => (w.created.length === 3 ? true : undefined));
    expect(w.created.map((c) => c.strategy)).toEqual(['stop-and-copy', 'stop-and-copy', 'stop-and-copy']);
    w.clock.t += 7_000;
    for (let i = 1; i <= 3; i++) await w.end(`mig-${i}`, 'completed', 6_000);
    const done = (await run)!;
    expect(done.jobs[0]!.explanation).toMatch(/alongside .* would save less/);
    expect(done.executed!.peakConcurrency).toBe(3);
    expect(done.executed!.summary).toMatch(/up to 3 at once \(3 stop-and-copy\)/);
    expect(done.executed!.jobs.map((j) => j.concurrentWith.length)).toEqual([2, 2, 2]);
  });

  it('counts the memory migrations in flight will take on a destination (from the in-flight index)', async () => {
    const w = world();
    await seed(w, [8 * GIB], 60);
    // 60 GiB bound for node-b from elsewhere, still queued: node-b has 4 GiB left for this plan. A finished one
    // to node-b takes nothing any more.
    await w.workloads.save(aWorkload({ id: 'big', nodeId: 'node-z', rssBytes: 60 * GIB }));
    await w.workloads.save(aWorkload({ id: 'old', nodeId: 'node-b', rssBytes: 60 * GIB, pid: 99 }));
    const inFlight = { workloadId: 'big', sourceNodeId: 'node-z', destinationNodeId: 'node-b', state: 'queued' };
    const finished = { workloadId: 'old', sourceNodeId: 'node-z', destinationNodeId: 'node-c', state: 'completed' };
    for (const [id, m] of [
      ['mig-x', inFlight],
      ['mig-y', finished],
    ] as const)
      await w.migrations.save({
        id,
        phases: [],
        bytes: { pages: 0, images: 0 },
        createdAt: '',
        ...m,
      } as unknown as MigrationRecord);
    void w.coordinator.run('evac-1');
    await until(() => (w.created.length === 1 ? true : undefined));
    expect(w.created[0]!.destinationNodeId).toBe('node-c');
  });

  it('calibrates the model from the newest completed migrations', async () => {
    const w = world();
    await seed(w, [GIB], 60);
    const t = (s: number) => new Date(w.clock.t - 3_600_000 + s * 1000).toISOString();
    for (let i = 0; i < 3; i++)
      await w.migrations.save({
        id: `done-${i}`,
        workloadId: 'gone',
        sourceNodeId: 'node-x',
        destinationNodeId: 'node-y',
        strategy: 'stop-and-copy',
        state: 'completed',
        phases: [],
        bytes: { pages: 100 * MIB, images: 0 },
        throughput: { pagesBytesPerSec: 100 * MIB },
        downtimeMs: 1_500,
        createdAt: t(i * 10),
        resumedAt: t(i * 10 + 4),
      } as unknown as MigrationRecord);
    void w.coordinator.run('evac-1');
    const planned = await until(async () =>
      (await w.evacuations.get('evac-1'))!.plan ? w.evacuations.get('evac-1') : undefined,
    );
    // 4 s each, 1 s of it pages: 3 s without pages; a 1.5 s freeze, 1 s of it pages: 0.5 s fixed.
    expect(planned.events.map((e) => e.msg)).toContainEqual(
      expect.stringMatching(
        /^model calibrated from 3 completed migration\(s\) .*: 3\.00 s without pages per migration, 0\.50 s of freeze/,
      ),
    );
  });

  it('a re-plan after a failed move leaves out destinations a notice took since the plan (states read again)', async () => {
    const w = world();
    await seed(w, [GIB], 60);
    const run = w.coordinator.run('evac-1');
    await until(() => (w.created.length === 1 ? true : undefined));
    const first = w.created[0]!.destinationNodeId!;
    // Every other destination got its own notice meanwhile (a reclaim of the whole pool).
    for (const n of await w.nodes.list())
      if (n.id !== 'node-a' && n.id !== first) await w.nodes.save({ ...n, state: 'terminating' });
    await w.end('mig-1', 'failed');
    const done = (await run)!;
    expect(w.created).toHaveLength(1);
    expect(done.jobs[0]).toMatchObject({ workloadId: 'wl-1' });
    expect(done.jobs[0]!.state).not.toBe('completed');
  });

  it('a planned destination that left placement before its start (its own notice) is re-planned, not started on', async () => {
    const w = world();
    await seed(w, [GIB], 60);
    // The plan's read of the fleet was made a moment before node-b's own notice: it still shows node-b ready.
    const before = await w.nodes.list();
    w.nodes.list = () => Promise.resolve(before.map((n) => ({ ...n })));
    const b = (await w.nodes.get('node-b'))!;
    await w.nodes.save({ ...b, state: 'terminating' });
    void w.coordinator.run('evac-1');
    await until(() => (w.created.length === 1 ? true : undefined));
    expect(w.created[0]!.destinationNodeId).toBe('node-c');
    const rec = (await w.evacuations.get('evac-1'))!;
    expect(rec.events.map((e) => e.msg)).toContainEqual(
      "wl-1: destination 'node-b' cannot take workload 'wl-1': is terminating: never a destination; re-planning it elsewhere",
    );
  });

  it('ends at once with nothing to move', async () => {
    const w = world();
    await seed(w, [], 60);
    const done = (await w.coordinator.run('evac-1'))!;
    expect(done).toMatchObject({ state: 'completed', jobs: [], outcome: { moved: 0 } });
  });
});
