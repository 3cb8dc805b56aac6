/**
 * Pre-copy of a Podman container through the engine, the container kind's operations faked as data
 * (FakePodmanOps) and the node-level ones answered by name (FakeProcessOps): the pre-checkpoint round while
 * the container runs, the `--with-previous` final checkpoint, `--import-previous` at restore, the refusal
 * where the source cannot track dirty memory, and the rollbacks. The commands themselves are in the golden
 * table; the real thing between two VMs in test/qemu/container-precopy.qemu-spec.ts.
 */
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { DirectoryStreamer } from '@spotlift/transport';
import {
  FakePodmanOps,
  FakeProcessOps,
  ScriptedNodeShell,
  aContainer,
  aMigration,
  aNode,
  aWorkload,
  fakeNodeLock,
  phaseNames,
} from '@spotlift/testing';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { MigrationEngine } from '../migration-engine.js';
import { SystemClock } from '../clock.js';
import type { RunControl } from '../run-control.js';

const C = aContainer({ mainPid: 4242 });
const ID12 = C.id.slice(0, 12);

function kit(opts: { softDirty?: boolean; migration?: Partial<MigrationRecord> } = {}) {
  // The node-level operations answered by name; the shell is only the relayed stream's.
  const shell = new ScriptedNodeShell();
  const ops = new FakeProcessOps()
    .on('memAvailableBytes', 8_000_000 * 1024)
    .on('inspectTree', (_n, pid) => ({ pids: [pid], rssBytes: 65536 * 1024 }))
    .on(
      'checkFeature',
      // CRIU 4.2.1's answer either way (the "no" is the project machine's kernel)
      opts.softDirty === false
        ? {
            feature: 'mem_dirty_track',
            supported: false,
            known: true,
            reason: 'Dirty tracking is OFF. Memory snapshot will not work.',
          }
        : { feature: 'mem_dirty_track', supported: true, known: true },
      { when: (_n, feature) => feature === 'mem_dirty_track' },
    )
    .on('makeDir', undefined)
    .on('removeDir', true)
    .on('holdLock', (_n, key) => fakeNodeLock(`/run/spotlift/locks/${key}.lock`))
    .on('waitCriuIdle', { idle: true, pids: [] })
    .on('keepLogs', 0);
  const podman = new FakePodmanOps({
    'node-a': { containers: [{ ...C }], images: [C.image.id] },
    'node-b': { images: [C.image.id] },
  });
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b'));
  void migrations.save(aMigration({ strategy: 'pre-copy', ...opts.migration }));
  void workloads.save(
    aWorkload({ kind: 'podman', container: C.id, containerName: C.name, image: C.image, pid: 4242, tree: [4242] }),
  );
  const engine = new MigrationEngine(
    migrations,
    workloads,
    nodes,
    ops.asNodeOps(),
    new DirectoryStreamer(shell),
    new SystemClock(),
    { ...DEFAULT_ENGINE_CONFIG, cleanupRetryMs: 0, cancelPollMs: 5 },
    undefined,
    undefined,
    undefined,
    undefined,
    podman.asPodmanOps(),
  );
  const control: RunControl = {
    cancelRequested: () => Promise.resolve(false),
    claimCommit: () => Promise.resolve(true),
  };
  const running = (node: string) => podman.container(node, C.id)?.running === true;
  return { podman, workloads, running, ops, run: () => engine.run('mig-1', control) };
}

describe('container pre-copy (kind podman)', () => {
  it('pre-checkpoints while the container runs, then checkpoints --with-previous and restores with --import-previous', async () => {
    const k = kit();
    const m = await k.run();
    expect(m.error).toBeUndefined();
    expect(m.state).toBe('completed');
    expect(m.strategy).toBe('pre-copy');
    expect(phaseNames(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'precopy:ok',
      'dump:ok',
      'restore:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    const order = (call: string) => k.podman.calls.indexOf(call);
    const pre = k.podman.calls.findIndex((c) => c.startsWith(`preCheckpoint node-a ${ID12}`));
    expect(pre).toBeGreaterThan(-1);
    // the round ran while the container ran; the final one (the freeze) after it, armed with its restore
    expect(pre).toBeLessThan(order(`checkpoint node-a ${ID12} with-previous`));
    const armedRestore = order(
      'armRestoreImport node-b:/var/lib/spotlift/images/mig-1/dst/checkpoint.tar,/var/lib/spotlift/images/mig-1/dst/pre-checkpoint.tar',
    );
    expect(armedRestore).toBeGreaterThan(pre);
    expect(armedRestore).toBeLessThan(order(`checkpoint node-a ${ID12} with-previous`));
    // the round's stream went into the destination's pre-checkpoint archive
    expect(k.podman.preArchives).toEqual(new Set(['node-b:/var/lib/spotlift/images/mig-1/dst/pre-checkpoint.tar']));
    // exactly one running copy: on node-b, the source's removed after the restored one ran
    expect(k.running('node-b')).toBe(true);
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect(order(`restoreImport node-b`)).toBeLessThan(order(`remove node-a:${ID12}`));
    expect(m.rounds).toHaveLength(1);
    expect(m.rounds![0]).toMatchObject({ round: 1, pagesWritten: 68_000, bytes: 68_000 * 4096, durationMs: 14_000 });
    expect(m.precopy?.stopReason).toMatch(
      /^Podman keeps one pre-checkpoint per container.*; final freeze at most 14300 ms \(as if every page were dirty again\) against a 1000 ms budget$/,
    );
    expect(m.precopy?.predictedFinalFreezeMs).toBe(14_300);
    // the freeze wrote only what the container dirtied since the round
    expect(m.precopy?.finalPagesWritten).toBe(4_000);
    expect(m.criu.dump).toMatchObject({ pagesWritten: 4_000, pagesSkippedParent: 62_000 });
    expect(m.container?.archiveBytes).toBe(20_000_000);
    expect(m.downtimeMs).toBe(2500);
    const w = await k.workloads.get('wl-1');
    expect(w).toMatchObject({ nodeId: 'node-b', state: 'running', pid: k.podman.container('node-b', C.id)!.mainPid });
    expect(k.ops.unanswered).toEqual([]);
  });

  it('a commit refused once by the source node and finished by the next attempt keeps the freeze figures (qemu CI run)', async () => {
    const k = kit();
    k.podman.fail.removeRefusedOnce = ['node-a'];
    // the first attempt: verified on node-b, then the source's removal refused: retried (the job is not ended)
    await expect(k.run()).rejects.toThrow(/refused an SSH session channel/);
    expect(k.running('node-b')).toBe(true);
    expect(k.podman.container('node-a', C.id)).toBeDefined();
    // the next attempt: recovery finishes the commit only; what the freeze measured is still on the record
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(phaseNames(m).slice(-3)).toEqual(['commit:fail', 'commit:ok', 'cleanup:ok']);
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect(m.precopy?.finalPagesWritten).toBe(4_000);
    expect(m.criu.dump).toMatchObject({ pagesWritten: 4_000 });
    expect(m.downtimeMs).toBe(2500);
    expect(m.container).toMatchObject({ frozenMs: expect.any(Number), restoreMs: expect.any(Number) });
  });

  it('refuses before anything runs where the source cannot track dirty memory, naming why', async () => {
    const k = kit({ softDirty: false });
    const m = await k.run();
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /pre-copy is not available: node-a cannot track dirty memory \(criu check --feature mem_dirty_track: .*Dirty tracking is OFF/,
    );
    expect(k.podman.calls).toEqual([]);
    expect(k.ops.argsOf('checkFeature', 'node-a')).toEqual([['mem_dirty_track']]);
    expect(k.running('node-a')).toBe(true);
  });

  it('a pre-checkpoint failing mid-round fails the job before any freeze: the container runs on the source only', async () => {
    const k = kit();
    k.podman.fail.preCheckpoint = 'Error: criu failed: type PRE_DUMP errno 0';
    const m = await k.run();
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/pre-checkpoint of the container on node-a failed \(it keeps running there\).*PRE_DUMP/);
    expect(phaseNames(m).slice(0, 3)).toEqual(['preflight:ok', 'prepare:ok', 'precopy:fail']);
    expect(k.podman.calls.filter((c) => c.startsWith('checkpoint '))).toEqual([]);
    expect(k.podman.ran('restoreImport')).toEqual([]);
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
    expect(await k.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
  });

  it('rolls back a restore that failed after the freeze: the source restored from its kept checkpoint', async () => {
    const k = kit();
    k.podman.fail.restore = 'Error: OCI runtime error: runc: criu failed: type NOTIFY errno 0';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(phaseNames(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'precopy:ok',
      'dump:ok',
      'restore:fail',
      'rollback:ok',
      'cleanup:ok',
    ]);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.ran('restoreLocal')).toEqual([`node-a:${ID12}`]);
    expect(await k.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
  });

  it('rolls back when the final checkpoint stops the container and its stream breaks', async () => {
    const k = kit();
    k.podman.fail.checkpointAfterFreeze = 'stream to node-b closed';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/checkpoint of the container on node-a failed: stream to node-b closed/);
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
  });

  it('sends the pre-checkpoint and the final archive node to node over the tcp route, recorded on the job', async () => {
    const k = kit();
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.routes).toEqual(['pre direct', 'archive direct']);
    expect(m.container?.route).toMatch(/^direct tcp: node-a -> node-b listening on \S+:\d+$/);
    expect(m.phases.find((p) => p.name === 'precopy')?.detail).toMatch(
      /^pre-checkpoint streamed to node-b \(direct tcp\)/,
    );
  });

  it('a direct listener that does not come up for the round relays the round and the final archive', async () => {
    const k = kit();
    k.podman.fail.directListenerDown = 'the listener on node-b port 40000 ended before a connection (97): port in use';
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.routes).toEqual(['pre relay', 'archive relay']);
    expect(m.container?.route).toMatch(
      /^relay: .*direct tcp route failed before the freeze: arming the archive's listener: .*port in use$/,
    );
  });

  it('skips the round when the deadline cannot fit it and the final checkpoint, going straight to a full one', async () => {
    // 64 MiB at the assumed 400 MiB/s: the round and the final checkpoint need about 620 ms; 300 ms are left
    const k = kit({ migration: { deadline: new Date(Date.now() + 300).toISOString() } });
    const m = await k.run();
    expect(m.error).toBeUndefined();
    expect(m.state).toBe('completed');
    expect(m.strategy).toBe('pre-copy');
    expect(k.podman.calls.filter((c) => c.startsWith('preCheckpoint'))).toEqual([]);
    expect(k.podman.calls).toContain(`checkpoint node-a ${ID12}`);
    expect(k.podman.calls).toContain('armRestoreImport node-b:/var/lib/spotlift/images/mig-1/dst/checkpoint.tar');
    expect(m.rounds).toEqual([]);
    expect(m.precopy?.stopReason).toMatch(
      /^no pre-checkpoint round: the deadline leaves \d+ ms, a round of 67108864 bytes and the final checkpoint need about 620 ms; straight to the final checkpoint$/,
    );
    expect(m.phases.find((p) => p.name === 'precopy')?.detail).toBe(m.precopy?.stopReason);
    expect(k.running('node-b')).toBe(true);
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
  });
});
