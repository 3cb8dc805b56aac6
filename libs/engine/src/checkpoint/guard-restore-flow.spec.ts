/**
 * A notice too short for a live move of a guarded workload (issue 15) through the checkpoint flow, over the fake
 * node operations: the last checkpoint on top of the guard chain (no --leave-running: the source is killed once
 * the images are stored), its restore on another node from the chain, and a failed restore rolled back on the
 * source (under notice: `terminating`) only once the copy restored elsewhere is dead. The coordinator's side of
 * the sequence: apps/orchestrator evacuation-coordinator.spec.ts; the steps: libs/domain guard-restore.spec.ts.
 */
import { createHash } from 'node:crypto';
import type { CheckpointRecord, CheckpointRestore, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { FakeProcessOps, ScriptedNodeShell, aNode, aWorkload, criuFixture, scriptHappyOps } from '@spotlift/testing';
import { DirectoryStreamer } from '@spotlift/transport';
import { SystemClock } from '../clock.js';
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { CheckpointFlow } from './checkpoint-flow.js';

const TAR = Buffer.from('scripted tar stream of checkpoint images');
const TAR_SHA = createHash('sha256').update(TAR).digest('hex');
const ROOT = '/var/lib/spotlift/checkpoints/wl-1';
const T0 = '2026-01-01T00:00:00.000Z';
const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

/** The guard checkpoint (full, taken with --track-mem) the last one builds on. */
const guardCp: CheckpointRecord = {
  id: 'cp-g',
  mode: 'guard',
  workloadId: 'wl-1',
  sourceNodeId: 'node-a',
  storageNodeId: 'node-c',
  imageDir: `${ROOT}/cp-g`,
  state: 'stored',
  guardChain: { depth: 1, trackMem: true },
  phases: [],
  criu: {},
  bytes: { pages: 0, images: 0 },
  createdAt: T0,
  updatedAt: T0,
};
/** The last checkpoint: a storage one (mode absent) on the chain, as CheckpointsService records it. */
const lastCp = (over: Partial<CheckpointRecord> = {}): CheckpointRecord => ({
  ...guardCp,
  id: 'cp-last',
  mode: undefined,
  imageDir: `${ROOT}/cp-last`,
  state: 'queued',
  guardChain: { parentId: 'cp-g', depth: 2, trackMem: false },
  criuVersion: '4.2.1',
  ...over,
});
const request = (over: Partial<CheckpointRestore> = {}): CheckpointRestore => ({
  attempt: 1,
  destinationNodeId: 'node-b',
  destinationReason: 'placement',
  requestedAt: T0,
  phases: [],
  ...over,
});

function setup(cp: CheckpointRecord, workload: WorkloadRecord, script?: (ops: FakeProcessOps) => unknown) {
  const ops = new FakeProcessOps();
  const shell = new ScriptedNodeShell();
  const checkpoints = new InMemoryRecords<CheckpointRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  // node-a is under notice: no placement target, but still there until its deadline.
  void nodes.save(aNode('node-a', { state: 'terminating' }));
  for (const id of ['node-b', 'node-c']) void nodes.save(aNode(id));
  void checkpoints.save(guardCp);
  void checkpoints.save(cp);
  void workloads.save(workload);
  const flow = new CheckpointFlow(
    checkpoints,
    workloads,
    nodes,
    ops.asNodeOps(),
    new DirectoryStreamer(shell),
    new SystemClock(),
    { ...DEFAULT_ENGINE_CONFIG, criuIdleTimeoutMs: 1_000 },
  );
  script?.(ops);
  shell
    .on({ match: /(?:^|; )tar -C \S+ -cf/, reply: { stdout: TAR.toString() } })
    .on({ match: /sha256sum < /, reply: { stdout: `${TAR_SHA}\n` } });
  ops
    .on('sealImages', said('STORED_KB 70000\n'), { node: 'node-c' })
    .on('checkImages', said(), { node: 'node-c' })
    .on('startPageServerWithParent', said(), { node: 'node-c' })
    .on('cpuinfoDump', said())
    .on('readFile', criuFixture('images/page-server/stats-dump'), {
      node: 'node-c',
      when: (_n, path) => path.endsWith('/stats-dump'),
    })
    .on('readFile', Buffer.from('inventory or cpuinfo image bytes'), {
      when: (_n, path) => path.endsWith('/cpuinfo.img') || path.endsWith('/inventory.img'),
    })
    .on('writeFile', undefined)
    .on('cpuinfoCheck', said());
  scriptHappyOps(ops);
  return { ops, flow, checkpoints, workloads };
}

describe('guard-restore through the checkpoint flow', () => {
  it('the last checkpoint is incremental on the guard chain, without --leave-running; the source dies only once stored', async () => {
    const { ops, flow, workloads } = setup(lastCp(), aWorkload({ id: 'wl-1' }));
    const cp = await flow.take('cp-last');
    expect(cp.state).toBe('stored');
    const opts = ops.argsOf('dump', 'node-a')[0]![3];
    expect(opts).toMatchObject({ trackMem: true, prev: '../cp-g' });
    expect(opts).not.toHaveProperty('leaveRunning');
    expect(ops.argsOf('startPageServerWithParent', 'node-c').map((a) => a[2])).toEqual(['../cp-g']);
    // The commit of the source side: the frozen source killed after the images were sealed, never before.
    const order = ops.calls.map((c) => `${c.op}@${c.node}`);
    expect(order.indexOf('killTree@node-a')).toBeGreaterThan(order.indexOf('sealImages@node-c'));
    expect((await workloads.get('wl-1'))!.state).toBe('checkpointed');
  });

  it('restored on another node from the chain (the guard checkpoint and the last one): the workload lives there', async () => {
    const { ops, flow, workloads } = setup(
      lastCp({ state: 'restoring', tree: [4242, 4243], restore: request() }),
      aWorkload({ id: 'wl-1', state: 'checkpointed' }),
    );
    const cp = await flow.restore('cp-last', 1);
    expect(cp.restore!.error).toBeUndefined();
    expect(cp.state).toBe('restored');
    expect(ops.argsOf('checkImages', 'node-c').map(([dir]) => dir)).toEqual([`${ROOT}/cp-last`, `${ROOT}/cp-g`]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', state: 'running' });
  });

  it('a failed restore elsewhere is undone there first; the rollback then restores it on the source under notice', async () => {
    const { ops, flow, checkpoints, workloads } = setup(
      lastCp({ state: 'restoring', tree: [4242, 4243], restore: request() }),
      aWorkload({ id: 'wl-1', state: 'checkpointed' }),
      // the restored tree is gone when verified on node-b
      (o) => o.on('inspectTree', undefined, { node: 'node-b' }),
    );
    const failed = await flow.restore('cp-last', 1);
    expect(failed.state).toBe('stored');
    expect(failed.restore!.error).toMatch(/restored pid 777 on node-b killed/);
    // As CheckpointsService.restore records a rollback: attempt 2, to the source, flagged.
    await checkpoints.save({
      ...failed,
      state: 'restoring',
      restore: request({ attempt: 2, destinationNodeId: 'node-a', destinationReason: 'rollback', rollback: true }),
    });
    const back = await flow.restore('cp-last', 2);
    expect(back.state).toBe('restored');
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
    // One copy: node-b's restored tree was killed before anything was restored on node-a.
    const order = ops.calls.map((c) => `${c.op}@${c.node}`);
    const killedB = order.indexOf('killTree@node-b');
    expect(killedB).toBeGreaterThanOrEqual(0);
    expect(order.findIndex((o) => o.startsWith('restore') && o.endsWith('@node-a'))).toBeGreaterThan(killedB);
  });

  it('without the rollback flag a node under notice is no restore destination: refused in preflight', async () => {
    const { ops, flow } = setup(
      lastCp({ state: 'restoring', tree: [4242, 4243], restore: request({ destinationNodeId: 'node-a' }) }),
      aWorkload({ id: 'wl-1', state: 'checkpointed' }),
    );
    const cp = await flow.restore('cp-last', 1);
    expect(cp.state).toBe('stored');
    expect(cp.restore!.error).toMatch(/node-a is terminating/);
    expect(ops.argsOf('restore', 'node-a')).toEqual([]);
  });
});
