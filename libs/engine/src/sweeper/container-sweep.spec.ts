/**
 * The sweeper on a container's move (owner marker kind `podman`) whose job and records are gone: the node-level
 * listing and lock facts stubbed, each node's Podman faked as data (FakePodmanOps). What it restores, removes, and
 * above all what it never removes: a running copy, or a copy whose source is gone.
 */
import type { NodeRecord } from '@spotlift/domain';
import { FakePodmanOps, aContainer, aMigration, aNode, aWorkload } from '@spotlift/testing';
import type { Clock } from '../clock.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { ListedDir } from '../node-ops/sweep-commands.js';
import { ownerMarker } from './owner-marker.js';
import { Sweeper } from './sweeper.js';

const ROOT = '/var/lib/spotlift/images';
const C = aContainer({ mainPid: 4242 });
const T0 = new Date('2026-12-06T10:00:00Z');
const A = aNode('node-a');
const B = aNode('node-b');

function markers() {
  const ctx = {
    migration: aMigration({ id: 'mig-1' }),
    workload: aWorkload({ id: 'wl-1', pid: 4242, kind: 'podman', container: C.id }),
    source: A,
    destination: B,
    sourceDir: `${ROOT}/mig-1/src`,
    destinationDir: `${ROOT}/mig-1/dst`,
  };
  return {
    src: JSON.stringify(ownerMarker(ctx, 'source', T0)),
    dst: JSON.stringify(ownerMarker(ctx, 'destination', T0)),
  };
}

interface Setup {
  record?: 'none' | 'live' | 'finished';
  lockHeld?: boolean;
  source?: 'running' | 'checkpointed' | 'stopped' | 'gone';
  destination?: 'none' | 'running' | 'not-running';
}

function kit(s: Setup) {
  const m = markers();
  const listing: Record<string, ListedDir[]> = {
    'node-a': [{ name: 'mig-1', markers: { src: m.src }, criuPids: [] }],
    'node-b': [{ name: 'mig-1', markers: { dst: m.dst }, criuPids: [] }],
  };
  const removed: string[] = [];
  const ops = {
    listImageDirs: (node: NodeRecord) => Promise.resolve(listing[node.id] ?? []),
    processFacts: (_node: NodeRecord, _pids: number[], locks: string[]) =>
      Promise.resolve({
        bootId: 'b',
        procs: new Map(),
        locks: new Map(locks.map((l) => [l, s.lockHeld ? 'held' : 'free'])),
      }),
    removeDir: (node: NodeRecord, dir: string) => {
      removed.push(`${node.id}:${dir}`);
      return Promise.resolve(true);
    },
  } as unknown as NodeOps;
  const src = s.source ?? 'checkpointed';
  const onA =
    src === 'gone'
      ? []
      : [
          src === 'running'
            ? { ...C }
            : {
                ...C,
                running: false,
                checkpointed: src === 'checkpointed',
                state: 'exited' as const,
                rawState: 'exited',
                mainPid: undefined,
              },
        ];
  const dst = s.destination ?? 'none';
  const onB =
    dst === 'none'
      ? []
      : [
          dst === 'running'
            ? { ...C, mainPid: 7777 }
            : { ...C, running: false, state: 'created' as const, rawState: 'created', mainPid: undefined },
        ];
  const podman = new FakePodmanOps({ 'node-a': { containers: onA }, 'node-b': { containers: onB } });
  const clock: Clock = { now: () => new Date(T0.getTime() + 3_600_000) };
  const sweeper = new Sweeper(
    ops,
    { stateOf: () => Promise.resolve(s.record ?? 'none') },
    { imageRoot: ROOT, keepImagesMaxAgeMs: 24 * 3_600_000, orphanGraceMs: 60_000 },
    clock,
    podman.asPodmanOps(),
  );
  const sweep = async () => (await sweeper.sweep([A, B])).items[0]!;
  return { podman, removed, sweep };
}

const touched = (p: FakePodmanOps) => [...p.ran('remove'), ...p.ran('restoreLocal')];

describe('the sweeper on a container move left by a dead job', () => {
  it('restores a checkpointed source from its kept checkpoint when the destination has no copy', async () => {
    const k = kit({ source: 'checkpointed', destination: 'none' });
    const item = await k.sweep();
    expect(item).toMatchObject({ action: 'resume-source', workloadId: 'wl-1', sourceNodeId: 'node-a' });
    expect(item.error).toBeUndefined();
    expect(k.podman.ran('restoreLocal')).toEqual([`node-a:${C.id.slice(0, 12)}`]);
    expect(k.podman.container('node-a', C.id)?.running).toBe(true);
    expect(item.containerPid).toBe(k.podman.container('node-a', C.id)?.mainPid);
    expect(item.removedFrom.sort()).toEqual(['node-a', 'node-b']);
  });

  it("removes the checkpointed source when the destination's copy runs (the move had passed its restore)", async () => {
    const k = kit({ source: 'checkpointed', destination: 'running' });
    const item = await k.sweep();
    expect(item).toMatchObject({ action: 'kill-source', restoredPid: 7777 });
    expect(k.podman.ran('remove')).toEqual([`node-a:${C.id.slice(0, 12)}`]);
    expect(k.podman.container('node-b', C.id)?.running).toBe(true);
  });

  it("a rolled-back move's copy that does not run is removed from the destination; the running source is untouched", async () => {
    const k = kit({ record: 'finished', source: 'running', destination: 'not-running' });
    const item = await k.sweep();
    expect(item.removedCopyOn).toBe('node-b');
    expect(item.action).toBe('remove-images');
    expect(k.podman.ran('remove')).toEqual([`node-b:${C.id.slice(0, 12)}`]);
    expect(k.podman.container('node-b', C.id)).toBeUndefined();
    expect(k.podman.container('node-a', C.id)?.running).toBe(true);
    expect(k.podman.ran('restoreLocal')).toEqual([]);
  });

  it('a checkpointed source with a copy that does not run: the copy goes, then the source is restored, in one sweep', async () => {
    const k = kit({ source: 'checkpointed', destination: 'not-running' });
    const item = await k.sweep();
    expect(item).toMatchObject({ action: 'resume-source', removedCopyOn: 'node-b' });
    const order = k.podman.calls.filter((c) => /^(remove|restoreLocal) /.test(c));
    expect(order).toEqual([`remove node-b:${C.id.slice(0, 12)}`, `restoreLocal node-a:${C.id.slice(0, 12)}`]);
    expect(k.podman.container('node-a', C.id)?.running).toBe(true);
  });

  it.each([
    [
      'the source is gone and the copy does not run (it may be all there is)',
      { source: 'gone', destination: 'not-running' },
    ],
    ['the source is gone and the copy runs', { source: 'gone', destination: 'running' }],
    ['both run (two copies: a person decides)', { source: 'running', destination: 'running' }],
    [
      'the source stopped without a kept checkpoint and the copy does not run',
      { source: 'stopped', destination: 'not-running' },
    ],
    ['a live record', { record: 'live', destination: 'not-running' }],
    ['the lock is held (its job is alive)', { lockHeld: true, destination: 'not-running' }],
  ] as const)('touches no container when %s', async (_what, setup) => {
    const k = kit(setup);
    const item = await k.sweep();
    expect(touched(k.podman)).toEqual([]);
    expect(item.removedCopyOn).toBeUndefined();
  });

  it('removes nothing when the copy runs by the time it would be removed (looked at again just before)', async () => {
    const k = kit({ record: 'finished', source: 'running', destination: 'not-running' });
    const inspect = k.podman.inspect.bind(k.podman);
    let onB = 0;
    // The copy starts running between the sweep's look and its removal (a restore someone else finished).
    k.podman.inspect = (node, ref) => {
      if (node.id === 'node-b' && ++onB === 2) {
        Object.assign(k.podman.nodes['node-b']!.containers![0]!, { running: true, mainPid: 8888, state: 'running' });
      }
      return inspect(node, ref);
    };
    const item = await k.sweep();
    expect(item.error).toMatch(/runs now: nothing removed/);
    expect(touched(k.podman)).toEqual([]);
    expect(k.podman.container('node-b', C.id)?.running).toBe(true);
    expect(item.removedFrom).toEqual([]);
  });

  it('waits while a Podman checkpoint or restore of the move still runs on a node', async () => {
    const k = kit({ source: 'checkpointed', destination: 'not-running' });
    k.podman.busy = ['node-b'];
    const item = await k.sweep();
    expect(item.action).toBe('wait');
    expect(touched(k.podman)).toEqual([]);
    expect(item.removedFrom).toEqual([]);
  });

  it('a destination that does not answer leaves the checkpointed source as it is (looked at again next sweep)', async () => {
    const k = kit({ source: 'checkpointed', destination: 'none' });
    k.podman.nodes['node-b']!.unreachable = true;
    const item = await k.sweep();
    expect(item.action).toBe('wait');
    expect(touched(k.podman)).toEqual([]);
  });
});
