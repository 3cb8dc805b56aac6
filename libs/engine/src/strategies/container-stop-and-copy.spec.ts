/**
 * A Podman container's move through the engine, with the container kind's operations faked as data
 * (FakePodmanOps: containers and images per node) and the node-level ones (directories, locks, memory, the
 * main pid's tree) answered by name (FakeProcessOps): the sequence, each guard of "exactly one running copy",
 * the rollback and the recovery of a dead worker. What the commands are is in the golden table; the real thing
 * in test/containers.e2e-spec.ts.
 */
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { DirectoryStreamer, type NodeCertificates } from '@spotlift/transport';
import {
  FakePodmanOps,
  FakeProcessOps,
  ScriptedNodeShell,
  aContainer,
  aMigration,
  aNode,
  aPhase,
  aWorkload,
  fakeNodeLock,
  phaseNames,
} from '@spotlift/testing';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { MigrationEngine } from '../migration-engine.js';
import { SystemClock } from '../clock.js';
import type { RunControl } from '../run-control.js';
import type { PageTransport } from '../transports/page-transport.port.js';
import { DEFAULT_SSH_TUNNEL, SshPageTransport } from '../transports/ssh-page-transport.js';
import { TlsPageTransport } from '../transports/tls-page-transport.js';

const C = aContainer({ mainPid: 4242 });
const IMAGE_ID = C.image.id;

function kit(
  opts: {
    migration?: Partial<MigrationRecord>;
    imageOnB?: boolean;
    transports?: (shell: ScriptedNodeShell) => PageTransport[];
  } = {},
) {
  // The node-level operations answered by name; the shell is only the relayed stream's and the ssh transport's.
  const shell = new ScriptedNodeShell();
  const ops = new FakeProcessOps()
    .on('memAvailableBytes', 8_000_000 * 1024)
    .on('inspectTree', (_n, pid) => ({ pids: [pid], rssBytes: 65536 * 1024 }))
    .on('makeDir', undefined)
    .on('removeDir', true)
    .on('holdLock', (_n, key) => fakeNodeLock(`/run/spotlift/locks/${key}.lock`))
    .on('keepLogs', 0);
  const podman = new FakePodmanOps({
    'node-a': { containers: [{ ...C }], images: [IMAGE_ID] },
    'node-b': { images: opts.imageOnB ? [IMAGE_ID] : [] },
  });
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b'));
  void migrations.save(aMigration(opts.migration));
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
    opts.transports?.(shell),
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
  return { engine, podman, workloads, shell, ops, control, running, run: () => engine.run('mig-1', control) };
}

describe('container stop-and-copy (kind podman)', () => {
  it('sends the missing image before the freeze, streams the checkpoint, restores, and removes the source only after the restored one runs', async () => {
    const k = kit();
    const m = await k.run();
    expect(m.error).toBeUndefined();
    expect(phaseNames(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'restore:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    const order = (op: string) => k.podman.calls.findIndex((c) => c.startsWith(op));
    // the image and both channels of the freeze window come before the checkpoint
    expect(order('sendImage node-b')).toBeGreaterThan(-1);
    expect(order('sendImage')).toBeLessThan(order('checkpoint node-a'));
    expect(order('armRestoreImport')).toBeLessThan(order('checkpoint node-a'));
    // the source goes only after the destination's Podman said it runs
    expect(order('inspect node-b')).toBeLessThan(order('restoreImport'));
    const verified = k.podman.calls.findLastIndex((c) => c.startsWith('inspect node-b'));
    expect(verified).toBeLessThan(order('remove node-a'));
    expect(order('restoreImport')).toBeLessThan(order('remove node-a'));
    expect(k.running('node-b')).toBe(true);
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect(m.container).toMatchObject({
      image: { id: IMAGE_ID, sent: true, bytes: 2_000_000 },
      archiveBytes: 300_000_000,
      frozenMs: 826,
    });
    // Downtime: the checkpoint's start on the source to restore --import returning on the destination.
    expect(m.downtimeMs).toBe(2500);
    expect(m.criu.dump?.pagesWritten).toBe(66_000);
    expect(m.criu.restore?.pagesRestored).toBe(66_000);
    const w = await k.workloads.get('wl-1');
    expect(w).toMatchObject({ nodeId: 'node-b', pid: m.restoredPid, state: 'running' });
    expect(m.restoredPid).toBe(k.podman.container('node-b', C.id)!.mainPid);
    expect(k.ops.unanswered).toEqual([]);
  });

  it('a container whose main pid changed since it was registered (restarted by Podman) still commits', async () => {
    const k = kit();
    await k.workloads.update('wl-1', (w) => void Object.assign(w, { pid: 4100, tree: [4100] }));
    const m = await k.run();
    expect(m.error).toBeUndefined();
    expect(m.state).toBe('completed');
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect(await k.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: m.restoredPid });
  });

  it('a restarted container (another main pid) whose restore fails is rolled back: the source restored, not left stopped', async () => {
    const k = kit();
    await k.workloads.update('wl-1', (w) => void Object.assign(w, { pid: 4100, tree: [4100] }));
    k.podman.fail.restore = 'Error: name web is in use';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
  });

  it('does not send an image the destination has', async () => {
    const k = kit({ imageOnB: true });
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.ran('sendImage')).toEqual([]);
    expect(m.container?.image).toMatchObject({ sent: false });
  });

  it.each([
    [
      'the name is taken on the destination',
      (p: FakePodmanOps): void => {
        p.nodes['node-b']!.containers = [aContainer({ id: 'e'.repeat(64) })];
      },
      /the name web is taken on node-b/,
    ],
    [
      'a published port is in use there',
      (p: FakePodmanOps) => {
        p.nodes['node-a']!.containers![0]!.ports = [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }];
        p.nodes['node-b']!.portsInUse = [8080];
      },
      /published port\(s\) 8080 are in use on node-b/,
    ],
    [
      'one of its volumes exists there',
      (p: FakePodmanOps) => {
        p.nodes['node-a']!.containers![0]!.volumes = [
          { name: 'data', driver: 'local', source: '/v', destination: '/data', readOnly: false },
        ];
        p.nodes['node-b']!.volumes = ['data'];
      },
      /node-b already has volume\(s\) data/,
    ],
    [
      'the destination cannot checkpoint',
      (p: FakePodmanOps): void => {
        p.nodes['node-b']!.runtimeProblem = "node-b: Podman's runtime is crun";
      },
      /cannot restore containers: node-b: Podman's runtime is crun/,
    ],
    [
      'the container stopped since registration',
      (p: FakePodmanOps) => Object.assign(p.nodes['node-a']!.containers![0]!, { running: false, rawState: 'exited' }),
      /only a running container moves/,
    ],
  ] as const)(
    'fails before any freeze when %s: nothing checkpointed, nothing on the destination',
    async (_what, arrange, why) => {
      const k = kit();
      arrange(k.podman);
      const m = await k.run();
      expect(m.state).toBe('failed');
      expect(m.error).toMatch(why);
      expect(k.podman.ran('checkpoint')).toEqual([]);
      expect(k.podman.ran('sendImage')).toEqual([]);
      expect(m.phases.map((p) => p.name)).not.toContain('dump');
    },
  );

  it('refuses post-copy before anything runs, naming why', async () => {
    const k = kit({ migration: { strategy: 'post-copy' } });
    const m = await k.run();
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/strategy 'post-copy' is not available: .*no lazy-pages \(post-copy\) option/);
    expect(k.podman.calls).toEqual([]);
  });

  it('rolls back a restore that failed: the half-created copy removed by id, the source restored from its kept checkpoint', async () => {
    const k = kit();
    k.podman.fail.restore = 'Error: the container name "web" is already in use';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(phaseNames(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'restore:fail',
      'rollback:ok',
      'cleanup:ok',
    ]);
    expect(m.rollbackReason).toMatch(/restore --import on node-b failed \(125\).*already in use/);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.ran('restoreLocal')).toEqual([`node-a:${C.id.slice(0, 12)}`]);
    const w = await k.workloads.get('wl-1');
    expect(w).toMatchObject({ nodeId: 'node-a', state: 'running', pid: k.podman.container('node-a', C.id)!.mainPid });
  });

  it('rolls back a restored container that does not run (verify), removing it before the source comes back', async () => {
    const k = kit();
    k.podman.fail.restoredNotRunning = true;
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(m.error).toMatch(/does not run on node-b \(exited\)/);
    const removed = k.podman.calls.indexOf(`remove node-b:${C.id.slice(0, 12)}`);
    expect(removed).toBeGreaterThan(-1);
    expect(removed).toBeLessThan(k.podman.calls.indexOf(`restoreLocal node-a:${C.id.slice(0, 12)}`));
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.container('node-a', C.id)).toBeDefined();
  });

  it('keeps the source stopped when the destination copy cannot be removed (stopped beats running twice)', async () => {
    const k = kit();
    k.podman.fail.restoredNotRunning = true;
    k.podman.fail.removeOn = ['node-b'];
    await expect(k.run()).rejects.toThrow(/could not be removed; the source stays stopped/);
    expect(k.podman.ran('restoreLocal')).toEqual([]);
    expect(k.running('node-a')).toBe(false);
  });

  it('does not restore a source the checkpoint never stopped', async () => {
    const k = kit();
    k.podman.fail.checkpointBeforeFreeze = 'criu failed: (00.012345) Error (criu/tty.c): tty not supported';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(m.error).toMatch(/checkpoint of the container on node-a failed: criu failed/);
    expect(k.podman.ran('restoreLocal')).toEqual([]);
    expect(k.running('node-a')).toBe(true);
    expect(m.phases.find((p) => p.name === 'rollback')?.detail).toMatch(/still runs on node-a/);
  });

  it('a stale run (the stored record moved on meanwhile) neither removes the destination copy nor restores the source', async () => {
    const k = kit();
    // The restore fails; as it does, another worker's committed move of the same workload lands in the store
    // (this run is a stale copy of the job: its rollback must see the record moved on).
    Object.defineProperty(k.podman.fail, 'restore', {
      get: () => {
        void k.workloads.update('wl-1', (w) => void Object.assign(w, { nodeId: 'node-b', pid: 9001 }));
        return 'Error: the container name "web" is already in use';
      },
    });
    const m = await k.run();
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/the workload moved elsewhere, so this job rolls nothing back/);
    expect(k.podman.ran('remove')).toEqual([]);
    expect(k.podman.ran('restoreLocal')).toEqual([]);
  });

  it('rolls back a checkpoint whose stream broke after the freeze: the source restored, nothing imported', async () => {
    const k = kit();
    k.podman.fail.checkpointAfterFreeze = 'checkpoint archive: the receiving channel closed';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(k.podman.ran('restoreImport')).toEqual([]);
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
  });
});

describe("the container's image and archive over the migration's transport", () => {
  it('tcp: both go node to node, the route recorded on the job', async () => {
    const k = kit();
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.routes).toEqual(['image direct', 'archive direct']);
    expect(m.container?.route).toMatch(/^direct tcp: node-a -> node-b listening on \S+:\d+$/);
    expect(m.phases.find((p) => p.name === 'dump')?.detail).toMatch(/streamed to node-b \(direct tcp\)/);
  });

  it('a pair lacking the tools of a direct stream is relayed by the orchestrator, with the reason', async () => {
    const k = kit();
    k.podman.nodes['node-b']!.directProblem = 'node-b has no busybox nc';
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.routes).toEqual(['image relay', 'archive relay']);
    expect(m.container?.route).toBe(
      "relay: through the orchestrator's SSH channels; not direct: node-b has no busybox nc",
    );
  });

  it("tls: node to node with each node's certificates, the destination's checked at its data address", async () => {
    const ensure = (node: { id: string }) =>
      Promise.resolve({
        cacert: `/tls/${node.id}/ca.pem`,
        cert: `/tls/${node.id}/cert.pem`,
        key: `/tls/${node.id}/key.pem`,
        notAfter: new Date(0),
      });
    const forgotten: string[] = [];
    const certs = { ensure, forget: (id: string) => forgotten.push(id) } as unknown as NodeCertificates;
    const k = kit({ migration: { transport: 'tls' }, transports: () => [new TlsPageTransport(certs)] });
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(forgotten).toEqual([]);
    expect(m.container?.route).toMatch(/^direct tls: node-a -> node-b listening on /);
    expect(k.podman.routes).toEqual(['image direct', 'archive direct']);
    const route = k.podman.directRoutes[1]!;
    expect(route.tls).toEqual({
      server: { cacert: '/tls/node-b/ca.pem', cert: '/tls/node-b/cert.pem', key: '/tls/node-b/key.pem' },
      client: { cacert: '/tls/node-a/ca.pem', cert: '/tls/node-a/cert.pem', key: '/tls/node-a/key.pem' },
    });
    expect(route.connect).toEqual(route.listen);
  });

  it('tls: a direct stream that failed after the freeze makes both nodes be checked again next time', async () => {
    const forgotten: string[] = [];
    const ensure = (node: { id: string }) =>
      Promise.resolve({ cacert: `/tls/${node.id}/ca.pem`, cert: 'c', key: 'k', notAfter: new Date(0) });
    const certs = { ensure, forget: (id: string) => forgotten.push(id) } as unknown as NodeCertificates;
    const k = kit({ migration: { transport: 'tls' }, transports: () => [new TlsPageTransport(certs)] });
    k.podman.fail.directStream = 'listener-died';
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(forgotten.sort()).toEqual(['node-a', 'node-b']);
  });

  it("ssh: a pair the ssh transport relays goes through the orchestrator's relay, with the transport's reason", async () => {
    const k = kit({
      migration: { transport: 'ssh' },
      transports: (shell) => [new SshPageTransport(shell, { ...DEFAULT_SSH_TUNNEL, mode: 'relay' })],
    });
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(m.transport).toBe('ssh');
    expect(k.podman.routes).toEqual(['image relay', 'archive relay']);
    expect(m.container?.route).toMatch(
      /^relay: .*not direct: the ssh transport relays this pair \(relay: .*configured to relay\)$/,
    );
    expect(k.podman.ran('directProblem')).toEqual([]);
  });

  it('a direct image stream that fails is sent again relayed, before any freeze', async () => {
    const k = kit();
    k.podman.fail.directImage = 'image x: checksum mismatch on node-b';
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.routes).toEqual(['image direct', 'image relay', 'archive relay']);
    expect(m.container?.route).toMatch(
      /^relay: .*direct tcp route failed before the freeze: sending the image: .*checksum/,
    );
  });

  it('an archive listener that does not come up falls back to the relay before the freeze', async () => {
    const k = kit({ imageOnB: true });
    k.podman.fail.directListenerDown = 'the listener on node-b port 40000 ended before a connection (97): port in use';
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.routes).toEqual(['archive relay']);
    expect(m.container?.route).toMatch(/failed before the freeze: arming the archive's listener: .*port in use/);
    expect(k.running('node-b')).toBe(true);
  });

  it.each([
    ['the listener died', 'listener-died' as const, /receiving failed .*listener/],
    ['the stream was cut half-way', 'cut' as const, /sending failed \(112\)/],
    ['the checksums differ', 'checksum' as const, /checksum mismatch on node-b/],
  ])(
    '%s after the freeze: rolled back, the source runs again, nothing imported or left on node-b',
    async (_, how, why) => {
      const k = kit();
      k.podman.fail.directStream = how;
      const m = await k.run();
      expect(m.state).toBe('rolled_back');
      expect(m.rollbackReason).toMatch(why);
      expect(k.podman.ran('restoreImport')).toEqual([]);
      expect(k.podman.ran('restoreLocal')).toEqual([`node-a:${C.id.slice(0, 12)}`]);
      expect(k.running('node-a')).toBe(true);
      expect(k.podman.container('node-b', C.id)).toBeUndefined();
      // What arrived (a partial or corrupt archive) is in the migration's directory, removed on node-b.
      for (const left of k.podman.leftovers) {
        const dir = left.slice('node-b:'.length).replace(/\/dst\/checkpoint\.tar$/, '');
        expect(k.ops.argsOf('removeDir', 'node-b').filter(([d]) => d === dir)).toHaveLength(1);
      }
      expect(k.podman.leftovers.length).toBe(how === 'listener-died' ? 0 : 1);
    },
  );
});

describe('container migration picked up after its worker died', () => {
  it('adopts a restored container that runs on the destination: commit removes the source', async () => {
    const k = kit({
      migration: {
        state: 'running',
        phases: [aPhase('preflight', true), aPhase('prepare', true), aPhase('dump', true), aPhase('restore')],
      },
    });
    // What the dead worker left: the source checkpointed, the destination running the restored copy.
    Object.assign(k.podman.nodes['node-a']!.containers![0]!, {
      running: false,
      checkpointed: true,
      rawState: 'exited',
    });
    k.podman.nodes['node-b']!.containers = [aContainer({ id: C.id, mainPid: 9001 })];
    const m = await k.run();
    expect(m.state).toBe('completed');
    expect(k.podman.container('node-a', C.id)).toBeUndefined();
    expect(k.running('node-b')).toBe(true);
    expect(await k.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 9001 });
  });

  it('restores the source when nothing runs on the destination', async () => {
    const k = kit({
      migration: { state: 'running', phases: [aPhase('preflight', true), aPhase('prepare', true), aPhase('dump')] },
    });
    Object.assign(k.podman.nodes['node-a']!.containers![0]!, {
      running: false,
      checkpointed: true,
      rawState: 'exited',
    });
    const m = await k.run();
    expect(m.state).toBe('rolled_back');
    expect(k.running('node-a')).toBe(true);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
  });

  it('decides nothing while a checkpoint or restore of the dead worker still runs on a node', async () => {
    const k = kit({
      migration: { state: 'running', phases: [aPhase('preflight', true), aPhase('prepare', true), aPhase('dump')] },
    });
    Object.assign(k.podman.nodes['node-a']!.containers![0]!, {
      running: false,
      checkpointed: true,
      rawState: 'exited',
    });
    k.podman.busy = ['node-a'];
    await expect(k.run()).rejects.toThrow(/still runs on node-a; nothing was decided/);
    expect(k.podman.ran('restoreLocal')).toEqual([]);
    expect(k.podman.ran('remove')).toEqual([]);
  });
});
