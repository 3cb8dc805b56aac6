/**
 * POST /migrations and POST /migrations/:id/cancel with fakes around the services: the body's shape, the
 * destination filter, the per-process claim (one job per process, a 409 naming the holder, released when
 * nothing was queued, taken over from a job that ended) and the cancel's commit-point rule.
 */
import { ConflictError, type MigrationRecord, type NodeRecord, type WorkloadRecord } from '@spotlift/domain';
import { SystemClock } from '@spotlift/engine';
import { InMemoryMigrationFlags, InMemoryRecords, InMemoryWorkloadClaims } from '@spotlift/store';
import { FakeNodeOps, aMigration, aNode, aWorkload } from '@spotlift/testing';
import { MigrationCancelService } from './migration-cancel.service.js';
import type { MigrationQueue } from './migration-queue.js';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { CreateMigration, MigrationsService } from './migrations.service.js';

const IDENTITY = { bootId: 'b00t', pidNs: '4026531836', startTime: '12345' };
const KEY = 'proc:b00t:4026531836:4242:12345';

function setup(opts: { nodes?: NodeRecord[]; workloads?: WorkloadRecord[]; tree?: boolean } = {}) {
  const migrations = new InMemoryRecords<MigrationRecord>({ versioned: true });
  const workloads = new InMemoryRecords<WorkloadRecord>({ versioned: true });
  const nodes = new InMemoryRecords<NodeRecord>();
  for (const n of opts.nodes ?? [aNode('node-a'), aNode('node-b'), aNode('node-c')]) void nodes.save(n);
  for (const w of opts.workloads ?? [aWorkload({ identity: IDENTITY })]) void workloads.save(w);
  const enqueued: string[] = [];
  const removable = new Set<string>();
  const queue = {
    enqueue: (id: string) => (enqueued.push(id), Promise.resolve()),
    removeIfIdle: (id: string) => Promise.resolve(removable.has(id) ? ('removed' as const) : ('held' as const)),
  } as unknown as MigrationQueue;
  // node-a runs the workload's process (pid 4242, 64 MiB) unless the test says it is gone.
  const ops = new FakeNodeOps({
    'node-a': { processes: opts.tree === false ? [] : [{ pid: 4242, rssBytes: 64 * 2 ** 20 }] },
  });
  const claims = new InMemoryWorkloadClaims();
  const flags = new InMemoryMigrationFlags();
  const clock = new SystemClock();
  const config = { evacuation: EvacuationSettings.parse({}) } as AppConfig;
  const service = new MigrationsService(migrations, workloads, nodes, ops.asNodeOps(), queue, clock, claims, config);
  const cancels = new MigrationCancelService(migrations, flags, queue, clock, claims);
  return { service, cancels, migrations, workloads, claims, flags, enqueued, removable, ops };
}

const body = (over: Record<string, unknown> = {}) => CreateMigration.parse({ workload: 'wl-1', ...over });

describe('POST /migrations body', () => {
  it('refuses unknown fields (strict), naming them', () => {
    const res = CreateMigration.safeParse({ workload: 'wl-1', destinaton: 'node-b' });
    expect(res.success).toBe(false);
    expect(res.error?.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['destinaton'] });
  });
});

describe('MigrationsService.create: destinations', () => {
  it.each(['draining', 'terminating'] as const)('a %s destination asked for by name is a 400', async (state) => {
    const kit = setup({ nodes: [aNode('node-a'), aNode('node-b', { state })] });
    await expect(kit.service.create(body({ destination: 'node-b' }))).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringMatching(new RegExp(`^destination 'node-b' cannot take workload 'wl-1': is ${state}\\b`)),
    });
    expect(kit.enqueued).toEqual([]);
    expect(await kit.claims.holder(KEY)).toBeUndefined();
  });

  it('a draining node is never chosen, even with the most free memory', async () => {
    const big = { probedAt: 'x', criuOk: true, criuVersion: '4.2.1', features: {}, memAvailableBytes: 64 * 2 ** 30 };
    const kit = setup({
      nodes: [aNode('node-a'), aNode('node-b', { state: 'draining', probe: big }), aNode('node-c')],
    });
    const m = await kit.service.create(body());
    expect(m.destinationNodeId).toBe('node-c');
    expect(m.destinationReason).toMatch(/^placement among 1 suitable node\(s\): node-c \(score [\d.]+\): /);
  });

  it('the source itself asked for by name is a 400 saying so', async () => {
    const kit = setup();
    await expect(kit.service.create(body({ destination: 'node-a' }))).rejects.toMatchObject({
      code: 'bad_request',
      message: "destination 'node-a' cannot take workload 'wl-1': it is the source node",
    });
  });

  it('chooses through libs/placement: the same zone and another spot pool win over more free memory', async () => {
    const probe = (gib: number) => ({
      probedAt: 'x',
      criuOk: true,
      criuVersion: '4.2.1',
      features: {},
      memAvailableBytes: gib * 2 ** 30,
    });
    const kit = setup({
      nodes: [
        aNode('node-a', { zone: 'z1', spotPool: 'p1' }),
        aNode('node-b', { zone: 'z2', spotPool: 'p1', probe: probe(64) }),
        aNode('node-c', { zone: 'z1', spotPool: 'p2', probe: probe(4) }),
      ],
    });
    const m = await kit.service.create(body());
    expect(m.destinationNodeId).toBe('node-c');
    expect(m.destinationReason).toMatch(
      /^placement among 2 suitable node\(s\): node-c \(score [\d.]+; next node-b [\d.]+\): same zone z1/,
    );
  });

  it('a named node with another CPU model is left to preflight (criu cpuinfo check); unnamed, a same-model node wins', async () => {
    const probe = (cpuModel: string) => ({
      probedAt: 'x',
      criuOk: true,
      criuVersion: '4.2.1',
      features: {},
      memAvailableBytes: 8 * 2 ** 30,
      cpuModel,
    });
    const kit = setup({
      nodes: [
        aNode('node-a', { probe: probe('EPYC') }),
        aNode('node-b', { probe: probe('Xeon') }),
        aNode('node-c', { probe: probe('EPYC') }),
      ],
    });
    const named = await kit.service.create(body({ destination: 'node-b' }));
    expect(named).toMatchObject({ destinationNodeId: 'node-b', destinationReason: 'requested' });
    await kit.migrations.save({ ...named, state: 'completed' });
    const chosen = await kit.service.create(body());
    expect(chosen.destinationNodeId).toBe('node-c');
  });

  it('a node without the memory for the workload and its headroom is refused by name, and never chosen', async () => {
    const small = { probedAt: 'x', criuOk: true, criuVersion: '4.2.1', features: {}, memAvailableBytes: 100 * 2 ** 20 };
    const kit = setup({
      nodes: [aNode('node-a'), aNode('node-b', { probe: small }), aNode('node-c', { probe: small })],
    });
    await expect(kit.service.create(body({ destination: 'node-b' }))).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringMatching(/^destination 'node-b' cannot take workload 'wl-1': needs .* with headroom/),
    });
    await expect(kit.service.create(body())).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(
        /^no node can take workload 'wl-1' \(.*node-b: needs .* with headroom.*node-c: needs/,
      ),
    });
    expect(kit.enqueued).toEqual([]);
  });
});

describe('MigrationsService.create: one claim per process', () => {
  it('20 calls at once for one workload: one 201 (queued), 19 409s naming the winner', async () => {
    const kit = setup();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => kit.service.create(body())));
    const created = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(created).toHaveLength(1);
    expect(kit.enqueued).toEqual([created[0]!.id]);
    expect(created[0]!.claimKey).toBe(KEY);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect(r.reason).toBeInstanceOf(ConflictError);
      expect(r.reason.message).toBe(
        `workload 'wl-1' is already claimed by migration ${created[0]!.id}; try again once it has ended`,
      );
      expect(r.reason.meta).toMatchObject({ migration: created[0]!.id, processKey: KEY });
    }
    expect((await kit.claims.holder(KEY))?.owner).toBe(`migration:${created[0]!.id}`);
  });

  it('two records of one process (same identity) share the claim: the second record gets the 409', async () => {
    const kit = setup({
      workloads: [aWorkload({ identity: IDENTITY }), aWorkload({ id: 'wl-2', nodeId: 'node-a', identity: IDENTITY })],
    });
    const first = await kit.service.create(body({ destination: 'node-b' }));
    await expect(kit.service.create(body({ workload: 'wl-2', destination: 'node-c' }))).rejects.toThrow(
      `workload 'wl-2' is already claimed by migration ${first.id}`,
    );
    expect(kit.enqueued).toEqual([first.id]);
  });

  it('bad input after the claim (the process is gone) releases it: the next call is not blocked', async () => {
    const kit = setup({ tree: false });
    await expect(kit.service.create(body())).rejects.toMatchObject({ code: 'bad_request' });
    expect(kit.ops.ran('inspectTree')).toEqual(['node-a:4242']);
    expect(await kit.claims.holder(KEY)).toBeUndefined();
    expect(await kit.migrations.list()).toEqual([]);
  });

  it("an evacuation's move to its plan's destination is recorded without inspecting the source (preflight does)", async () => {
    const kit = setup({ tree: false });
    const request = { workloadId: 'wl-1', strategy: 'stop-and-copy', transport: 'tls', keepImages: false } as const;
    const m = await kit.service.start({ ...request, destinationNodeId: 'node-b', evacuationId: 'ev-1' });
    expect(m).toMatchObject({ destinationNodeId: 'node-b', destinationReason: 'requested', evacuationId: 'ev-1' });
    expect(kit.ops.ran('inspectTree')).toEqual([]);
    expect(kit.enqueued).toEqual([m.id]);
    // Without a destination (or without an evacuation) the source is inspected first, as for a POST.
    await kit.migrations.save({ ...m, state: 'completed' });
    await expect(kit.service.start({ ...request, evacuationId: 'ev-1' })).rejects.toMatchObject({
      code: 'bad_request',
    });
    await expect(kit.service.start({ ...request, destinationNodeId: 'node-b' })).rejects.toMatchObject({
      code: 'bad_request',
    });
    expect(kit.ops.ran('inspectTree')).toEqual(['node-a:4242', 'node-a:4242']);
  });

  it('a source failing the inspection is a node_command_failed (502) with its words, and the claim is released', async () => {
    const kit = setup();
    kit.ops.nodes['node-a']!.unreachable = true;
    await expect(kit.service.create(body())).rejects.toMatchObject({
      code: 'node_command_failed',
      message: 'node node-a is unreachable',
      meta: { nodeId: 'node-a' },
    });
    expect(await kit.claims.holder(KEY)).toBeUndefined();
    expect(await kit.migrations.list()).toEqual([]);
  });

  it('a claim left by a job that ended (its release lost) is taken over; one held by a live job is not', async () => {
    const kit = setup();
    await kit.migrations.save(aMigration({ id: 'mig-old', state: 'completed' }));
    await kit.claims.claim(KEY, 'migration:mig-old');
    const m = await kit.service.create(body());
    expect((await kit.claims.holder(KEY))?.owner).toBe(`migration:${m.id}`);
    await expect(kit.service.create(body())).rejects.toThrow(`already claimed by migration ${m.id}`);
  });

  it('a holder whose record is missing is left alone while it may still be creating it', async () => {
    const kit = setup();
    await kit.claims.claim(KEY, 'migration:mig-being-created');
    await expect(kit.service.create(body())).rejects.toThrow('already claimed by migration mig-being-created');
  });
});

describe('MigrationCancelService', () => {
  it('after the commit point was claimed, a cancel is a 409 and requests nothing', async () => {
    const kit = setup();
    await kit.migrations.save(aMigration({ state: 'running' }));
    expect(await kit.flags.claimCommit('mig-1')).toBe(true);
    await expect(kit.cancels.cancel('mig-1')).rejects.toThrow(
      "migration 'mig-1' is past its commit point: the workload already runs on node-b; migrate it back instead",
    );
    expect(await kit.flags.cancelRequested('mig-1')).toBe(false);
  });

  it('a queued job no worker holds is cancelled on the spot and its claim released', async () => {
    const kit = setup();
    const m = await kit.service.create(body());
    kit.removable.add(m.id);
    expect(await kit.cancels.cancel(m.id)).toMatchObject({ state: 'cancelled', cancel: 'done' });
    expect((await kit.migrations.get(m.id))!.state).toBe('cancelled');
    expect(await kit.claims.holder(KEY)).toBeUndefined();
  });

  it('a job a worker holds is only flagged: the record and the claim stay the worker’s', async () => {
    const kit = setup();
    const m = await kit.service.create(body());
    expect(await kit.cancels.cancel(m.id)).toMatchObject({ state: 'queued', cancel: 'requested' });
    expect(await kit.flags.cancelRequested(m.id)).toBe(true);
    expect((await kit.claims.holder(KEY))?.owner).toBe(`migration:${m.id}`);
  });
});

describe('MigrationsService.start: Podman containers', () => {
  const container = () => aWorkload({ kind: 'podman', container: 'c'.repeat(64), containerName: 'web' });

  it.each(['post-copy', 'hybrid'])('refuses %s with a 400 naming why, queuing nothing', async (strategy) => {
    const kit = setup({ workloads: [container()] });
    await expect(kit.service.create(body({ destination: 'node-b', strategy }))).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringMatching(
        new RegExp(`^strategy '${strategy}' is not available: .*no lazy-pages \\(post-copy\\) option`),
      ),
    });
    expect(kit.enqueued).toEqual([]);
    expect(await kit.migrations.list()).toEqual([]);
  });

  it('refuses pre-copy with a 400 when the source cannot track dirty memory (asked of the source), queuing nothing', async () => {
    const kit = setup({ workloads: [container()] });
    await expect(kit.service.create(body({ destination: 'node-b', strategy: 'pre-copy' }))).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringMatching(
        /^strategy 'pre-copy' is not available: node-a cannot track dirty memory \(criu check --feature mem_dirty_track/,
      ),
    });
    expect(kit.ops.ran('checkFeature')).toEqual(['node-a:mem_dirty_track']);
    expect(kit.enqueued).toEqual([]);
    expect(await kit.migrations.list()).toEqual([]);
  });

  it('queues pre-copy where the source tracks dirty memory', async () => {
    const kit = setup({ workloads: [container()] });
    kit.ops.nodes['node-a']!.features = { mem_dirty_track: true };
    const m = await kit.service.create(body({ destination: 'node-b', strategy: 'pre-copy' }));
    expect(m.strategy).toBe('pre-copy');
    expect(kit.enqueued).toEqual([m.id]);
  });

  it.each([
    [false, 'stop-and-copy'],
    [true, 'pre-copy'],
  ] as const)(
    'an evacuation whose plan chose pre-copy (source tracks dirty memory: %s) moves it by %s',
    async (dirty, expected) => {
      const kit = setup({ workloads: [container()] });
      kit.ops.nodes['node-a']!.features = { mem_dirty_track: dirty };
      const e = await kit.service.start({
        workloadId: 'wl-1',
        destinationNodeId: 'node-b',
        strategy: 'pre-copy',
        transport: 'tls',
        keepImages: false,
        evacuationId: 'ev-1',
      });
      expect(e.strategy).toBe(expected);
    },
  );

  it('takes stop-and-copy and auto', async () => {
    const kit = setup({ workloads: [container()] });
    const m = await kit.service.create(body({ destination: 'node-b', strategy: 'auto' }));
    expect(m.strategy).toBe('auto');
    await kit.migrations.save({ ...m, state: 'completed' });
    const s = await kit.service.create(body({ destination: 'node-b', strategy: 'stop-and-copy' }));
    expect(s.strategy).toBe('stop-and-copy');
  });
});
