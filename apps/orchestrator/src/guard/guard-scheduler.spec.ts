/**
 * The guard pass over in-memory records, a fixed clock and a stand-in for CheckpointsService (its own
 * checks are checkpoints.service's; here: what the pass asks of it). The lab run: test/guard.e2e-spec.ts.
 */
import { ConflictError, type CheckpointRecord, type GuardStatus, type WorkloadRecord } from '@spotlift/domain';
import { Clock } from '@spotlift/engine';
import { InMemoryRecords, type CheckpointRepository, type NodeRepository } from '@spotlift/store';
import { aNode, aWorkload } from '@spotlift/testing';
import { GuardScheduler } from './guard-scheduler.js';

class FixedClock extends Clock {
  constructor(public t: Date) {
    super();
  }
  now(): Date {
    return this.t;
  }
}

function kit(dumps: ConstructorParameters<typeof GuardScheduler>[6] = {}) {
  const clock = new FixedClock(new Date('2026-12-06T12:00:00.000Z'));
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords() as unknown as NodeRepository;
  const checkpoints = new InMemoryRecords<CheckpointRecord>() as unknown as CheckpointRepository;
  const statuses = new InMemoryRecords<GuardStatus>();
  const created: string[] = [];
  const removed: string[] = [];
  let refuse: string | undefined;
  const service = {
    create: async (body: { workload: string; mode: string }) => {
      if (refuse) throw new ConflictError(refuse);
      const t = clock.now().toISOString();
      const cp = {
        id: `cp-${created.length + 1}`,
        mode: body.mode,
        workloadId: body.workload,
        state: 'queued',
        criu: {},
        bytes: { pages: 0, images: 0 },
        createdAt: t,
        updatedAt: t,
      } as CheckpointRecord;
      created.push(cp.id);
      await checkpoints.save(cp);
      return cp;
    },
    remove: async (id: string) => {
      removed.push(id);
      await checkpoints.delete(id);
      return { id, removed: true as const, imageDir: '' };
    },
  };
  const scheduler = new GuardScheduler(workloads, nodes, checkpoints, statuses, service, clock, dumps);
  const store = async (id: string, frozenTimeUs = 20_000, over: Partial<CheckpointRecord> = {}) => {
    const cp = (await checkpoints.get(id))!;
    await checkpoints.save({
      ...cp,
      state: 'stored',
      criu: { dump: { frozenTimeUs } as never },
      rssBytes: 100,
      ...over,
    });
  };
  const later = (s: number) => (clock.t = new Date(clock.t.getTime() + s * 1000));
  return {
    clock,
    workloads,
    nodes,
    checkpoints,
    statuses,
    created,
    removed,
    scheduler,
    store,
    later,
    refuse: (r?: string) => (refuse = r),
  };
}

describe('GuardScheduler.runOnce', () => {
  it('takes one per interval, never two at once, and keeps only the newest `keep` stored', async () => {
    const k = kit();
    await k.nodes.save(aNode('node-a'));
    await k.workloads.save(aWorkload({ id: 'wl-g', nodeId: 'node-a', guard: { intervalSeconds: 10, keep: 2 } }));
    await k.workloads.save(aWorkload({ id: 'wl-plain', nodeId: 'node-a' }));

    expect(await k.scheduler.runOnce()).toEqual([{ workloadId: 'wl-g', action: 'take', checkpointId: 'cp-1' }]);
    k.later(20);
    expect((await k.scheduler.runOnce())[0]).toMatchObject({
      action: 'wait',
      reason: 'guard checkpoint cp-1 is queued',
    });
    for (const id of ['cp-1', 'cp-2', 'cp-3']) {
      if (id !== 'cp-1') {
        k.later(10);
        expect((await k.scheduler.runOnce())[0]).toMatchObject({ action: 'take', checkpointId: id });
      }
      await k.store(id);
    }
    k.later(5);
    const pass = await k.scheduler.runOnce();
    expect(pass[0]).toMatchObject({ action: 'wait', removed: ['cp-1'] });
    expect(k.created).toEqual(['cp-1', 'cp-2', 'cp-3']);
    expect((await k.checkpoints.list()).map((c) => c.id).sort()).toEqual(['cp-2', 'cp-3']);
  });

  it('skips one predicted above maxFreezeMs with the reason on the status, and tries again an interval later', async () => {
    const k = kit();
    await k.nodes.save(aNode('node-a'));
    await k.workloads.save(
      aWorkload({ id: 'wl-g', nodeId: 'node-a', rssBytes: 100, guard: { intervalSeconds: 10, maxFreezeMs: 50 } }),
    );
    await k.scheduler.runOnce();
    await k.store('cp-1', 80_000);
    k.later(10);
    expect((await k.scheduler.runOnce())[0]).toMatchObject({ action: 'skip' });
    expect((await k.statuses.get('wl-g'))?.skipped?.reason).toMatch(/predicted freeze 80 ms .* above maxFreezeMs 50/);
    k.later(5);
    expect((await k.scheduler.runOnce())[0]!.action).toBe('wait');
    expect(k.created).toEqual(['cp-1']);
  });

  it('weighs the budget against the last dump of the kind planned next: incremental ones go on after a costly full one', async () => {
    // As on the qemu lab's soft-dirty kernel: a full guard dump froze 15 s, an incremental one 1.9 s (64 MiB).
    const k = kit({ storageNodeId: 'node-c' });
    await k.nodes.save(aNode('node-a', { probe: { ...aNode('node-a').probe!, features: { mem_dirty_track: true } } }));
    await k.workloads.save(
      aWorkload({ id: 'wl-g', nodeId: 'node-a', rssBytes: 100, guard: { intervalSeconds: 10, maxFreezeMs: 5_000 } }),
    );
    const taken = { sourceNodeId: 'node-a', storageNodeId: 'node-c', tree: [4242] };
    await k.scheduler.runOnce();
    await k.store('cp-1', 15_000_000, { ...taken, guardChain: { depth: 1, trackMem: true } });
    k.later(10);
    // Planned incremental (cp-1 a safe parent), none measured yet: taken, not predicted from the full one.
    expect((await k.scheduler.runOnce())[0]).toMatchObject({ action: 'take', checkpointId: 'cp-2' });
    await k.store('cp-2', 1_900_000, { ...taken, guardChain: { parentId: 'cp-1', depth: 2, trackMem: true } });
    k.later(10);
    expect((await k.scheduler.runOnce())[0]).toMatchObject({ action: 'take', checkpointId: 'cp-3' });
    await k.store('cp-3', 1_900_000, { ...taken, guardChain: { parentId: 'cp-2', depth: 3, trackMem: true } });
    // Another process now (restarted): the next would be full, predicted from cp-1's 15 s: skipped, saying so.
    await k.workloads.save({ ...(await k.workloads.get('wl-g'))!, pid: 777 });
    k.later(10);
    expect((await k.scheduler.runOnce())[0]).toMatchObject({ action: 'skip' });
    expect((await k.statuses.get('wl-g'))?.skipped?.reason).toMatch(
      /predicted freeze 15000 ms \(from the last full guard checkpoint\) is above maxFreezeMs 5000/,
    );
    expect(k.created).toEqual(['cp-1', 'cp-2', 'cp-3']);
  });

  it('leaves a workload alone while its node is under notice, and records a refused take (claim held)', async () => {
    const k = kit();
    await k.nodes.save(aNode('node-a', { state: 'draining' }));
    await k.workloads.save(aWorkload({ id: 'wl-g', nodeId: 'node-a', guard: { intervalSeconds: 10 } }));
    expect((await k.scheduler.runOnce())[0]).toMatchObject({ action: 'wait', reason: expect.stringMatching(/notice/) });
    await k.nodes.save(aNode('node-a'));
    k.refuse("workload 'wl-g' is migrating in mig-1");
    expect((await k.scheduler.runOnce())[0]).toMatchObject({
      action: 'refused',
      reason: expect.stringMatching(/migrating/),
    });
    expect((await k.statuses.get('wl-g'))?.skipped?.reason).toMatch(/migrating/);
    expect(k.created).toEqual([]);
  });
});
