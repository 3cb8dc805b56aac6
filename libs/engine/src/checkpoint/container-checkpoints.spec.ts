/**
 * A Podman container's checkpoint to a storage node and its restore, through CheckpointFlow, with the
 * container kind's operations faked as data (FakePodmanOps) and the node-level ones (lock, disk and memory,
 * the checksum list) answered by name (FakeProcessOps): the order of the commit points and each guard of
 * "exactly one running copy". The real thing: test/containers.e2e-spec.ts. node-a runs the container, node-c
 * stores, node-b restores.
 */
import { randomBytes } from 'node:crypto';
import type { CheckpointRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { DirectoryStreamer } from '@spotlift/transport';
import {
  FakePodmanOps,
  FakeProcessOps,
  ScriptedNodeShell,
  aContainer,
  aNode,
  aWorkload,
  fakeNodeLock,
  preflightAnswer,
} from '@spotlift/testing';
import { SystemClock } from '../clock.js';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { newDataKey } from './checkpoint-crypto.js';
import { CheckpointFlow } from './checkpoint-flow.js';

const C = aContainer({
  mainPid: 4242,
  volumes: [
    {
      name: 'data',
      driver: 'local',
      source: '/var/lib/containers/storage/volumes/data/_data',
      destination: '/data',
      readOnly: false,
    },
  ],
  ports: [{ hostPort: 8080, containerPort: 8080, protocol: 'tcp', hostIp: '' }],
});
const IMAGE_DIR = '/var/lib/spotlift/checkpoints/wl-1/cp-1';
const T0 = '2026-01-01T00:00:00.000Z';
const ARCHIVE = `node-c:${IMAGE_DIR}/checkpoint.tar`;

function aCheckpoint(over: Partial<CheckpointRecord> = {}): CheckpointRecord {
  return {
    id: 'cp-1',
    workloadId: 'wl-1',
    kind: 'podman',
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

const restoreRequest = (over: Partial<CheckpointRecord> = {}) =>
  aCheckpoint({
    state: 'restoring',
    rssBytes: 64 * 2 ** 20,
    container: { id: C.id, name: C.name, image: C.image, volumes: ['data'], ports: [8080] },
    restore: { attempt: 1, destinationNodeId: 'node-b', destinationReason: 'requested', requestedAt: T0, phases: [] },
    ...over,
  });

function kit(checkpoint: CheckpointRecord, workload: Partial<WorkloadRecord> = {}, checkpointKey?: Uint8Array) {
  // The node-level operations answered by name; the shell is only the relayed stream's.
  const shell = new ScriptedNodeShell();
  const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
  const ops = new FakeProcessOps()
    .on('memoryAndDisk', preflightAnswer())
    .on('memAvailableBytes', 8_000_000 * 1024)
    .on('inspectTree', { pids: [4242], rssBytes: 65536 * 1024 })
    .on('sealImages', ok('STORED_KB 300000\n'), { node: 'node-c' })
    .on('checkImages', ok(), { node: 'node-c' })
    .on('holdLock', (_n, key) => fakeNodeLock(`/run/spotlift/locks/${key}.lock`))
    .on('makeDir', undefined)
    .on('removeDir', true)
    .on('keepLogs', 0);
  const podman = new FakePodmanOps({
    'node-a': { containers: [{ ...C }], images: [C.image.id], volumes: ['data'] },
    'node-b': { images: [] },
    'node-c': {},
  });
  const checkpoints = new InMemoryRecords<CheckpointRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  for (const id of ['node-a', 'node-b', 'node-c']) void nodes.save(aNode(id));
  void checkpoints.save(checkpoint);
  void workloads.save(
    aWorkload({ kind: 'podman', container: C.id, containerName: C.name, image: C.image, pid: 4242, ...workload }),
  );
  const flow = new CheckpointFlow(
    checkpoints,
    workloads,
    nodes,
    ops.asNodeOps(),
    new DirectoryStreamer(shell),
    new SystemClock(),
    { ...DEFAULT_ENGINE_CONFIG, criuIdleTimeoutMs: 1_000, ...(checkpointKey ? { checkpointKey } : {}) },
    undefined,
    podman.asPodmanOps(),
  );
  const running = (node: string) => podman.container(node, C.id)?.running === true;
  return { ops, podman, flow, workloads, running };
}

const phaseNames = (phases: CheckpointRecord['phases']) => phases.map((p) => `${p.name}:${p.ok ? 'ok' : 'fail'}`);

describe('container checkpoints to storage: taking one', () => {
  it('stores the image and the exported archive, seals them, and only then removes the source container', async () => {
    const k = kit(aCheckpoint());
    const cp = await k.flow.take('cp-1');
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(phaseNames(cp.phases)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    // the image before the checkpoint (no freeze waits on it), both into the checkpoint's own directory
    const order = k.podman.calls.map((c) => c.split(' ')[0]);
    expect(order.indexOf('storeImage')).toBeLessThan(order.indexOf('checkpoint'));
    expect(k.podman.storedImages.get(`node-c:${IMAGE_DIR}/image.tar`)).toBe(C.image.id);
    expect(k.podman.archives.has(ARCHIVE)).toBe(true);
    // sealed with both files required, before the removal
    const [sealed] = k.ops.argsOf('sealImages', 'node-c');
    expect(sealed?.[0]).toBe(IMAGE_DIR);
    expect(sealed?.[1]).toEqual(expect.arrayContaining(['checkpoint.tar', 'image.tar']));
    expect(k.podman.ran('remove')).toEqual([`node-a:${C.id.slice(0, 12)}`]);
    expect(k.podman.ran('removeVolumes')).toEqual(['node-a:data']);
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect(cp.container).toMatchObject({ id: C.id, name: C.name, volumes: ['data'], imageBytes: 2_000_000 });
    expect(cp.criu.dump?.frozenTimeUs).toBe(826_120);
    expect((await k.workloads.get('wl-1'))!.state).toBe('checkpointed');
    expect(k.ops.unanswered).toEqual([]);
  });

  it('a container Podman restarted since it was registered (another main pid) is stored, not refused at the commit', async () => {
    const k = kit(aCheckpoint(), { pid: 4100 });
    const cp = await k.flow.take('cp-1');
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect((await k.workloads.get('wl-1'))!).toMatchObject({ state: 'checkpointed', pid: C.mainPid });
  });

  it('a forensic copy checkpoints with --leave-running and removes nothing: the container runs on', async () => {
    const k = kit(aCheckpoint({ mode: 'forensic' }));
    const cp = await k.flow.take('cp-1');
    expect(cp.state).toBe('stored');
    expect(k.podman.ran('armCheckpoint')[0]).toContain('leave-running');
    expect(k.podman.ran('remove')).toEqual([]);
    expect(k.running('node-a')).toBe(true);
    expect((await k.workloads.get('wl-1'))!.state).toBe('running');
  });

  it('a stream broken after the freeze restores the source from its kept checkpoint and removes the partial files', async () => {
    const k = kit(aCheckpoint());
    k.podman.fail.checkpointAfterFreeze = 'the storage node went away';
    const cp = await k.flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toContain('the storage node went away');
    expect(k.podman.ran('restoreLocal')).toEqual([`node-a:${C.id.slice(0, 12)}`]);
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.ran('remove')).toEqual([]);
    expect(k.ops.argsOf('removeDir', 'node-c').filter(([dir]) => dir.startsWith(IMAGE_DIR)).length).toBeGreaterThan(0);
    expect((await k.workloads.get('wl-1'))!.state).toBe('running');
  });

  it('decides nothing while a Podman checkpoint of the take still runs on the source (stays taking)', async () => {
    const k = kit(aCheckpoint());
    k.podman.fail.checkpointAfterFreeze = 'stream broke';
    k.podman.busy = ['node-a'];
    await expect(k.flow.take('cp-1')).rejects.toThrow(/still runs on node-a/);
    expect(k.podman.ran('restoreLocal')).toEqual([]);
  });

  it('a failure before the freeze (the image could not be stored) touches the container not at all', async () => {
    const k = kit(aCheckpoint());
    k.podman.fail.storeImage = 'disk full';
    const cp = await k.flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toContain('disk full');
    expect(k.podman.ran('armCheckpoint')).toEqual([]);
    expect(k.running('node-a')).toBe(true);
  });

  it('a container that no longer runs is refused at preflight', async () => {
    const k = kit(aCheckpoint());
    k.podman.nodes['node-a']!.containers = [];
    const cp = await k.flow.take('cp-1');
    expect(cp.state).toBe('failed');
    expect(cp.error).toMatch(/gone from node-a/);
  });
});

describe('container checkpoints to storage: restoring one', () => {
  /** A kit whose storage node holds the checkpoint's image and archive, as a take left them. */
  function stored(cp: CheckpointRecord, workload: Partial<WorkloadRecord> = { state: 'checkpointed' }) {
    const k = kit(cp, workload);
    k.podman.nodes['node-a']!.containers = workload.state === 'running' ? [{ ...C }] : [];
    k.podman.storedImages.set(`node-c:${IMAGE_DIR}/image.tar`, C.image.id);
    k.podman.archives.set(ARCHIVE, { ...C, running: false });
    return k;
  }

  it('sends the stored image the destination lacks, imports the archive, and the workload runs there', async () => {
    const k = stored(restoreRequest());
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.restore?.error).toBeUndefined();
    expect(cp.state).toBe('restored');
    expect(phaseNames(cp.restore!.phases)).toEqual([
      'preflight:ok',
      'transfer:ok',
      'restore:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    expect(k.podman.ran('loadStoredImage')).toEqual(['node-b:node-c']);
    expect(cp.restore!.imageSentBytes).toBe(2_000_000);
    expect(k.running('node-b')).toBe(true);
    const w = (await k.workloads.get('wl-1'))!;
    expect(w).toMatchObject({ nodeId: 'node-b', state: 'running', pid: cp.restore!.restoredPid });
  });

  it('does not send the image a destination already has', async () => {
    const k = stored(restoreRequest());
    k.podman.nodes['node-b']!.images = [C.image.id];
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(k.podman.ran('loadStoredImage')).toEqual([]);
  });

  it('refuses a storage checkpoint whose workload runs again somewhere: it would run twice', async () => {
    const k = stored(restoreRequest(), { state: 'running', nodeId: 'node-a' });
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/would run it twice/);
    expect(k.podman.ran('armRestoreImport')).toEqual([]);
  });

  it('a forensic copy restores as a clone on another node, never over its running original', async () => {
    const k = stored(restoreRequest({ mode: 'forensic' }), { state: 'running', nodeId: 'node-a' });
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('restored');
    expect(cp.restore!.clone).toBe(true);
    expect((await k.workloads.get('wl-1'))!.nodeId).toBe('node-a');

    const same = stored(
      restoreRequest({
        mode: 'forensic',
        restore: {
          attempt: 1,
          destinationNodeId: 'node-a',
          destinationReason: 'requested',
          requestedAt: T0,
          phases: [],
        },
      }),
      { state: 'running', nodeId: 'node-a' },
    );
    const refused = await same.flow.restore('cp-1', 1);
    expect(refused.state).toBe('stored');
    expect(refused.restore!.error).toMatch(/clone goes to another node/);
    expect(same.podman.ran('armRestoreImport')).toEqual([]);
  });

  it('a guard checkpoint restored for its lost node (takeover) is the workload again, not a clone', async () => {
    const takeover = { fromNodeId: 'node-a', stalePid: 4242, staleContainer: C.id };
    const k = stored(
      restoreRequest({
        mode: 'guard',
        restore: {
          attempt: 1,
          destinationNodeId: 'node-b',
          destinationReason: 'placement',
          requestedAt: T0,
          phases: [],
          takeover,
        },
      }),
      // Fenced node-a is silent: its copy is the one the record still names.
      { state: 'running', nodeId: 'node-a' },
    );
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.restore?.error).toBeUndefined();
    expect(cp.state).toBe('restored');
    expect(cp.restore!.clone).toBeUndefined();
    expect(k.running('node-b')).toBe(true);
    expect(await k.workloads.get('wl-1')).toMatchObject({
      nodeId: 'node-b',
      state: 'running',
      pid: cp.restore!.restoredPid,
    });

    // The same guard checkpoint restored by hand (no loss): a clone; the workload stays on node-a.
    const byHand = stored(restoreRequest({ mode: 'guard' }), { state: 'running', nodeId: 'node-a' });
    const clone = await byHand.flow.restore('cp-1', 1);
    expect(clone.restore!.clone).toBe(true);
    expect((await byHand.workloads.get('wl-1'))!.nodeId).toBe('node-a');
  });

  it('refuses a destination with the name, a port or a volume taken, touching nothing', async () => {
    for (const [set, why] of [
      [(p: FakePodmanOps) => (p.nodes['node-b']!.containers = [aContainer({ id: 'f'.repeat(64) })]), /name web/],
      [(p: FakePodmanOps) => (p.nodes['node-b']!.portsInUse = [8080]), /port\(s\) 8080/],
      [(p: FakePodmanOps) => (p.nodes['node-b']!.volumes = ['data']), /volume\(s\) data/],
    ] as const) {
      const k = stored(restoreRequest());
      set(k.podman);
      const cp = await k.flow.restore('cp-1', 1);
      expect(cp.state).toBe('stored');
      expect(cp.restore!.error).toMatch(why);
      expect(k.podman.ran('copyStoredArchive')).toEqual([]);
    }
  });

  it('a failed restore removes its half-created container and volumes; the checkpoint stays stored', async () => {
    const k = stored(restoreRequest());
    k.podman.fail.restore = 'criu failed';
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/criu failed.*no container/);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
    expect(k.podman.ran('removeVolumes')).toEqual(['node-b:data']);
    expect((await k.workloads.get('wl-1'))!).toMatchObject({ nodeId: 'node-a', state: 'checkpointed' });
  });

  it('a restored container that does not run is removed, not adopted', async () => {
    const k = stored(restoreRequest());
    k.podman.fail.restoredNotRunning = true;
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/does not run on node-b/);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
  });

  it('keeps restoring (throws) while a Podman restore of it may still run on the destination', async () => {
    const k = stored(restoreRequest());
    k.podman.fail.restoredNotRunning = true;
    k.podman.busy = ['node-b'];
    await expect(k.flow.restore('cp-1', 1)).rejects.toThrow(/still runs on node-b/);
    expect(k.podman.ran('remove')).toEqual([]);
  });
});

describe('container checkpoints encrypted at rest (a master key configured)', () => {
  const master = randomBytes(32);
  const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });
  const SEALED = '/var/lib/spotlift/images/cp-1-r1/dst/sealed';

  it('the orchestrator encrypts the archive it relays (openssl format); its ciphertext sum is recorded', async () => {
    const k = kit(aCheckpoint(), {}, master);
    const seals: unknown[] = [];
    const arm = k.podman.armCheckpoint.bind(k.podman);
    k.podman.armCheckpoint = (...args: Parameters<typeof arm>) => {
      seals.push((args as unknown[])[8]);
      return arm(...args);
    };
    const cp = await k.flow.take('cp-1');
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(seals).toHaveLength(1);
    expect((seals[0] as { header: Buffer }).header.subarray(0, 8).toString('latin1')).toBe('Salted__');
    expect(cp.encryption).toMatchObject({ scheme: 'openssl-aes-256-ctr-pbkdf2', sums: `${cp.sha256}  checkpoint.tar` });
    expect(cp.phases.find((p) => p.name === 'dump')?.detail).toMatch(/encrypted by the orchestrator/);
  });

  /** A stored encrypted checkpoint with a restore to node-b; `decrypt` is node-b's answer to the check. */
  function storedEncrypted(decrypt: ReturnType<typeof said>, key: Uint8Array = master) {
    const { encryption } = newDataKey(master);
    const k = kit(
      restoreRequest({ encryption: { ...encryption, sums: `${'c'.repeat(64)}  checkpoint.tar` } }),
      {
        state: 'checkpointed',
      },
      key,
    );
    k.podman.nodes['node-a']!.containers = [];
    k.podman.storedImages.set(`node-c:${IMAGE_DIR}/image.tar`, C.image.id);
    k.podman.archives.set(ARCHIVE, { ...C, running: false });
    k.ops.on('decryptImages', decrypt, { node: 'node-b' });
    return k;
  }

  it('a restore copies the archive apart, checks its recorded sum and decrypts it there, then imports it', async () => {
    const k = storedEncrypted(said());
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.restore?.error).toBeUndefined();
    expect(cp.state).toBe('restored');
    expect(k.ops.argsOf('decryptImages', 'node-b').map(([dir, , sums]) => [dir, sums])).toEqual([
      [SEALED, `${'c'.repeat(64)}  checkpoint.tar`],
    ]);
    expect(k.podman.archives.has(`node-b:${SEALED}/checkpoint.tar`)).toBe(true);
    expect(k.podman.ran('armRestoreImport')).toEqual([`node-b:${SEALED}/checkpoint.tar`]);
    expect(k.running('node-b')).toBe(true);
  });

  it('an archive that differs from the recorded sum: nothing imported, the checkpoint stays stored', async () => {
    const k = storedEncrypted(said('checkpoint.tar: FAILED\nTAMPERED\n', 5));
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(
      /differ from the checksums recorded .*checkpoint.tar: FAILED.*nothing was decrypted/,
    );
    expect(k.podman.ran('armRestoreImport')).toEqual([]);
    expect(k.running('node-b')).toBe(false);
  });

  it('an orchestrator with another key: refused in preflight, nothing asked of any node', async () => {
    const k = storedEncrypted(said(), randomBytes(32));
    const cp = await k.flow.restore('cp-1', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/encrypted under checkpoint key [0-9a-f]{16}; this orchestrator holds key/);
    expect(k.podman.calls).toEqual([]);
    expect(k.ops.argsOf('decryptImages')).toEqual([]);
  });
});
