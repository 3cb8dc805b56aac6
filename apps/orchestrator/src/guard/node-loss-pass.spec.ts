/**
 * The node-loss pass over in-memory records, a fixed clock, a map for the Redis claims and a stand-in for
 * CheckpointsService.restore (its own checks are checkpoints.service's). The lab run: test/guard.e2e-spec.ts.
 */
import {
  ConflictError,
  type CheckpointRecord,
  type EvacuationRecord,
  type GuardStatus,
  type LossTakeover,
  type WorkloadRecord,
} from '@spotlift/domain';
import { Clock } from '@spotlift/engine';
import {
  InMemoryRecords,
  type CheckpointRepository,
  type EvacuationRepository,
  type NodeRepository,
} from '@spotlift/store';
import { aNode, aWorkload } from '@spotlift/testing';
import { NodeLossPass, type LossClaims } from './node-loss-pass.js';

class FixedClock extends Clock {
  constructor(public t: Date) {
    super();
  }
  now(): Date {
    return this.t;
  }
}

function kit() {
  const clock = new FixedClock(new Date('2026-12-07T01:00:00.000Z'));
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords() as unknown as NodeRepository;
  const checkpoints = new InMemoryRecords<CheckpointRecord>() as unknown as CheckpointRepository;
  const evacuations = new InMemoryRecords<EvacuationRecord>() as unknown as EvacuationRepository;
  const statuses = new InMemoryRecords<GuardStatus>();
  const held = new Map<string, string>();
  const claims: LossClaims = {
    get: (key) => Promise.resolve(held.get(key)),
    claim: (key, value) => {
      if (!held.has(key)) held.set(key, value);
      return Promise.resolve(held.get(key)!);
    },
  };
  const restores: { id: string; takeover?: LossTakeover; fenced: boolean }[] = [];
  let refuse: string | undefined;
  const service = {
    restore: async (id: string, _body: object, takeover?: LossTakeover) => {
      if (refuse) throw new ConflictError(refuse);
      // Fencing first: the node is fenced in the store before any restore is asked for.
      restores.push({ id, takeover, fenced: !!(await nodes.get('node-a'))?.fence });
      const cp = (await checkpoints.get(id))!;
      const restore = {
        attempt: 1,
        destinationNodeId: 'node-b',
        destinationReason: 'placement',
        requestedAt: clock.now().toISOString(),
        phases: [],
        ...(takeover ? { takeover } : {}),
      };
      const next = { ...cp, state: 'restoring' as const, restore };
      await checkpoints.save(next);
      return next;
    },
  };
  let answers = true;
  const pass = () =>
    new NodeLossPass(
      workloads,
      nodes,
      checkpoints,
      evacuations,
      statuses,
      service,
      claims,
      () => Promise.resolve(answers),
      clock,
      30_000,
    );
  const guardCp = (id: string, secondsAgo: number): CheckpointRecord => {
    const t = new Date(clock.t.getTime() - secondsAgo * 1000).toISOString();
    return {
      id,
      mode: 'guard',
      workloadId: 'wl-g',
      sourceNodeId: 'node-a',
      storageNodeId: 'node-c',
      imageDir: `/cp/wl-g/${id}`,
      state: 'stored',
      phases: [],
      criu: {},
      bytes: { pages: 0, images: 0 },
      frozenAt: t,
      createdAt: t,
      updatedAt: t,
    };
  };
  return {
    clock,
    workloads,
    nodes,
    checkpoints,
    evacuations,
    statuses,
    held,
    restores,
    pass,
    guardCp,
    silence: (v: boolean) => (answers = !v),
    refuse: (r?: string) => (refuse = r),
    later: (s: number) => (clock.t = new Date(clock.t.getTime() + s * 1000)),
  };
}

async function guardedOnA(k: ReturnType<typeof kit>) {
  await k.nodes.save(aNode('node-a'));
  await k.workloads.save(aWorkload({ id: 'wl-g', nodeId: 'node-a', pid: 4242, guard: { intervalSeconds: 10 } }));
  await k.workloads.save(aWorkload({ id: 'wl-plain', nodeId: 'node-a' }));
  await k.checkpoints.save(k.guardCp('cp-old', 25));
  await k.checkpoints.save(k.guardCp('cp-new', 12));
}

describe('NodeLossPass.runOnce', () => {
  it('a silent node without confirmation: recorded unreachable, nothing restored, the reason on the guard status', async () => {
    const k = kit();
    await guardedOnA(k);
    expect(await k.pass().runOnce()).toMatchObject([{ action: 'wait', reason: "node 'node-a' answers over SSH" }]);
    expect(await k.statuses.get('wl-g')).toBeUndefined();
    k.silence(true);
    await k.pass().runOnce();
    expect(await k.nodes.get('node-a')).toMatchObject({
      state: 'unreachable',
      unreachableSince: k.clock.now().toISOString(),
    });
    k.later(120);
    await k.pass().runOnce();
    expect((await k.statuses.get('wl-g'))?.loss).toMatchObject({
      action: 'wait',
      reason: expect.stringMatching(/not answered for 120 s but is not confirmed gone/),
    });
    expect(k.restores).toEqual([]);
    expect((await k.nodes.get('node-a'))?.fence).toBeUndefined();
    // It answers again: ready, the silence and the shown reason gone.
    k.silence(false);
    await k.pass().runOnce();
    expect(await k.nodes.get('node-a')).toMatchObject({ state: 'ready' });
    expect((await k.nodes.get('node-a'))?.unreachableSince).toBeUndefined();
    expect((await k.statuses.get('wl-g'))?.loss).toBeUndefined();
  });

  it('silent and confirmed: fenced first, then the newest guard checkpoint restored once, across passes and restarts', async () => {
    const k = kit();
    await guardedOnA(k);
    k.silence(true);
    await k.pass().runOnce();
    const node = (await k.nodes.get('node-a'))!;
    await k.nodes.save({ ...node, lost: { source: 'operator', at: k.clock.now().toISOString(), by: 'ops' } });
    k.later(10);
    expect((await k.pass().runOnce())[0]).toMatchObject({
      action: 'wait',
      reason: expect.stringMatching(/below the 30 s threshold/),
    });
    k.later(25);
    const [item] = await k.pass().runOnce();
    expect(item).toMatchObject({ action: 'restore', checkpointId: 'cp-new' });
    expect(item!.reason).toMatch(
      /lost \(operator, silent 35 s\): restoring guard checkpoint cp-new to 'node-b' .*RPO 47\.0 s/,
    );
    expect(k.restores).toEqual([{ id: 'cp-new', takeover: { fromNodeId: 'node-a', stalePid: 4242 }, fenced: true }]);
    expect((await k.nodes.get('node-a'))?.fence?.reason).toBe('lost: operator (ops)');
    // Later passes (this replica or another after a restart) see the restore under way: no second one.
    k.later(5);
    expect((await k.pass().runOnce())[0]).toMatchObject({ action: 'in-progress', checkpointId: 'cp-new' });
    expect(k.restores).toHaveLength(1);
    expect([...k.held.values()]).toEqual(['cp-new']);
  });

  it('a guarded container: its takeover names the container, so the sweeper removes that copy by id', async () => {
    const k = kit();
    const id = 'c'.repeat(64);
    await k.nodes.save(aNode('node-a'));
    await k.workloads.save(
      aWorkload({
        id: 'wl-g',
        nodeId: 'node-a',
        pid: 4242,
        kind: 'podman',
        container: id,
        guard: { intervalSeconds: 10 },
      }),
    );
    await k.checkpoints.save({ ...k.guardCp('cp-ct', 12), kind: 'podman' });
    k.silence(true);
    await k.pass().runOnce();
    const node = (await k.nodes.get('node-a'))!;
    await k.nodes.save({ ...node, lost: { source: 'operator', at: k.clock.now().toISOString(), by: 'ops' } });
    k.later(35);
    expect((await k.pass().runOnce())[0]).toMatchObject({ action: 'restore', checkpointId: 'cp-ct' });
    expect(k.restores).toEqual([
      { id: 'cp-ct', takeover: { fromNodeId: 'node-a', stalePid: 4242, staleContainer: id }, fenced: true },
    ]);
  });

  it('a pass that died between the claim and the restore request: the next one restores the claimed checkpoint', async () => {
    const k = kit();
    await guardedOnA(k);
    k.silence(true);
    await k.pass().runOnce();
    const node = (await k.nodes.get('node-a'))!;
    await k.nodes.save({ ...node, lost: { source: 'operator', at: k.clock.now().toISOString(), by: 'ops' } });
    k.later(40);
    k.refuse('no node can take checkpoint cp-new: no ready node has the memory');
    expect((await k.pass().runOnce())[0]).toMatchObject({
      action: 'refused',
      reason: expect.stringMatching(/no ready node/),
    });
    // The claim stands for cp-new; the older one is never tried instead.
    await k.checkpoints.delete('cp-old');
    k.refuse(undefined);
    expect((await k.pass().runOnce())[0]).toMatchObject({ action: 'restore', checkpointId: 'cp-new' });
    expect(k.restores.map((r) => r.id)).toEqual(['cp-new']);
  });

  it('a notice whose deadline passed confirms the loss of a silent node', async () => {
    const k = kit();
    await guardedOnA(k);
    await k.evacuations.save({
      id: 'ev-1',
      nodeId: 'node-a',
      notice: { deadline: new Date(k.clock.t.getTime() + 20_000).toISOString() },
    } as EvacuationRecord);
    k.silence(true);
    await k.pass().runOnce();
    k.later(15);
    expect((await k.pass().runOnce())[0]!.action).toBe('wait');
    k.later(20);
    expect((await k.pass().runOnce())[0]).toMatchObject({ action: 'restore', checkpointId: 'cp-new' });
    expect((await k.nodes.get('node-a'))?.lost).toMatchObject({ source: 'notice-deadline', by: 'ev-1' });
  });
});
