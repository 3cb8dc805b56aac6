/**
 * The checkpoint flow's decisions, over the fake node operations (FakeProcessOps: each named operation answers
 * as a healthy node does, CRIU's stats images captured from real runs) and a scripted image stream (the
 * transport's tar and checksums). What each operation runs is golden in node-ops (process-ops.golden.spec.ts).
 * Real CRIU on the lab nodes: test/checkpoint.e2e-spec.ts.
 * node-a runs the workload, node-c stores the checkpoint, node-b receives the restore.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CheckpointRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import {
  FakeProcessOps,
  ScriptedNodeShell,
  aNode,
  aWorkload,
  criuFixture,
  preflightAnswer,
  scriptHappyOps,
} from '@spotlift/testing';
import { DirectoryStreamer } from '@spotlift/transport';
import { SystemClock } from '../clock.js';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { newDataKey } from './checkpoint-crypto.js';
import { CheckpointFlow } from './checkpoint-flow.js';

const TAR = Buffer.from('scripted tar stream of checkpoint images');
const TAR_SHA = createHash('sha256').update(TAR).digest('hex');
const IMAGE_DIR = '/var/lib/spotlift/checkpoints/wl-1/cp-1';
const T0 = '2026-01-01T00:00:00.000Z';

function aCheckpoint(over: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id: 'cp-1',
    workloadId: 'wl-1',
    sourceNodeId: 'node-a',
    storageNodeId: 'node-c',
    imageDir: IMAGE_DIR,
    state: 'queued',
    phases: [],
    criu: {},
    bytes: { pages: 0, images: 0 },
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

/** A checkpoint stored by an earlier take, with a restore to node-b requested. */
const aRestoreRequest = () =>
  aCheckpoint({
    state: 'restoring',
    tree: [4242, 4243],
    rssBytes: 64 * 2 ** 20,
    criuVersion: '4.2.1',
    restore: { attempt: 1, destinationNodeId: 'node-b', destinationReason: 'requested', requestedAt: T0, phases: [] },
  });

/**
 * The flow over the fake; `script`'s rules answer first, then healthy nodes'. `shell` is the image stream's
 * (node-a -> node-c when taking, node-c -> node-b when restoring).
 */
function setup(
  checkpoint: CheckpointRecord,
  workload: WorkloadRecord = aWorkload(),
  script?: (ops: FakeProcessOps, shell: ScriptedNodeShell) => unknown,
  checkpointKey?: Uint8Array,
  makeStreamer: (shell: ScriptedNodeShell) => DirectoryStreamer = (shell) => new DirectoryStreamer(shell),
) {
  const ops = new FakeProcessOps();
  const shell = new ScriptedNodeShell();
  const checkpoints = new InMemoryRecords<CheckpointRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  for (const id of ['node-a', 'node-b', 'node-c']) void nodes.save(aNode(id));
  void checkpoints.save(checkpoint);
  void workloads.save(workload);
  const flow = new CheckpointFlow(
    checkpoints,
    workloads,
    nodes,
    ops.asNodeOps(),
    makeStreamer(shell),
    new SystemClock(),
    { ...DEFAULT_ENGINE_CONFIG, criuIdleTimeoutMs: 1_000, ...(checkpointKey ? { checkpointKey } : {}) },
  );
  script?.(ops, shell);
  scriptHealthy(ops, shell);
  /** The operations of `names` that ran on `node`. */
  const did = (node: string, ...names: string[]) =>
    ops.calls.filter((c) => c.node === node && names.includes(c.op)).map((c) => c.op);
  /** The directories removed on `node`. */
  const removed = (node: string) => ops.argsOf('removeDir', node).map(([dir]) => dir);
  return { ops, shell, flow, checkpoints, workloads, did, removed };
}

const said = (stdout = '', code = 0, stderr = '') => ({ code, stdout, stderr });

/** Healthy nodes: the storage node's answers, then the happy path's (tests add their rules before these). */
function scriptHealthy(ops: FakeProcessOps, shell: ScriptedNodeShell): void {
  shell
    .on({ match: /(?:^|; )tar -C \S+ -cf/, reply: { stdout: TAR.toString() } })
    .on({ match: /sha256sum < /, reply: { stdout: `${TAR_SHA}\n` } });
  ops
    .on('sealImages', said('STORED_KB 70000\n'), { node: 'node-c' })
    .on('checkImages', said(), { node: 'node-c' })
    .on('cpuinfoDump', said())
    .on('readFile', criuFixture('images/page-server/stats-dump'), {
      node: 'node-c',
      when: (_n, path) => path.endsWith('/stats-dump'),
    })
    .on('readFile', Buffer.from('cpuinfo image bytes'), { when: (_n, path) => path.endsWith('/cpuinfo.img') })
    .on('writeFile', undefined)
    .on('cpuinfoCheck', said());
  scriptHappyOps(ops);
}

/** A failed CRIU command (exit 1) as the timed operations give it. */
const criuFailed = (stderr = '') => ({ ...said('', 1, stderr), startNs: 1n, endNs: 2n });

const phaseNames = (phases: CheckpointRecord['phases']) => phases.map((p) => `${p.name}:${p.ok ? 'ok' : 'fail'}`);

describe('CheckpointFlow.take', () => {
  it('dumps to the storage node, seals the images there, and only then kills the source', async () => {
    const { ops, shell, did, removed, flow, workloads, checkpoints } = setup(aCheckpoint());
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(phaseNames(cp.phases)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    // The page-server and the image stream end in the durable directory on the storage node.
    expect(ops.argsOf('startPageServer', 'node-c').map(([dir]) => dir)).toEqual([IMAGE_DIR]);
    expect(ops.argsOf('sealImages', 'node-c').map(([dir]) => dir)).toEqual([IMAGE_DIR]);
    // (the image stream's receiving end, the transport's, writes there too)
    expect(shell.ran('node-c', /mkfifo/)[0]).toContain(IMAGE_DIR);
    // The CPU description a later restore checks against travels with the images.
    expect(ops.argsOf('cpuinfoDump', 'node-a')).toEqual([['/var/lib/spotlift/images/cp-1/src']]);
    const order = ops.sequence();
    const sealed = order.indexOf('sealImages@node-c');
    const killed = order.indexOf('killTree@node-a');
    expect(sealed).toBeGreaterThan(-1);
    expect(killed).toBeGreaterThan(sealed);
    expect(did('node-a', 'resumeTree')).toHaveLength(0);
    // Only the source's working directory is removed; the stored images stay.
    expect(removed('node-a')).toEqual(['/var/lib/spotlift/images/cp-1']);
    expect(removed('node-c')).toEqual([]);
    expect(cp).toMatchObject({
      tree: [4242, 4243],
      rssBytes: 64 * 2 ** 20,
      criuVersion: '4.2.1',
      sha256: TAR_SHA,
      bytes: { images: TAR.length, stored: 70000 * 1024 },
    });
    expect(cp.criu.dump?.pagesWritten).toBeGreaterThan(0);
    expect(cp.bytes.pages).toBe(cp.criu.dump!.pagesWritten * 4096);
    expect(cp.frozenAt).toBeDefined();
    expect(cp.storedAt).toBeDefined();
    expect((await workloads.get('wl-1'))!.state).toBe('checkpointed');
    expect(await checkpoints.get('cp-1')).toEqual(cp);
  });

  it.each<[string, (ops: FakeProcessOps, shell: ScriptedNodeShell) => unknown, string]>([
    [
      'the image stream breaks (checksum mismatch)',
      (_ops, shell) => shell.on({ match: /sha256sum < /, reply: { stdout: 'bad\n' } }),
      'transfer',
    ],
    [
      'the images are incomplete on the storage node',
      (ops) => ops.on('sealImages', said('MISSING pages-*.img\nSTORED_KB 12\n')),
      'verify',
    ],
    ['the dump fails', (ops) => ops.on('dump', criuFailed('Error (criu/cr-dump.c)'), { node: 'node-a' }), 'dump'],
  ])('%s: the source is resumed, the partial images removed, nothing killed', async (_what, script, phase) => {
    const { did, removed, flow, workloads } = setup(aCheckpoint(), aWorkload(), script);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.phases.find((p) => p.name === phase)?.ok).toBe(false);
    expect(phaseNames(cp.phases)).toContain('rollback:ok');
    expect(phaseNames(cp.phases)).not.toContain('commit:ok');
    expect(did('node-a', 'resumeTree')).toHaveLength(1);
    expect(did('node-a', 'killTree')).toHaveLength(0);
    expect(removed('node-c')).toEqual([IMAGE_DIR]);
    expect(cp.error).toBeTruthy();
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('another session holding the node-side lock of the process (e.g. a migration): failed, nothing frozen or resumed', async () => {
    const { ops, did, flow, workloads } = setup(aCheckpoint({ claimKey: 'proc:b:n:4242:1' }), aWorkload(), (o) =>
      o.on('holdLock', undefined, { node: 'node-a' }),
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toBe(
      "another session holds the node-side lock of workload 'wl-1' on node-a (e.g. a migration); nothing was frozen",
    );
    expect(ops.argsOf('holdLock', 'node-a').map(([key]) => key)).toEqual(['proc:b:n:4242:1']);
    expect(did('node-a', 'dump', 'killTree', 'resumeTree')).toEqual([]);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('fails before any freeze when the storage node lacks disk: nothing touched', async () => {
    const { did, flow, workloads } = setup(aCheckpoint(), aWorkload(), (ops) =>
      ops.on('memoryAndDisk', preflightAnswer({ memKb: null, diskBytes: 1024 }), { node: 'node-c' }),
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/storage node node-c has 0 MiB free under \/var\/lib\/spotlift\/checkpoints/);
    expect(did('node-a', 'dump', 'killTree', 'resumeTree')).toHaveLength(0);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('records the page transport it used; one the orchestrator does not offer fails before any freeze', async () => {
    const ok = setup(aCheckpoint());
    expect(await ok.flow.take('cp-1')).toMatchObject({ state: 'stored', transport: 'tcp' });

    // this flow was given tcp only (the app gives tcp, tls and ssh)
    const { did, flow, workloads } = setup(aCheckpoint({ transport: 'tls' }));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/page transport 'tls' is not configured on this orchestrator \(available: tcp\)/);
    expect(did('node-a', 'dump', 'killTree', 'resumeTree')).toHaveLength(0);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it("a record left 'taking' mid-dump by a dead worker is undone: the source resumed", async () => {
    const dumping = aCheckpoint({
      state: 'taking',
      phases: [
        { name: 'preflight', startedAt: T0, endedAt: T0, ok: true },
        { name: 'prepare', startedAt: T0, endedAt: T0, ok: true },
        { name: 'dump', startedAt: T0 },
      ],
    });
    const { did, flow, workloads } = setup(dumping, aWorkload({ state: 'migrating' }));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.notes?.[0]).toMatch(/stopped during 'dump'/);
    expect(did('node-a', 'dump')).toHaveLength(0);
    expect(did('node-a', 'resumeTree')).toHaveLength(1);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it("a record left 'taking' after its commit started finishes the commit: stored", async () => {
    const committing = aCheckpoint({
      state: 'taking',
      phases: ['preflight', 'prepare', 'dump', 'transfer', 'verify'].map((name) => ({
        name: name as CheckpointRecord['phases'][number]['name'],
        startedAt: T0,
        endedAt: T0,
        ok: true,
      })),
    });
    committing.phases.push({ name: 'commit', startedAt: T0 });
    const { did, flow } = setup(committing, aWorkload({ state: 'migrating' }));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(did('node-a', 'killTree')).toHaveLength(1);
    expect(did('node-a', 'resumeTree')).toHaveLength(0);
  });
});

/** Every phase on the record ended; the ones a dead worker left open are marked interrupted. */
const openPhases = (phases: CheckpointRecord['phases']) => phases.filter((p) => p.endedAt === undefined);

describe('a dump CRIU refused as tree_held (another tracer, or the kernel refusing an exiting task)', () => {
  const seizeLog = readFileSync(
    new URL('../../../criu/test/fixtures/logs/dump-seize-concurrent-dump.log', import.meta.url),
    'utf8',
  );
  const refused = (o: FakeProcessOps) =>
    o.on('dump', criuFailed(), { node: 'node-a' }).on('tail', seizeLog, {
      node: 'node-a',
      when: (_n, path, lines) => path.endsWith('/dump.log') && lines === 200,
    });

  it('whose process exited meanwhile: failed as workload gone, the workload marked gone, nothing resumed', async () => {
    const { flow, workloads, did } = setup(aCheckpoint(), aWorkload(), (o) =>
      refused(o).on('processState', 'gone', { node: 'node-a' }),
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(
      /^workload gone: pid 4242 on node-a exited before the checkpoint could take it; nothing was stored and it runs nowhere \(criu dump failed on node-a \(tree_held\)/,
    );
    expect((await workloads.get('wl-1'))!.state).toBe('gone');
    expect(did('node-a', 'resumeTree', 'killTree')).toEqual([]);
  });

  it('whose process lives (held by another tracer): failed with the reason, the workload running, nothing resumed', async () => {
    const { flow, workloads, did } = setup(aCheckpoint(), aWorkload(), (o) =>
      refused(o).on('processState', 'S', { node: 'node-a' }),
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/^criu dump failed on node-a \(tree_held\)/);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
    expect(did('node-a', 'resumeTree', 'killTree')).toEqual([]);
  });
});

describe('phases a dead worker left open on a checkpoint', () => {
  it("a take left 'taking' mid-dump: the dump phase is closed as interrupted, with an end time", async () => {
    const dumping = aCheckpoint({
      state: 'taking',
      phases: [
        { name: 'preflight', startedAt: T0, endedAt: T0, ok: true },
        { name: 'prepare', startedAt: T0, endedAt: T0, ok: true },
        { name: 'dump', startedAt: T0 },
      ],
      updatedAt: '2026-01-01T00:00:02.000Z',
    });
    const { flow } = setup(dumping, aWorkload({ state: 'migrating' }));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(openPhases(cp.phases)).toEqual([]);
    const dump = cp.phases.find((p) => p.name === 'dump')!;
    expect(dump).toMatchObject({ ok: false, interrupted: true });
    expect(dump.detail).toMatch(/interrupted: the worker running it stopped \(record last written 2026-01-01T00:00:02/);
    expect(cp.phases.filter((p) => p.interrupted)).toEqual([dump]);
  });

  it("a take left 'taking' mid-prepare (nothing frozen) starts over; the old prepare phase is closed", async () => {
    const preparing = aCheckpoint({
      state: 'taking',
      phases: [
        { name: 'preflight', startedAt: T0, endedAt: T0, ok: true },
        { name: 'prepare', startedAt: T0 },
      ],
    });
    const { flow } = setup(preparing, aWorkload({ state: 'migrating' }));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(openPhases(cp.phases)).toEqual([]);
    expect(cp.phases[1]).toMatchObject({ name: 'prepare', ok: false, interrupted: true });
    expect(phaseNames(cp.phases.slice(2))).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
  });

  it('a restore whose worker stopped during the restore: that phase is closed as interrupted; still stored', async () => {
    const request = aRestoreRequest();
    request.restore!.phases.push(
      { name: 'preflight', startedAt: T0, endedAt: T0, ok: true },
      { name: 'transfer', startedAt: T0, endedAt: T0, ok: true },
      { name: 'restore', startedAt: T0 },
    );
    const { flow } = setup(request, aWorkload({ state: 'checkpointed' }));
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(openPhases(cp.restore!.phases)).toEqual([]);
    expect(cp.restore!.phases.find((p) => p.name === 'restore')).toMatchObject({ ok: false, interrupted: true });
  });

  it('a restore whose worker stopped during the transfer starts over; the old transfer phase is closed', async () => {
    const request = aRestoreRequest();
    request.restore!.phases.push(
      { name: 'preflight', startedAt: T0, endedAt: T0, ok: true },
      { name: 'transfer', startedAt: T0 },
    );
    const { flow } = setup(request, aWorkload({ state: 'checkpointed' }));
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(openPhases(cp.restore!.phases)).toEqual([]);
    expect(cp.restore!.phases[1]).toMatchObject({ name: 'transfer', ok: false, interrupted: true });
  });
});

describe('CheckpointFlow.restore', () => {
  it('checks the stored images, streams them to the destination, restores, verifies, moves the workload', async () => {
    const { ops, shell, removed, flow, workloads } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }));
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(phaseNames(cp.restore!.phases)).toEqual([
      'preflight:ok',
      'transfer:ok',
      'restore:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    expect(ops.argsOf('checkImages', 'node-c').map(([dir]) => dir)).toEqual([IMAGE_DIR]);
    expect(ops.argsOf('cpuinfoCheck', 'node-b')).toHaveLength(1);
    expect(shell.ran('node-c', /tar -C/)[0]).toContain(IMAGE_DIR);
    expect(cp.restore).toMatchObject({ restoredPid: 777, imageBytes: TAR.length });
    expect(cp.restore!.criu?.pagesRestored ?? cp.restore!.criu?.restoreTimeUs).toBeDefined();
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
    // The images stay on the storage node until DELETE.
    expect(removed('node-c')).toEqual([]);
  });

  it('a restore that fails verification kills what it restored; the checkpoint stays stored', async () => {
    // the restored tree is gone when verified
    const { did, flow, workloads } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }), (ops) =>
      ops.on('inspectTree', undefined, { node: 'node-b' }),
    );
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/restored pid 777 on node-b killed/);
    expect(did('node-b', 'killTree')).toHaveLength(1);
    expect((await workloads.get('wl-1'))!.state).toBe('checkpointed');
  });

  it('damaged images fail the preflight; nothing is streamed or restored', async () => {
    const { did, shell, flow } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }), (ops) =>
      ops.on('checkImages', said('pages-1.img: FAILED\n', 1), { node: 'node-c' }),
    );
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/damaged or gone: pages-1.img: FAILED/);
    expect(did('node-b', 'restore', 'armRestore.fire')).toHaveLength(0);
    expect(shell.ran('node-b', /mkfifo/)).toHaveLength(0);
  });

  it('a stale job (another attempt, or not restoring) changes nothing', async () => {
    const { ops, shell, flow } = setup(aRestoreRequest());
    const cp = await flow.restore('cp-1', 2);
    expect(cp.state).toBe('restoring');
    expect(ops.calls).toHaveLength(0);
    expect(shell.calls).toHaveLength(0);
  });
});

describe("a failed checkpoint's CRIU logs", () => {
  /** Where keepLogs and the removal of `dir` ran on `node` among all the operations. */
  const at = (ops: FakeProcessOps, node: string, op: string, dir?: string) =>
    ops.calls.findIndex((c) => c.node === node && c.op === op && (dir === undefined || c.args[0] === dir));
  /** keepLogs' source and destination directories on `node`. */
  const keptFrom = (ops: FakeProcessOps, node: string) => ops.argsOf('keepLogs', node).map(([from, to]) => [from, to]);

  it('a failed take keeps them on the source and the storage node before the images go, and says where', async () => {
    const { ops, flow, checkpoints } = setup(aCheckpoint(), aWorkload(), (o) =>
      o
        .on('dump', criuFailed('Error (criu/cr-dump.c)'), { node: 'node-a' })
        .on('keepLogs', 2, { node: 'node-a' })
        .on('keepLogs', 1, { node: 'node-c' }),
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    const logs = '/var/lib/spotlift/logs/cp-1';
    // The source's working directory (src/dump.log) and the storage node's partial images (page-server.log).
    expect(keptFrom(ops, 'node-a')).toEqual([['/var/lib/spotlift/images/cp-1', logs]]);
    expect(keptFrom(ops, 'node-c')).toEqual([[IMAGE_DIR, logs]]);
    expect(at(ops, 'node-a', 'keepLogs')).toBeLessThan(at(ops, 'node-a', 'removeDir', '/var/lib/spotlift/images/cp-1'));
    expect(at(ops, 'node-c', 'keepLogs')).toBeLessThan(at(ops, 'node-c', 'removeDir', IMAGE_DIR));
    expect(cp.keptLogs).toEqual([
      { nodeId: 'node-a', dir: logs, files: 2 },
      { nodeId: 'node-c', dir: logs, files: 1 },
    ]);
    expect(cp.error).toMatch(
      new RegExp(
        `criu dump failed on node-a.*; CRIU's logs \\(last 256 KiB of each\\) kept for 7 days in node-a:${logs}, node-c:${logs}$`,
        's',
      ),
    );
    expect(await checkpoints.get('cp-1')).toMatchObject({ keptLogs: cp.keptLogs, error: cp.error });
  });

  it('a completed take keeps none', async () => {
    const { ops, flow } = setup(aCheckpoint(), aWorkload(), (o) => o.on('keepLogs', 2));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(ops.argsOf('keepLogs')).toEqual([]);
    expect(cp.keptLogs).toBeUndefined();
  });

  it('a take that failed in preflight ran no CRIU step: none kept', async () => {
    const { ops, flow } = setup(aCheckpoint(), aWorkload(), (o) =>
      o.on('memoryAndDisk', preflightAnswer({ memKb: null, diskBytes: 1024 }), { node: 'node-c' }).on('keepLogs', 2),
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(ops.argsOf('keepLogs')).toEqual([]);
    expect(cp.keptLogs).toBeUndefined();
  });

  it("a failed restore keeps the destination's, per attempt, on the restore; a completed one none", async () => {
    const { ops, flow } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }), (o) =>
      o.on('inspectTree', undefined, { node: 'node-b' }).on('keepLogs', 3),
    );
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    const logs = '/var/lib/spotlift/logs/cp-1-r1';
    expect(keptFrom(ops, 'node-b')).toEqual([['/var/lib/spotlift/images/cp-1-r1', logs]]);
    expect(at(ops, 'node-b', 'keepLogs')).toBeLessThan(
      at(ops, 'node-b', 'removeDir', '/var/lib/spotlift/images/cp-1-r1'),
    );
    expect(ops.calls.filter((c) => c.node !== 'node-b' && c.op === 'keepLogs')).toEqual([]);
    expect(cp.restore!.keptLogs).toEqual([{ nodeId: 'node-b', dir: logs, files: 3 }]);
    expect(cp.restore!.error).toMatch(
      new RegExp(`restored pid 777 on node-b killed; CRIU's logs .* kept for 7 days in node-b:${logs}$`),
    );
    expect(cp.keptLogs).toBeUndefined();

    const ok = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }), (o) => o.on('keepLogs', 3));
    const restored = await ok.flow.restore('cp-1', 1);
    expect(restored.state).toBe('restored');
    expect(ok.ops.argsOf('keepLogs')).toEqual([]);
    expect(restored.restore!.keptLogs).toBeUndefined();
  });
});

describe('CheckpointFlow, forensic copies', () => {
  it('dumps with --leave-running, stores the images, and kills nothing: the workload runs on where it was', async () => {
    const { ops, did, flow, workloads } = setup(aCheckpoint({ mode: 'forensic' }));
    const seen: string[] = [];
    const save = workloads.save.bind(workloads);
    workloads.save = (w) => (seen.push(w.state), save(w));
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(phaseNames(cp.phases)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    const [dump] = ops.argsOf('dump', 'node-a');
    expect(dump![3]).toMatchObject({ leaveRunning: true });
    expect(did('node-a', 'killTree')).toHaveLength(0);
    expect(cp.phases.find((p) => p.name === 'commit')!.detail).toMatch(/forensic copy stored .* pid 4242 runs on/);
    // never 'migrating' (nothing may treat it as frozen or moving), never 'checkpointed'
    expect(seen.filter((s) => s !== 'running')).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('a storage checkpoint of the same workload still dumps --leave-stopped and kills the source', async () => {
    const { ops, did, flow } = setup(aCheckpoint());
    await flow.take('cp-1');
    const [dump] = ops.argsOf('dump', 'node-a');
    // without leaveRunning the dump leaves the tree stopped (--leave-stopped: the golden rows of criu dump)
    expect(dump![3].leaveRunning).toBeFalsy();
    expect(did('node-a', 'killTree')).toHaveLength(1);
  });

  it('restoring a forensic copy makes a clone: recorded as such, the workload record is not moved', async () => {
    const { flow, workloads } = setup({ ...aRestoreRequest(), mode: 'forensic' });
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(cp.restore).toMatchObject({ restoredPid: 777, clone: true });
    expect(cp.restore!.phases.find((p) => p.name === 'commit')!.detail).toMatch(/clone .* pid 777 on node-b/);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('restoring a guard checkpoint for its lost node moves the workload (no clone): the restored copy is it', async () => {
    const request = aRestoreRequest();
    const takeover = { fromNodeId: 'node-a', stalePid: 4242 };
    const { flow, workloads } = setup({ ...request, mode: 'guard', restore: { ...request.restore!, takeover } });
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(cp.restore?.clone).toBeUndefined();
    expect(cp.restore).toMatchObject({ restoredPid: 777, takeover });
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
  });
});

describe('encrypted at rest (a master key configured)', () => {
  const master = randomBytes(32);
  const SUMS = `${'a'.repeat(64)}  pages-1.img\n${'b'.repeat(64)}  core-4242.img`;
  const encrypted = () => {
    const { dataKey, encryption } = newDataKey(master);
    return { dataKey, encryption: { ...encryption, sums: SUMS } };
  };
  /** A local dump (no page-server) as the timed operation answers it. */
  const dumped = { ...said(), startNs: 1_000_000_000_000n, endNs: 1_001_000_000_000n };

  it('dumps without a page-server, encrypts on the source before the stream, the key on stdin only', async () => {
    let tarsBeforeEncrypt = -1;
    const { ops, shell, did, flow } = setup(
      aCheckpoint(),
      aWorkload(),
      (o, s) => {
        o.on('dumpLocal', dumped, { node: 'node-a' }).on(
          'encryptImages',
          () => {
            tarsBeforeEncrypt = s.ran('node-a', /(?:^|; )tar -C \S+ -cf/).length;
            return said(`${SUMS}\n`);
          },
          { node: 'node-a' },
        );
      },
      master,
    );
    const cp = await flow.take('cp-1');
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(did('node-c', 'startPageServer')).toEqual([]);
    expect(did('node-a', 'dump')).toEqual([]);
    const order = ops.sequence();
    expect(order.indexOf('dumpLocal@node-a')).toBeGreaterThan(-1);
    expect(order.indexOf('dumpLocal@node-a')).toBeLessThan(order.indexOf('encryptImages@node-a'));
    // Encrypted before any image left the source.
    expect(tarsBeforeEncrypt).toBe(0);
    expect(shell.ran('node-a', /(?:^|; )tar -C \S+ -cf/).length).toBeGreaterThan(0);
    const [[, dataKey]] = ops.argsOf('encryptImages', 'node-a') as [[string, string]];
    expect(dataKey).toMatch(/^[0-9a-f]{64}$/);
    // The data key is in no command line of the stream, nor in the record in clear (the operation sends it on
    // stdin: golden in process-ops.golden.spec.ts).
    expect(shell.calls.filter((c) => c.command.includes(dataKey))).toEqual([]);
    expect(JSON.stringify(cp)).not.toContain(dataKey);
    expect(cp.encryption).toMatchObject({ scheme: 'openssl-aes-256-ctr-pbkdf2', sums: SUMS });
  });

  it('encryption failing on the source: the source is resumed, the partial images removed', async () => {
    const { did, removed, flow, workloads } = setup(
      aCheckpoint(),
      aWorkload(),
      (o) =>
        o
          .on('dumpLocal', dumped, { node: 'node-a' })
          .on('encryptImages', said('ENCRYPT_FAILED pages-1.img\n', 4), { node: 'node-a' }),
      master,
    );
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/encrypting the images on node-a failed \(exit 4\): ENCRYPT_FAILED pages-1.img/);
    expect(did('node-a', 'resumeTree')).toHaveLength(1);
    expect(did('node-a', 'killTree')).toHaveLength(0);
    expect(removed('node-c')).toEqual([IMAGE_DIR]);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('a restore checks the recorded sums and decrypts on the destination before CRIU restores', async () => {
    const { dataKey, encryption } = encrypted();
    const { ops, flow } = setup(
      { ...aRestoreRequest(), encryption },
      aWorkload({ state: 'checkpointed' }),
      (o) => o.on('decryptImages', said(), { node: 'node-b' }),
      master,
    );
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(ops.argsOf('decryptImages', 'node-b').map(([, key, sums]) => [key, sums])).toEqual([[dataKey, SUMS]]);
    const order = ops.sequence();
    const restored = Math.max(order.indexOf('restore@node-b'), order.indexOf('armRestore.fire@node-b'));
    expect(restored).toBeGreaterThan(-1);
    expect(order.indexOf('decryptImages@node-b')).toBeGreaterThan(-1);
    expect(order.indexOf('decryptImages@node-b')).toBeLessThan(restored);
  });

  it('images that differ from the recorded sums: nothing restored, the checkpoint stays stored', async () => {
    const { encryption } = encrypted();
    const { did, flow } = setup(
      { ...aRestoreRequest(), encryption },
      aWorkload({ state: 'checkpointed' }),
      (o) => o.on('decryptImages', said('pages-1.img: FAILED\nTAMPERED\n', 5), { node: 'node-b' }),
      master,
    );
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(
      /differ from the checksums recorded .*pages-1.img: FAILED.*nothing was decrypted/,
    );
    expect(did('node-b', 'restore', 'armRestore.fire')).toEqual([]);
  });

  it('an orchestrator with another key: refused in preflight, nothing run on any node', async () => {
    const { encryption } = encrypted();
    const { ops, flow } = setup(
      { ...aRestoreRequest(), encryption },
      aWorkload({ state: 'checkpointed' }),
      undefined,
      randomBytes(32),
    );
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/encrypted under checkpoint key [0-9a-f]{16}; this orchestrator holds key/);
    expect(ops.calls.filter((c) => c.node !== 'node-b' || c.op !== 'removeDir')).toEqual([]);
  });
});

describe("encrypted at rest: the workload's declared files", () => {
  const master = randomBytes(32);
  const FILES_SUM = 'f'.repeat(64);
  const dumped = { ...said(), startNs: 1_000_000_000_000n, endNs: 1_001_000_000_000n };
  type Receive = Parameters<DirectoryStreamer['armPipe']>[3];
  /** The declared files' pipes, recorded and answered as whole (a relay is DirectoryStreamer's, tested there). */
  class FilesPipes extends DirectoryStreamer {
    readonly pipes: { from: string; to: string; send: string; receive: Receive }[] = [];
    constructor(
      shell: ScriptedNodeShell,
      private readonly events: string[],
    ) {
      super(shell);
    }
    override async armPipe(...args: Parameters<DirectoryStreamer['armPipe']>) {
      const [from, send, to, receive] = args;
      if (receive.what !== 'declared files') return super.armPipe(...args);
      this.events.push(`files ${from.id} -> ${to.id}`);
      this.pipes.push({ from: from.id, to: to.id, send: JSON.stringify(send), receive });
      return Promise.resolve({
        start: () => Promise.resolve({ bytes: 10_240, sha256: FILES_SUM, durationMs: 1 }),
        cancel: () => Promise.resolve(),
      });
    }
  }
  /** The flow over FilesPipes; `events` has the pipes armed and what the script adds, in order. */
  const withFiles = (
    script: (o: FakeProcessOps, events: string[]) => unknown,
    key: Uint8Array | undefined,
    cp = aCheckpoint(),
  ) => {
    const events: string[] = [];
    const pipes: FilesPipes[] = [];
    const kit = setup(
      cp,
      aWorkload({ paths: ['/srv/data'], ...(cp.state === 'restoring' ? { state: 'checkpointed' as const } : {}) }),
      (o) => script(o, events),
      key,
      (shell) => {
        pipes.push(new FilesPipes(shell, events));
        return pipes[0]!;
      },
    );
    return { ...kit, pipes: pipes[0]!, events };
  };
  const encrypting = (o: FakeProcessOps) =>
    o
      .on('dumpLocal', dumped, { node: 'node-a' })
      .on('encryptImages', said(`${'a'.repeat(64)}  pages-1.img\n`), { node: 'node-a' });

  it('taken: the orchestrator encrypts the tar after its guard (openssl format), its sum joins the record', async () => {
    const { flow, pipes } = withFiles(encrypting, master);
    const cp = await flow.take('cp-1');
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(pipes.pipes).toHaveLength(1);
    const [pipe] = pipes.pipes;
    expect([pipe!.from, pipe!.to]).toEqual(['node-a', 'node-c']);
    expect(pipe!.receive.guard).toEqual({ roots: ['/srv/data'] });
    expect(pipe!.receive.seal?.header.subarray(0, 8).toString('latin1')).toBe('Salted__');
    expect(cp.encryption!.sums).toBe(`${'a'.repeat(64)}  pages-1.img\n${FILES_SUM}  workload-files.tar`);
    expect(cp.phases.find((p) => p.name === 'transfer')?.detail).toMatch(
      /declared files \(\/srv\/data, encrypted by the orchestrator\)/,
    );
  });

  it('taken without a key: the tar is stored as sent (no seal)', async () => {
    const { flow, pipes } = withFiles(() => undefined, undefined);
    expect((await flow.take('cp-1')).state).toBe('stored');
    expect(pipes.pipes[0]!.receive.seal).toBeUndefined();
  });

  it('restored: the tar travels with the images, is checked and decrypted on the destination, then unpacked through the guard', async () => {
    const { encryption } = newDataKey(master);
    const sums = `${'a'.repeat(64)}  pages-1.img\n${FILES_SUM}  workload-files.tar`;
    const decrypting = (o: FakeProcessOps, events: string[]) =>
      o.on('decryptImages', () => (events.push('decryptImages'), said()), { node: 'node-b' });
    const { shell, flow, pipes, events } = withFiles(decrypting, master, {
      ...aRestoreRequest(),
      paths: ['/srv/data'],
      encryption: { ...encryption, sums },
    });
    const cp = await flow.restore('cp-1', 1);
    expect(cp.restore?.error).toBeUndefined();
    expect(cp.state).toBe('restored');
    // the images' copy from node-c leaves out logs and sums, not the encrypted tar
    const copy = shell.ran('node-c', /tar -C /)[0]!;
    expect(copy).toContain('./*.log|./SHA256SUMS)');
    expect(copy).not.toContain('workload-files.tar');
    expect(pipes.pipes.map((p) => [p.from, p.to])).toEqual([['node-b', 'node-b']]);
    expect(pipes.pipes[0]!.send).toContain('/var/lib/spotlift/images/cp-1-r1/dst/workload-files.tar');
    expect(pipes.pipes[0]!.receive.guard).toEqual({ roots: ['/srv/data'] });
    expect(events).toEqual(['decryptImages', 'files node-b -> node-b']);
  });

  it('a checkpoint encrypted before the tar was (its tar in clear, not in the sums): restored from the storage node as before', async () => {
    const { encryption } = newDataKey(master);
    const { shell, flow, pipes } = withFiles((o) => o.on('decryptImages', said(), { node: 'node-b' }), master, {
      ...aRestoreRequest(),
      paths: ['/srv/data'],
      encryption: { ...encryption, sums: `${'a'.repeat(64)}  pages-1.img` },
    });
    expect((await flow.restore('cp-1', 1)).state).toBe('restored');
    expect(shell.ran('node-c', /tar -C /)[0]).toContain('./workload-files.tar');
    expect(pipes.pipes.map((p) => [p.from, p.to])).toEqual([['node-c', 'node-b']]);
  });
});

describe('incremental guard checkpoints (a chain on the storage node)', () => {
  const PARENT_DIR = '/var/lib/spotlift/checkpoints/wl-1/cp-0';
  const parentCp = (over: Partial<CheckpointRecord> = {}) =>
    aCheckpoint({
      id: 'cp-0',
      mode: 'guard',
      imageDir: PARENT_DIR,
      state: 'stored',
      guardChain: { depth: 1, trackMem: true },
      ...over,
    });
  const link = { parentId: 'cp-0', depth: 2, trackMem: true };

  it("takes an incremental dump: the storage node's page-server links to the parent, the dump names it", async () => {
    const { ops, flow, checkpoints } = setup(aCheckpoint({ mode: 'guard', guardChain: link }), aWorkload(), (o) =>
      o.on('startPageServerWithParent', said(), { node: 'node-c' }).on('readFile', Buffer.from('parent inventory'), {
        node: 'node-c',
        when: (_n, path) => path === `${PARENT_DIR}/inventory.img`,
      }),
    );
    await checkpoints.save(parentCp());
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(ops.argsOf('startPageServerWithParent', 'node-c').map((a) => [a[0], a[2]])).toEqual([
      [IMAGE_DIR, '../cp-0'],
    ]);
    expect(ops.argsOf('startPageServer')).toEqual([]);
    expect(ops.argsOf('dump', 'node-a')[0]![3]).toMatchObject({ leaveRunning: true, trackMem: true, prev: '../cp-0' });
    // the parent's inventory.img back on the source where --prev-images-dir points (CRIU's pid-reuse check)
    const [src] = ops.argsOf('dump', 'node-a')[0]!.slice(1, 2) as [string];
    expect(ops.argsOf('writeFile', 'node-a').map(([path, data]) => [path, data.toString()])).toContainEqual([
      `${src.slice(0, src.lastIndexOf('/'))}/cp-0/inventory.img`,
      'parent inventory',
    ]);
  });

  it("the parent's inventory gone from the storage node: the take fails before any freeze", async () => {
    const { ops, flow, checkpoints } = setup(aCheckpoint({ mode: 'guard', guardChain: link }), aWorkload(), (o) =>
      o.on('readFile', undefined, { node: 'node-c', when: (_n, path) => path.endsWith('/inventory.img') }),
    );
    await checkpoints.save(parentCp());
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/inventory.img is missing on node-c: chain broken/);
    expect(ops.argsOf('dump')).toEqual([]);
  });

  it('a full guard dump on a node with soft-dirty tracks memory, with no parent', async () => {
    const { ops, flow } = setup(aCheckpoint({ mode: 'guard', guardChain: { depth: 1, trackMem: true } }));
    await flow.take('cp-1');
    expect(ops.argsOf('startPageServer', 'node-c')).toHaveLength(1);
    const opts = ops.argsOf('dump', 'node-a')[0]![3];
    expect(opts).toMatchObject({ leaveRunning: true, trackMem: true });
    expect(opts).not.toHaveProperty('prev');
  });

  it('a restore checks and streams the parent next to the images, where their parent link points', async () => {
    const { ops, shell, flow, checkpoints } = setup(
      { ...aRestoreRequest(), mode: 'guard', guardChain: link },
      aWorkload({ state: 'checkpointed' }),
    );
    await checkpoints.save(parentCp());
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(ops.argsOf('checkImages', 'node-c').map(([dir]) => dir)).toEqual([IMAGE_DIR, PARENT_DIR]);
    const made = ops.argsOf('makeDir', 'node-b').map(([dir]) => dir);
    const dst = made.find((d) => d.endsWith('/dst'))!;
    // ../cp-0 from the images' directory
    expect(made).toContain(`${dst.slice(0, -'/dst'.length)}/cp-0`);
    expect(shell.ran('node-c', /tar -C/).map((c) => c.includes(PARENT_DIR))).toEqual([true, false]);
    expect(cp.restore!.imageBytes).toBe(2 * TAR.length);
  });

  it.each([
    ['gone', undefined, /'cp-0', which is not stored with it/],
    ['failed', parentCp({ state: 'failed' }), /'cp-0', which is failed/],
    ['on another storage node', parentCp({ storageNodeId: 'node-b' }), /not stored with it/],
  ])('a parent %s: the restore fails its preflight, nothing streamed or restored', async (_, parent, error) => {
    const { did, shell, flow, checkpoints } = setup(
      { ...aRestoreRequest(), mode: 'guard', guardChain: link },
      aWorkload({ state: 'checkpointed' }),
    );
    if (parent) await checkpoints.save(parent);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(error);
    expect(shell.ran('node-c', /tar -C/)).toHaveLength(0);
    expect(did('node-b', 'restore', 'armRestore.fire')).toHaveLength(0);
  });
});
