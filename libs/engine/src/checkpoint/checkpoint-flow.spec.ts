/**
 * The checkpoint flow's decisions, with a scripted node shell replaying real outputs (CRIU's stats images
 * captured from real runs). Real CRIU on the lab nodes: test/checkpoint.e2e-spec.ts.
 * node-a runs the workload, node-c stores the checkpoint, node-b receives the restore.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { CheckpointRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { ScriptedNodeShell, aNode, aWorkload, scriptHealthyPreflight } from '@spotlift/testing';
import { DirectoryStreamer } from '@spotlift/transport';
import { SystemClock } from '../clock.js';
import { criuFixture } from '@spotlift/testing';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { NodeOps } from '../node-ops/node-ops.js';
import { CheckpointFlow } from './checkpoint-flow.js';
import { newDataKey } from './checkpoint-crypto.js';

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

function setup(checkpoint: CheckpointRecord, workload: WorkloadRecord = aWorkload(), checkpointKey?: Uint8Array) {
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
    new NodeOps(shell),
    new DirectoryStreamer(shell),
    new SystemClock(),
    { ...DEFAULT_ENGINE_CONFIG, criuIdleTimeoutMs: 1_000, ...(checkpointKey ? { checkpointKey } : {}) },
  );
  return { shell, flow, checkpoints, workloads };
}

/** Healthy nodes; tests override single steps by adding rules before these. */
function scriptHealthy(shell: ScriptedNodeShell): void {
  scriptHealthyPreflight(shell)
    .on({ node: 'node-a', match: /echo TREE/, reply: { stdout: 'TREE 4242 4243\nRSS_KB 65536\n' } })
    .on({ node: 'node-b', match: /echo TREE/, reply: { stdout: 'TREE 777 778\nRSS_KB 65536\n' } })
    .on({ node: 'node-a', match: /criu dump/, reply: { stdout: 'SPOTLIFT_TIMES 1000000000000 1001000000000 0\n' } })
    // The stream: node-a -> node-c when taking, node-c -> node-b when restoring.
    .on({ match: /(?:^|; )tar -C \S+ -cf/, reply: { stdout: TAR.toString() } })
    .on({ node: 'node-c', match: /STORED_KB/, reply: { stdout: 'STORED_KB 70000\n' } })
    .on({ node: 'node-c', match: /sha256sum -c/, reply: { code: 0 } })
    .on({ match: /sha256sum < /, reply: { stdout: `${TAR_SHA}\n` } })
    .on({
      node: 'node-b',
      match: /criu restore/,
      reply: { stdout: 'RESTORED_PID 777\nSPOTLIFT_TIMES 1001100000000 1001300000000 0\n' },
    })
    .on({ match: /kill -KILL/, reply: { stdout: 'STATE gone\n' } })
    .on({ node: 'node-a', match: /kill -CONT/, reply: { stdout: 'STATE S\n' } })
    .on({ node: 'node-b', match: /State:/, reply: { stdout: 'STATE S\n' } })
    .on({
      node: 'node-c',
      match: /base64 -w0 .*stats-dump/,
      reply: { stdout: criuFixture('images/page-server/stats-dump').toString('base64') },
    })
    .on({
      node: 'node-b',
      match: /base64 -w0 .*stats-restore/,
      reply: { stdout: criuFixture('images/page-server/stats-restore').toString('base64') },
    });
}

const phaseNames = (phases: CheckpointRecord['phases']) => phases.map((p) => `${p.name}:${p.ok ? 'ok' : 'fail'}`);

describe('CheckpointFlow.take', () => {
  it('dumps to the storage node, seals the images there, and only then kills the source', async () => {
    const { shell, flow, workloads, checkpoints } = setup(aCheckpoint());
    scriptHealthy(shell);
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
    expect(shell.ran('node-c', /criu page-server/)[0]).toContain(`-D ${IMAGE_DIR} `);
    expect(shell.ran('node-c', /mkfifo/)[0]).toContain(IMAGE_DIR);
    // The CPU description a later restore checks against travels with the images.
    expect(shell.ran('node-a', /criu cpuinfo dump/)[0]).toContain('-D /var/lib/spotlift/images/cp-1/src');
    const order = shell.calls.map((c) => `${c.node} ${c.command}`);
    const sealed = order.findIndex((c) => c.startsWith('node-c') && /STORED_KB/.test(c));
    const killed = order.findIndex((c) => c.startsWith('node-a') && /kill -KILL/.test(c));
    expect(sealed).toBeGreaterThan(-1);
    expect(killed).toBeGreaterThan(sealed);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(0);
    // Only the source's working directory is removed; the stored images stay.
    expect(shell.ran('node-a', /rm -rf '?\/var\/lib\/spotlift\/images\/cp-1'?$/)).toHaveLength(1);
    expect(shell.ran('node-c', /rm -rf/).filter((c) => !/mkdir/.test(c))).toHaveLength(0);
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

  it.each([
    ['the image stream breaks (checksum mismatch)', { match: /sha256sum < /, reply: { stdout: 'bad\n' } }, 'transfer'],
    [
      'the images are incomplete on the storage node',
      { match: /STORED_KB/, reply: { stdout: 'MISSING pages-*.img\nSTORED_KB 12\n' } },
      'verify',
    ],
    [
      'the dump fails',
      { node: 'node-a', match: /criu dump/, reply: { code: 1, stderr: 'Error (criu/cr-dump.c)' } },
      'dump',
    ],
  ])('%s: the source is resumed, the partial images removed, nothing killed', async (_what, rule, phase) => {
    const { shell, flow, workloads } = setup(aCheckpoint());
    shell.on(rule);
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.phases.find((p) => p.name === phase)?.ok).toBe(false);
    expect(phaseNames(cp.phases)).toContain('rollback:ok');
    expect(phaseNames(cp.phases)).not.toContain('commit:ok');
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(0);
    expect(shell.ran('node-c', new RegExp(`^rm -rf '?${IMAGE_DIR}'?$`))).toHaveLength(1);
    expect(cp.error).toBeTruthy();
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('another session holding the node-side lock of the process (e.g. a migration): failed, nothing frozen or resumed', async () => {
    const { shell, flow, workloads } = setup(aCheckpoint({ claimKey: 'proc:b:n:4242:1' }));
    shell.on({ node: 'node-a', match: /flock -n/, reply: { code: 75, stdout: 'LOCK_BUSY\n' } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toBe(
      "another session holds the node-side lock of workload 'wl-1' on node-a (e.g. a migration); nothing was frozen",
    );
    expect(shell.ran('node-a', /^l=\/run\/spotlift\/locks\/proc_b_n_4242_1\.lock; f=/)).toHaveLength(1);
    expect(shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('fails before any freeze when the storage node lacks disk: nothing touched', async () => {
    const { shell, flow, workloads } = setup(aCheckpoint());
    shell.on({ node: 'node-c', match: /criu check/, reply: { stdout: 'Looks good.\nDISK_AVAIL_BYTES 1024\n' } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/storage node node-c has 0 MiB free under \/var\/lib\/spotlift\/checkpoints/);
    expect(shell.ran('node-a', /criu dump|kill -/)).toHaveLength(0);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('records the page transport it used; one the orchestrator does not offer fails before any freeze', async () => {
    const ok = setup(aCheckpoint());
    scriptHealthy(ok.shell);
    expect(await ok.flow.take('cp-1')).toMatchObject({ state: 'stored', transport: 'tcp' });

    // this flow was given tcp only (the app gives tcp, tls and ssh)
    const { shell, flow, workloads } = setup(aCheckpoint({ transport: 'tls' }));
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/page transport 'tls' is not configured on this orchestrator \(available: tcp\)/);
    expect(shell.ran('node-a', /criu dump|kill -/)).toHaveLength(0);
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
    const { shell, flow, workloads } = setup(dumping, aWorkload({ state: 'migrating' }));
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.notes?.[0]).toMatch(/stopped during 'dump'/);
    expect(shell.ran('node-a', /criu dump/)).toHaveLength(0);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
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
    const { shell, flow } = setup(committing, aWorkload({ state: 'migrating' }));
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(0);
  });
});

/** Every phase on the record ended; the ones a dead worker left open are marked interrupted. */
const openPhases = (phases: CheckpointRecord['phases']) => phases.filter((p) => p.endedAt === undefined);

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
    const { shell, flow } = setup(dumping, aWorkload({ state: 'migrating' }));
    scriptHealthy(shell);
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
    const { shell, flow } = setup(preparing, aWorkload({ state: 'migrating' }));
    scriptHealthy(shell);
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
    const { shell, flow } = setup(request, aWorkload({ state: 'checkpointed' }));
    scriptHealthy(shell);
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
    const { shell, flow } = setup(request, aWorkload({ state: 'checkpointed' }));
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(openPhases(cp.restore!.phases)).toEqual([]);
    expect(cp.restore!.phases[1]).toMatchObject({ name: 'transfer', ok: false, interrupted: true });
  });
});

describe('CheckpointFlow.restore', () => {
  it('checks the stored images, streams them to the destination, restores, verifies, moves the workload', async () => {
    const { shell, flow, workloads } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }));
    scriptHealthy(shell);
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
    expect(shell.ran('node-c', /sha256sum -c/)).toHaveLength(1);
    expect(shell.ran('node-b', /criu cpuinfo check/)).toHaveLength(1);
    expect(shell.ran('node-c', /tar -C/)[0]).toContain(IMAGE_DIR);
    expect(cp.restore).toMatchObject({ restoredPid: 777, imageBytes: TAR.length });
    expect(cp.restore!.criu?.pagesRestored ?? cp.restore!.criu?.restoreTimeUs).toBeDefined();
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
    // The images stay on the storage node until DELETE.
    expect(shell.ran('node-c', /rm -rf/)).toHaveLength(0);
  });

  it('a restore that fails verification kills what it restored; the checkpoint stays stored', async () => {
    const { shell, flow, workloads } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }));
    shell.on({ node: 'node-b', match: /echo TREE/, reply: { code: 3 } });
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/restored pid 777 on node-b killed/);
    expect(shell.ran('node-b', /kill -KILL/)).toHaveLength(1);
    expect((await workloads.get('wl-1'))!.state).toBe('checkpointed');
  });

  it('damaged images fail the preflight; nothing is streamed or restored', async () => {
    const { shell, flow } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }));
    shell.on({ node: 'node-c', match: /sha256sum -c/, reply: { code: 1, stdout: 'pages-1.img: FAILED\n' } });
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/damaged or gone: pages-1.img: FAILED/);
    expect(shell.ran('node-b', /criu restore|mkfifo/)).toHaveLength(0);
  });

  it('a stale job (another attempt, or not restoring) changes nothing', async () => {
    const { shell, flow } = setup(aRestoreRequest());
    const cp = await flow.restore('cp-1', 2);
    expect(cp.state).toBe('restoring');
    expect(shell.calls).toHaveLength(0);
  });
});

describe("a failed checkpoint's CRIU logs", () => {
  const KEEP = /KEPT \$n/;
  const at = (shell: ScriptedNodeShell, node: string, re: RegExp) =>
    shell.calls.findIndex((c) => c.node === node && re.test(c.command));

  it('a failed take keeps them on the source and the storage node before the images go, and says where', async () => {
    const { shell, flow, checkpoints } = setup(aCheckpoint());
    shell
      .on({ node: 'node-a', match: /criu dump/, reply: { code: 1, stderr: 'Error (criu/cr-dump.c)' } })
      .on({ node: 'node-a', match: KEEP, reply: { stdout: 'KEPT 2\n' } })
      .on({ node: 'node-c', match: KEEP, reply: { stdout: 'KEPT 1\n' } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    const logs = '/var/lib/spotlift/logs/cp-1';
    // The source's working directory (src/dump.log) and the storage node's partial images (page-server.log).
    const keepA = at(shell, 'node-a', KEEP);
    const keepC = at(shell, 'node-c', KEEP);
    expect(shell.calls[keepA]!.command).toContain(`src=/var/lib/spotlift/images/cp-1; dst=${logs};`);
    expect(shell.calls[keepC]!.command).toContain(`src=${IMAGE_DIR}; dst=${logs};`);
    expect(keepA).toBeLessThan(at(shell, 'node-a', /^rm -rf '?\/var\/lib\/spotlift\/images\/cp-1'?$/));
    expect(keepC).toBeLessThan(at(shell, 'node-c', new RegExp(`^rm -rf '?${IMAGE_DIR}'?$`)));
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
    const { shell, flow } = setup(aCheckpoint());
    shell.on({ match: KEEP, reply: { stdout: 'KEPT 2\n' } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(shell.calls.filter((c) => KEEP.test(c.command))).toEqual([]);
    expect(cp.keptLogs).toBeUndefined();
  });

  it('a take that failed in preflight ran no CRIU step: none kept', async () => {
    const { shell, flow } = setup(aCheckpoint());
    shell
      .on({ node: 'node-c', match: /criu check/, reply: { stdout: 'Looks good.\nDISK_AVAIL_BYTES 1024\n' } })
      .on({ match: KEEP, reply: { stdout: 'KEPT 2\n' } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(shell.calls.filter((c) => KEEP.test(c.command))).toEqual([]);
    expect(cp.keptLogs).toBeUndefined();
  });

  it("a failed restore keeps the destination's, per attempt, on the restore; a completed one none", async () => {
    const { shell, flow } = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }));
    shell
      .on({ node: 'node-b', match: /echo TREE/, reply: { code: 3 } })
      .on({ match: KEEP, reply: { stdout: 'KEPT 3\n' } });
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    const logs = '/var/lib/spotlift/logs/cp-1-r1';
    const keep = at(shell, 'node-b', KEEP);
    expect(shell.calls[keep]!.command).toContain(`src=/var/lib/spotlift/images/cp-1-r1; dst=${logs};`);
    expect(keep).toBeLessThan(at(shell, 'node-b', /^rm -rf '?\/var\/lib\/spotlift\/images\/cp-1-r1'?$/));
    expect(shell.calls.filter((c) => c.node !== 'node-b' && KEEP.test(c.command))).toEqual([]);
    expect(cp.restore!.keptLogs).toEqual([{ nodeId: 'node-b', dir: logs, files: 3 }]);
    expect(cp.restore!.error).toMatch(
      new RegExp(`restored pid 777 on node-b killed; CRIU's logs .* kept for 7 days in node-b:${logs}$`),
    );
    expect(cp.keptLogs).toBeUndefined();

    const ok = setup(aRestoreRequest(), aWorkload({ state: 'checkpointed' }));
    ok.shell.on({ match: KEEP, reply: { stdout: 'KEPT 3\n' } });
    scriptHealthy(ok.shell);
    const restored = await ok.flow.restore('cp-1', 1);
    expect(restored.state).toBe('restored');
    expect(ok.shell.calls.filter((c) => KEEP.test(c.command))).toEqual([]);
    expect(restored.restore!.keptLogs).toBeUndefined();
  });
});

describe('CheckpointFlow, forensic copies', () => {
  it('dumps with --leave-running, stores the images, and kills nothing: the workload runs on where it was', async () => {
    const { shell, flow, workloads } = setup(aCheckpoint({ mode: 'forensic' }));
    scriptHealthy(shell);
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
    const dump = shell.ran('node-a', /criu dump/)[0]!;
    expect(dump).toContain('--leave-running');
    expect(dump).not.toContain('--leave-stopped');
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(0);
    expect(cp.phases.find((p) => p.name === 'commit')!.detail).toMatch(/forensic copy stored .* pid 4242 runs on/);
    // never 'migrating' (nothing may treat it as frozen or moving), never 'checkpointed'
    expect(seen.filter((s) => s !== 'running')).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('a storage checkpoint of the same workload still dumps --leave-stopped and kills the source', async () => {
    const { shell, flow } = setup(aCheckpoint());
    scriptHealthy(shell);
    await flow.take('cp-1');
    expect(shell.ran('node-a', /criu dump/)[0]).toContain('--leave-stopped');
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(1);
  });

  it('restoring a forensic copy makes a clone: recorded as such, the workload record is not moved', async () => {
    const { shell, flow, workloads } = setup({ ...aRestoreRequest(), mode: 'forensic' });
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(cp.restore).toMatchObject({ restoredPid: 777, clone: true });
    expect(cp.restore!.phases.find((p) => p.name === 'commit')!.detail).toMatch(/clone .* pid 777 on node-b/);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('restoring a guard checkpoint for its lost node moves the workload (no clone): the restored copy is it', async () => {
    const request = aRestoreRequest();
    const takeover = { fromNodeId: 'node-a', stalePid: 4242 };
    const { shell, flow, workloads } = setup({ ...request, mode: 'guard', restore: { ...request.restore!, takeover } });
    scriptHealthy(shell);
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

  it('dumps without a page-server, encrypts on the source before the stream, the key on stdin only', async () => {
    const { shell, flow } = setup(aCheckpoint(), aWorkload(), master);
    shell.on({ node: 'node-a', match: /openssl enc -e/, reply: { stdout: `${SUMS}\n` } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(shell.ran('node-c', /criu page-server/)).toEqual([]);
    expect(shell.ran('node-a', /criu dump/)[0]).not.toContain('--page-server');
    const at = (node: string, re: RegExp) => shell.calls.findIndex((c) => c.node === node && re.test(c.command));
    const dump = at('node-a', /criu dump/);
    const enc = at('node-a', /openssl enc -e/);
    const stream = at('node-a', /(?:^|; )tar -C \S+ -cf/);
    expect(dump).toBeGreaterThan(-1);
    expect(dump).toBeLessThan(enc);
    expect(enc).toBeLessThan(stream);
    const call = shell.calls.find((c) => /openssl enc -e/.test(c.command))!;
    const dataKey = call.stdin!.trim();
    expect(dataKey).toMatch(/^[0-9a-f]{64}$/);
    // The data key is in no command line on any node, nor in the record in clear.
    expect(shell.calls.filter((c) => c.command.includes(dataKey))).toEqual([]);
    expect(JSON.stringify(cp)).not.toContain(dataKey);
    expect(cp.encryption).toMatchObject({ scheme: 'openssl-aes-256-ctr-pbkdf2', sums: SUMS });
  });

  it('encryption failing on the source: the source is resumed, the partial images removed', async () => {
    const { shell, flow, workloads } = setup(aCheckpoint(), aWorkload(), master);
    shell.on({ node: 'node-a', match: /openssl enc -e/, reply: { code: 4, stdout: 'ENCRYPT_FAILED pages-1.img\n' } });
    scriptHealthy(shell);
    const cp = await flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/encrypting the images on node-a failed \(exit 4\): ENCRYPT_FAILED pages-1.img/);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(0);
    expect(shell.ran('node-c', new RegExp(`^rm -rf '?${IMAGE_DIR}'?$`))).toHaveLength(1);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('a restore checks the recorded sums and decrypts on the destination before CRIU restores', async () => {
    const { dataKey, encryption } = encrypted();
    const { shell, flow } = setup({ ...aRestoreRequest(), encryption }, aWorkload({ state: 'checkpointed' }), master);
    shell.on({ node: 'node-b', match: /openssl enc -d/, reply: { code: 0 } });
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    const call = shell.calls.find((c) => c.node === 'node-b' && /openssl enc -d/.test(c.command))!;
    expect(call.stdin).toBe(`${dataKey}\n${SUMS}\n`);
    const order = shell.calls.map((c) => `${c.node} ${c.command}`);
    expect(order.findIndex((c) => /openssl enc -d/.test(c))).toBeLessThan(
      order.findIndex((c) => c.startsWith('node-b') && /criu restore/.test(c)),
    );
  });

  it('images that differ from the recorded sums: nothing restored, the checkpoint stays stored', async () => {
    const { encryption } = encrypted();
    const { shell, flow } = setup({ ...aRestoreRequest(), encryption }, aWorkload({ state: 'checkpointed' }), master);
    shell.on({
      node: 'node-b',
      match: /openssl enc -d/,
      reply: { code: 5, stdout: 'pages-1.img: FAILED\nTAMPERED\n' },
    });
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(
      /differ from the checksums recorded .*pages-1.img: FAILED.*nothing was decrypted/,
    );
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
  });

  it('an orchestrator with another key: refused in preflight, nothing run on any node', async () => {
    const { encryption } = encrypted();
    const { shell, flow } = setup(
      { ...aRestoreRequest(), encryption },
      aWorkload({ state: 'checkpointed' }),
      randomBytes(32),
    );
    scriptHealthy(shell);
    const cp = await flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/encrypted under checkpoint key [0-9a-f]{16}; this orchestrator holds key/);
    expect(shell.calls.filter((c) => c.node !== 'node-b' || !/rm -rf/.test(c.command))).toEqual([]);
  });
});
