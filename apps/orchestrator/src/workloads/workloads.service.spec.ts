/**
 * WorkloadsService over in-memory records, the in-memory process index and a scripted node: what is
 * refused at registration and why, one record per process, DELETE, and reads that write nothing.
 */
import {
  BadRequestError,
  ConflictError,
  type CheckpointRecord,
  type GuardStatus,
  type WorkloadRecord,
} from '@spotlift/domain';
import { Clock, NodeOps, SystemClock, type ContainerInspection } from '@spotlift/engine';
import {
  IndexedWorkloadRepository,
  InMemoryProcessIndex,
  InMemoryRecords,
  type CheckpointRepository,
  type MigrationRepository,
  type NodeRepository,
} from '@spotlift/store';
import {
  FakePodmanOps,
  ScriptedNodeShell,
  aContainer,
  aMigration,
  aNode,
  aWorkload,
  inspectionOutput,
  type InspectionFacts,
} from '@spotlift/testing';
import type { AppConfig } from '../config/app-config.js';
import { GuardStatusRepository } from '../guard/guard-status.js';
import { WorkloadsService } from './workloads.service.js';

function kit(clock: Clock = new SystemClock()) {
  const shell = new ScriptedNodeShell();
  const podman = new FakePodmanOps();
  const index = new InMemoryProcessIndex();
  const records = new InMemoryRecords<WorkloadRecord>();
  const workloads = new IndexedWorkloadRepository(records, index);
  const nodes = new InMemoryRecords() as unknown as NodeRepository;
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b'));
  const migrations = new InMemoryRecords() as unknown as MigrationRepository;
  const checkpoints = new InMemoryRecords<CheckpointRecord>() as unknown as CheckpointRepository;
  const guardStatuses = new InMemoryRecords<GuardStatus>() as unknown as GuardStatusRepository;
  const service = new WorkloadsService(
    workloads,
    index,
    nodes,
    migrations,
    checkpoints,
    new NodeOps(shell),
    clock,
    { imageRoot: '/srv/spotlift/images', checkpointRoot: '/srv/spotlift/checkpoints' } as AppConfig,
    podman.asPodmanOps(),
    guardStatuses,
  );
  /** The node answers inspectTree with these facts (`times` answers, then the next rule's). */
  const node = (id: string, facts: InspectionFacts = {}, times?: number) =>
    shell.on({
      node: id,
      match: /echo TREE/,
      reply: { stdout: inspectionOutput(facts) },
      ...(times !== undefined ? { times } : {}),
    });
  return { shell, podman, index, records, workloads, migrations, checkpoints, guardStatuses, service, node };
}

const body = (over: object = {}) => ({ name: 'db', node: 'node-a', pid: 4242, ...over });

describe('WorkloadsService.register', () => {
  it('records the identity the node showed, and indexes the process', async () => {
    const k = kit();
    k.node('node-a', { startTime: '777', pidNs: '11', tree: [4242, 4243], rssKb: 1024 });
    const w = await k.service.register(body());
    expect(w).toMatchObject({
      nodeId: 'node-a',
      pid: 4242,
      identity: { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '11', startTime: '777' },
      tree: [4242, 4243],
      rssBytes: 1024 * 1024,
      state: 'running',
    });
    expect(k.index.holder('proc:53b88e37-904f-4ee1-8e18-0fb871a935bd:11:4242:777')).toBe(w.id);
    expect(await k.index.pending('proc:53b88e37-904f-4ee1-8e18-0fb871a935bd:11:4242:777')).toBe(false);
  });

  it('answers 409 naming the first record when the same process is registered again, from any node', async () => {
    const k = kit();
    k.node('node-a');
    k.node('node-b');
    const first = await k.service.register(body());
    for (const node of ['node-a', 'node-b']) {
      const again = k.service.register(body({ name: 'db-again', node }));
      await expect(again).rejects.toThrow(ConflictError);
      await expect(again).rejects.toMatchObject({ meta: { workload: first.id } });
      await expect(again).rejects.toThrow(`is already registered as workload '${first.id}'`);
    }
    expect(await k.workloads.list()).toHaveLength(1);
  });

  it('lets exactly one of concurrent registrations of one process through', async () => {
    const k = kit();
    k.node('node-a');
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => k.service.register(body())));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof ConflictError)).toHaveLength(19);
    expect(await k.workloads.list()).toHaveLength(1);
  });

  it('registers a reused pid (a new start time) as the new process it is, once the old one is gone', async () => {
    const k = kit();
    k.node('node-a', { startTime: '100' }, 1);
    k.node('node-a', { startTime: '999' });
    const first = await k.service.register(body());
    expect((await k.service.refresh(first.id)).state).toBe('gone');
    const second = await k.service.register(body());
    expect(second.id).not.toBe(first.id);
    expect(second.identity?.startTime).toBe('999');
  });

  it('refuses a second record for a process a record without identity (from before identities) holds', async () => {
    const k = kit();
    await k.workloads.save(aWorkload({ id: 'wl-old', pid: 4242, nodeId: 'node-a' }));
    k.node('node-a');
    await expect(k.service.register(body())).rejects.toThrow("is already registered as workload 'wl-old'");
  });

  it('refuses a process a record names even when the index lost its entry (a failed write)', async () => {
    const k = kit();
    const identity = { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '4026532201', startTime: '123456' };
    await k.records.save(aWorkload({ id: 'wl-unindexed', identity }));
    k.node('node-a');
    await expect(k.service.register(body())).rejects.toThrow("is already registered as workload 'wl-unindexed'");
  });

  it('passes over a holder whose record moved to another process, and one whose record was deleted', async () => {
    const k = kit();
    k.node('node-a');
    const first = await k.service.register(body());
    const key = `proc:53b88e37-904f-4ee1-8e18-0fb871a935bd:4026532201:4242:123456`;
    // A record whose index entry was not released (written by something that bypassed the index).
    await k.records.save({ ...first, nodeId: 'node-b', pid: 777, identity: { ...first.identity!, startTime: '5' } });
    const second = await k.service.register(body({ name: 'db-2' }));
    expect(k.index.holder(key)).toBe(second.id);
    await k.records.delete(second.id);
    const third = await k.service.register(body({ name: 'db-3' }));
    expect(k.index.holder(key)).toBe(third.id);
  });

  it('does not pass over a registration still on its way to its save', async () => {
    const k = kit();
    k.node('node-a');
    const key = `proc:53b88e37-904f-4ee1-8e18-0fb871a935bd:4026532201:4242:123456`;
    await k.index.claim(key, 'wl-pending');
    await expect(k.service.register(body())).rejects.toThrow("already registered as workload 'wl-pending'");
  });

  it('does not pass over a rival registration that saves its record between the two reads of it', async () => {
    const k = kit();
    k.node('node-a');
    const key = `proc:53b88e37-904f-4ee1-8e18-0fb871a935bd:4026532201:4242:123456`;
    const rival = aWorkload({
      id: 'wl-rival',
      nodeId: 'node-a',
      pid: 4242,
      state: 'running',
      identity: { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '4026532201', startTime: '123456' },
    });
    await k.index.claim(key, rival.id);
    // The rival finishes (record saved, then its claim followed) right after whichever read of it comes first.
    let finished = false;
    const finish = async () => {
      if (finished) return;
      finished = true;
      await k.workloads.save(rival);
    };
    const get = k.workloads.get.bind(k.workloads);
    k.workloads.get = async (id: string) => {
      const r = await get(id);
      if (id === rival.id) await finish();
      return r;
    };
    const pending = k.index.pending.bind(k.index);
    k.index.pending = async (key: string) => {
      const p = await pending(key);
      await finish();
      return p;
    };
    await expect(k.service.register(body())).rejects.toThrow("already registered as workload 'wl-rival'");
    expect((await k.workloads.list()).map((w) => w.id)).toEqual(['wl-rival']);
  });

  it.each([
    ['pid 1, without asking the node', { pid: 1 }, {}, /pid 1 is the init of node 'node-a'/],
    [
      'a kernel thread',
      { pid: 2 },
      { pid: 2, comm: 'kthreadd', ppid: 0, flags: 2129984, hasExe: false },
      /kernel thread/,
    ],
    [
      'a process seen from another node',
      {},
      { netNs: '1', sessionNetNs: '2' },
      /not in node 'node-a''s network namespace/,
    ],
    [
      'the sshd carrying the session',
      { pid: 800 },
      { pid: 800, comm: 'sshd', tree: [800, 9000, 9001] },
      /spotlift's own SSH session/,
    ],
  ])('refuses %s with a 400 and records nothing', async (_, over, facts, reason) => {
    const k = kit();
    k.node('node-a', facts);
    await expect(k.service.register(body(over))).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringMatching(reason),
    });
    expect(await k.workloads.list()).toEqual([]);
    if ((over as { pid?: number }).pid === 1) expect(k.shell.calls).toEqual([]);
  });

  it('refuses a pid whose identity could not be read', async () => {
    const k = kit();
    k.shell.on({ node: 'node-a', match: /echo TREE/, reply: { stdout: 'TREE 4242\nRSS_KB 10\n' } });
    await expect(k.service.register(body())).rejects.toThrow(/could not read what pid 4242 is on node 'node-a'/);
  });

  it("answers node_command_failed (502) with the node's words when the node fails the inspection, and records nothing", async () => {
    const k = kit();
    k.shell.on({ node: 'node-a', match: /echo TREE/, reply: { code: 1, stderr: 'sh: /proc: Permission denied' } });
    await expect(k.service.register(body())).rejects.toMatchObject({
      code: 'node_command_failed',
      message: expect.stringMatching(/inspecting pid 4242 on node-a failed: sh: \/proc: Permission denied/) as unknown,
      meta: { nodeId: 'node-a' },
    });
    expect(await k.workloads.list()).toEqual([]);
  });
});

describe('WorkloadsService.remove', () => {
  it('removes the record and its index entry; the same process can be registered again', async () => {
    const k = kit();
    k.node('node-a');
    const w = await k.service.register(body());
    await k.service.remove(w.id);
    expect(await k.workloads.get(w.id)).toBeUndefined();
    expect(k.index.holder('proc:53b88e37-904f-4ee1-8e18-0fb871a935bd:4026532201:4242:123456')).toBeUndefined();
    await expect(k.service.register(body())).resolves.toMatchObject({ pid: 4242 });
    // Nothing but the registrations' inspections ran on the node.
    expect(k.shell.calls.every((c) => /echo TREE/.test(c.command))).toBe(true);
  });

  it('answers 404 for an unknown workload', async () => {
    await expect(kit().service.remove('wl-nope')).rejects.toMatchObject({ code: 'not_found' });
  });

  it.each([
    ['migrating', { state: 'migrating' }, undefined, undefined, /it is migrating/],
    ['an unfinished migration', {}, 'running', undefined, /migration 'mig-1' \(running\) works on it/],
    ['a queued migration', {}, 'queued', undefined, /migration 'mig-1' \(queued\) works on it/],
    ['a checkpoint being taken', {}, undefined, 'taking', /checkpoint 'cp-1' \(taking\) works on it/],
    [
      'a stored checkpoint, its only copy',
      { state: 'checkpointed' },
      undefined,
      'stored',
      /images are in checkpoint 'cp-1'/,
    ],
  ] as const)('answers 409 while %s', async (_, over, migration, checkpoint, reason) => {
    const k = kit();
    await k.workloads.save(aWorkload(over));
    if (migration) await k.migrations.save(aMigration({ state: migration }));
    if (checkpoint) await k.checkpoints.save({ id: 'cp-1', workloadId: 'wl-1', state: checkpoint } as CheckpointRecord);
    await expect(k.service.remove('wl-1')).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(reason),
    });
    expect(await k.workloads.get('wl-1')).toBeDefined();
  });

  it('removes a workload whose migrations all ended', async () => {
    const k = kit();
    await k.workloads.save(aWorkload());
    await k.migrations.save(aMigration({ state: 'completed' }));
    await k.service.remove('wl-1');
    expect(await k.workloads.get('wl-1')).toBeUndefined();
  });
});

describe('WorkloadsService.view and refresh', () => {
  const identity = { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '4026532201', startTime: '123456' };

  it('view reads the node and writes nothing', async () => {
    const k = kit();
    await k.workloads.save(aWorkload({ identity, tree: [4242], rssBytes: 1 }));
    k.node('node-a', { tree: [4242, 4243], rssKb: 2, state: 'T' });
    const before = JSON.stringify(await k.workloads.get('wl-1'));
    const v = await k.service.view('wl-1');
    expect(v.observed).toMatchObject({ state: 'running', processState: 'T', tree: [4242, 4243], rssBytes: 2048 });
    expect(v.tree).toEqual([4242]);
    expect(JSON.stringify(await k.workloads.get('wl-1'))).toBe(before);
  });

  it('view says gone for a reused pid, and unreachable for a node that does not answer', async () => {
    const k = kit();
    await k.workloads.save(aWorkload({ identity }));
    k.shell.on({ node: 'node-a', match: /echo TREE/, reply: () => new Error('connection reset'), times: 1 });
    expect((await k.service.view('wl-1')).observed).toMatchObject({ state: 'unreachable', reason: 'connection reset' });
    k.node('node-a', { startTime: '999' });
    expect((await k.service.view('wl-1')).observed).toMatchObject({
      state: 'gone',
      reason: expect.stringMatching(/pid was reused/),
    });
  });

  it('refresh saves the inspection fields only, and not over a job that moved the workload meanwhile', async () => {
    const k = kit();
    await k.workloads.save(aWorkload({ identity, tree: [4242], rssBytes: 1, priority: 3 }));
    k.node('node-a', { tree: [4242, 4243], rssKb: 2 });
    await k.service.refresh('wl-1');
    expect(await k.workloads.get('wl-1')).toMatchObject({
      tree: [4242, 4243],
      rssBytes: 2048,
      priority: 3,
      state: 'running',
    });

    // A migration commits while the node is being read: the record names another node and pid now.
    const k2 = kit();
    await k2.workloads.save(aWorkload({ identity, tree: [4242], rssBytes: 1 }));
    k2.shell.on({
      node: 'node-a',
      match: /echo TREE/,
      reply: () => {
        void k2.workloads.save(aWorkload({ nodeId: 'node-b', pid: 777, tree: [777], rssBytes: 5 }));
        return { stdout: inspectionOutput({ tree: [4242, 4243] }) };
      },
    });
    const v = await k2.service.refresh('wl-1');
    expect(v).toMatchObject({ nodeId: 'node-b', pid: 777, tree: [777] });
    expect(await k2.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, tree: [777], rssBytes: 5 });
  });

  it('refresh marks a workload whose pid was reused gone, which releases its process', async () => {
    const k = kit();
    k.node('node-a', { startTime: '123456' }, 1);
    k.node('node-a', { startTime: '999' });
    const w = await k.service.register(body());
    expect(k.index.holder(`proc:${identity.bootId}:${identity.pidNs}:4242:123456`)).toBe(w.id);
    const v = await k.service.refresh(w.id);
    expect(v.observed).toMatchObject({ state: 'gone', reason: expect.stringMatching(/pid was reused/) });
    expect(await k.workloads.get(w.id)).toMatchObject({ state: 'gone' });
    expect(k.index.holder(`proc:${identity.bootId}:${identity.pidNs}:4242:123456`)).toBeUndefined();
  });
});

describe('WorkloadsService.register: declared paths against this installation', () => {
  it.each([
    [['/srv/spotlift/images/x'], /is in \/srv\/spotlift\/images/],
    [['/srv/spotlift'], /holds \/srv\/spotlift\/images/],
    [['/srv/data/app', '/srv/ops/app'], /'\/srv\/ops\/app' is in \/srv\/ops/],
  ])('%j is a 400 naming the reason, nothing registered', async (paths, why) => {
    const k = kit();
    k.shell.on({ node: 'node-a', match: /printf %s "\$HOME"/, reply: { stdout: '/srv/ops' } });
    k.node('node-a');
    await expect(k.service.register(body({ paths }))).rejects.toThrow(why);
    expect(await k.workloads.list()).toEqual([]);
  });

  it('registers paths clear of them', async () => {
    const k = kit();
    k.shell.on({ node: 'node-a', match: /printf %s "\$HOME"/, reply: { stdout: '/srv/ops' } });
    k.node('node-a');
    const w = await k.service.register(body({ paths: ['/srv/data/app'] }));
    expect(w.paths).toEqual(['/srv/data/app']);
  });
});

describe('WorkloadsService.register: Podman containers', () => {
  const container = (over: object = {}) => ({ node: 'node-a', kind: 'podman' as const, container: 'web', ...over });

  it('records the container by id with its name, image, main pid and RSS, and indexes it by node and id', async () => {
    const k = kit();
    const c = aContainer({ mainPid: 4242 });
    k.podman.nodes['node-a'] = { containers: [c] };
    k.node('node-a', { tree: [4242, 4243], rssKb: 2048 });
    const w = await k.service.register(container({ paths: ['/srv/data/web'] }));
    expect(w).toMatchObject({
      name: 'web',
      kind: 'podman',
      container: c.id,
      containerName: 'web',
      image: c.image,
      pid: 4242,
      tree: [4242, 4243],
      rssBytes: 2048 * 1024,
      paths: ['/srv/data/web'],
      state: 'running',
    });
    expect(k.index.holder(`podman:node-a:${c.id}`)).toBe(w.id);
  });

  it('records guard settings given at registration', async () => {
    const k = kit();
    k.podman.nodes['node-a'] = { containers: [aContainer({ mainPid: 4242 })] };
    k.node('node-a', { tree: [4242] });
    const w = await k.service.register(container({ guard: { intervalSeconds: 30, keep: 3 } }));
    expect(w.guard).toEqual({ intervalSeconds: 30, keep: 3 });
  });

  it('answers 409 when the same container is registered again, by name or by id', async () => {
    const k = kit();
    const c = aContainer();
    k.podman.nodes['node-a'] = { containers: [c] };
    k.node('node-a');
    const first = await k.service.register(container());
    for (const ref of ['web', c.id]) {
      await expect(k.service.register(container({ container: ref, name: 'again' }))).rejects.toThrow(
        `container web on node 'node-a' is already registered as workload '${first.id}'`,
      );
    }
    expect(await k.workloads.list()).toHaveLength(1);
  });

  it.each([
    ['an unknown container', {}, "no container 'web' on node 'node-a'"],
    [
      'a stopped container',
      { running: false, state: 'exited', rawState: 'exited' },
      'is exited: only a running container moves',
    ],
    [
      'a container with a device',
      { devices: [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse' }] },
      'has host device /dev/fuse mapped at /dev/fuse',
    ],
    ['a privileged container', { privileged: true }, 'is privileged'],
    ['a runtime that cannot checkpoint', { runtime: 'crun' }, 'runs under crun, which cannot checkpoint'],
    [
      'a bind mount that is not a declared path',
      { binds: [{ source: '/srv/data/app', destination: '/data', readOnly: false }] },
      'bind mount /srv/data/app (at /data) must be one of the declared paths',
    ],
  ] as Array<[string, Partial<ContainerInspection>, string]>)(
    'refuses %s with 400 and the reason, storing nothing',
    async (_what, over, reason) => {
      const k = kit();
      k.podman.nodes['node-a'] = { containers: _what === 'an unknown container' ? [] : [aContainer(over)] };
      const res = k.service.register(container());
      await expect(res).rejects.toThrow(BadRequestError);
      await expect(res).rejects.toThrow(reason);
      expect(await k.workloads.list()).toHaveLength(0);
    },
  );

  it('takes a bind mount under a declared path', async () => {
    const k = kit();
    k.podman.nodes['node-a'] = {
      containers: [aContainer({ binds: [{ source: '/srv/data/app/db', destination: '/db', readOnly: false }] })],
    };
    k.node('node-a');
    await expect(k.service.register(container({ paths: ['/srv/data/app'] }))).resolves.toMatchObject({
      kind: 'podman',
    });
  });
});

describe('WorkloadsService: guard mode', () => {
  const NOW = new Date('2026-12-06T12:00:00.000Z');
  const fixed = new (class extends Clock {
    now() {
      return NOW;
    }
  })();

  it('sets, changes and ends guard mode on a stored workload, a container too', async () => {
    const k = kit(fixed);
    await k.records.save(aWorkload({ id: 'wl-g' }));
    expect((await k.service.setGuard('wl-g', { intervalSeconds: 60 })).guard).toEqual({ intervalSeconds: 60 });
    await k.service.setGuard('wl-g', { intervalSeconds: 10, keep: 1 });
    expect((await k.records.get('wl-g'))?.guard).toEqual({ intervalSeconds: 10, keep: 1 });
    await k.service.setGuard('wl-g', undefined);
    expect((await k.records.get('wl-g'))?.guard).toBeUndefined();
    await k.records.save(aWorkload({ id: 'wl-c', kind: 'podman' }));
    await k.service.setGuard('wl-c', { intervalSeconds: 60, keep: 2 });
    expect((await k.records.get('wl-c'))?.guard).toEqual({ intervalSeconds: 60, keep: 2 });
  });

  it('records guard settings at registration', async () => {
    const k = kit(fixed);
    k.node('node-a', { tree: [4242] });
    const w = await k.service.register(body({ guard: { intervalSeconds: 30, keep: 3 } }));
    expect(w.guard).toEqual({ intervalSeconds: 30, keep: 3 });
  });

  it('reports the RPO and overhead from the stored guard checkpoints, other modes ignored; 404 when unguarded', async () => {
    const k = kit(fixed);
    await k.records.save(aWorkload({ id: 'wl-g', guard: { intervalSeconds: 60 } }));
    await k.records.save(aWorkload({ id: 'wl-plain' }));
    const stored = (id: string, mode: CheckpointRecord['mode'], frozenAt: string, frozenTimeUs: number) =>
      k.checkpoints.save({
        id,
        mode,
        workloadId: 'wl-g',
        state: 'stored',
        criu: { dump: { frozenTimeUs } },
        bytes: { pages: 0, images: 0, stored: 10 },
        frozenAt,
        createdAt: frozenAt,
        updatedAt: frozenAt,
      } as CheckpointRecord);
    await stored('cp-old', 'guard', '2026-12-06T11:58:00.000Z', 10_000);
    await stored('cp-new', 'guard', '2026-12-06T11:59:00.000Z', 30_000);
    await stored('cp-forensic', 'forensic', '2026-12-06T11:59:50.000Z', 1);
    const r = await k.service.guard('wl-g');
    expect(r).toMatchObject({
      rpoSeconds: 60,
      lastGoodCheckpointId: 'cp-new',
      overhead: { meanFreezeMs: 20, freezeMsPerHour: 1200 },
    });
    expect(r.checkpoints.map((c) => c.id)).toEqual(['cp-new', 'cp-old']);
    await k.guardStatuses.save({ id: 'wl-g', skipped: { at: '2026-12-06T11:59:59.000Z', reason: 'predicted freeze' } });
    expect((await k.service.guard('wl-g')).skipped?.reason).toBe('predicted freeze');
    await expect(k.service.guard('wl-plain')).rejects.toMatchObject({ code: 'not_found' });
  });
});
