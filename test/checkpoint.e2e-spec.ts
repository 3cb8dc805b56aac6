/**
 * Checkpoints to a storage node, for real: lab nodes (sshd in their own network namespaces), real CRIU,
 * real Redis, the orchestrator in-process. A workload on node-a is checkpointed to node-c (the storage
 * node), runs nowhere while stored, and is restored through REST on node-b, where it continues with its
 * memory verified by the workload itself (heartbeats: seq gap-free, counter from its heap, `ok` after its
 * full memory check). Then an evacuation whose deadline is too short for one workload checkpoints that one
 * to node-c, and bad restore requests are refused without touching anything.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CheckpointRecord, EvacuationRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { nodeAddress, nodeOfPid, pidAlive, type HeartbeatCollector, type LabConfig } from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 16401;
const MIB = 2 ** 20;
/** node-c keeps checkpoints here (its own checkpointRoot, per node in the config file). */
const CP_ROOT = `/var/lib/spotlift/checkpoints-e2e-${randomBytes(3).toString('hex')}`;

let env: E2eEnv;
let lab: LabConfig;
let orch: Orchestrator;
let collector: HeartbeatCollector;
let shell: SshNodeShell;

/** Runs a command on a lab node over SSH (the nodes may have their own mount namespaces). */
async function onNode(nodeId: string, command: string): Promise<string> {
  const node = lab.nodes.find((n) => n.id === nodeId)!;
  const res = await shell.exec(node, command, { timeoutMs: 30_000 });
  return res.stdout;
}

const checkpoint = async (id: string) => (await orch.api<CheckpointRecord>('GET', `/checkpoints/${id}`)).body;

async function settled(
  id: string,
  states: CheckpointRecord['state'][],
  timeoutMs = 120_000,
): Promise<CheckpointRecord> {
  return until(
    `checkpoint ${id} to reach ${states.join('|')}`,
    async () => {
      const cp = await checkpoint(id);
      return states.includes(cp.state) ? cp : undefined;
    },
    timeoutMs,
  );
}

async function launch(name: string, memMiB: number): Promise<WorkloadRecord> {
  return (await env.launch(name, 'node-a', { memMiB })).workload;
}

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    config: (l) => ({
      ...l,
      nodes: l.nodes.map((n) => (n.id === 'node-c' ? { ...n, checkpointRoot: CP_ROOT } : n)),
      // The planner believes in a slow source (20 MiB/s), so a 256 MiB workload cannot leave in 12 s.
      evacuation: {
        storageNodeId: 'node-c',
        safetyMarginSeconds: 2,
        sourceBandwidthBytesPerSec: 20 * MIB,
        streamBandwidthBytesPerSec: 20 * MIB,
      },
    }),
  });
  ({ lab, orch, collector } = env);
  shell = new SshNodeShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
}, 240_000);

afterAll(async () => {
  await onNode('node-c', `rm -rf '${CP_ROOT}'`).catch(() => undefined);
  await shell?.close();
  // Stops every copy of the suite's workloads (restored ones included, found by name), the app, Redis.
  await env?.teardown();
}, 120_000);

describe('checkpoint to a storage node, restore elsewhere (real CRIU)', () => {
  let restored: CheckpointRecord;

  it('checkpoints a workload from node-a to node-c (pages over ssh), then restores it on node-b where it continues', async () => {
    const w = await launch('cp-move', 64);
    const before = Date.now();
    const created = await orch.api<CheckpointRecord>('POST', '/checkpoints', { workload: w.id, transport: 'ssh' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      state: 'queued',
      workloadId: w.id,
      sourceNodeId: 'node-a',
      storageNodeId: 'node-c',
      imageDir: `${CP_ROOT}/${w.id}/${created.body.id}`,
      transport: 'ssh',
    });

    const cp = await settled(created.body.id, ['stored', 'failed']);
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    // The page traffic went through an SSH tunnel node to node (node-a reaches node-c's sshd).
    expect(cp.transportRoute).toMatch(/^direct: /);
    expect(cp.phases.map((p) => `${p.name}:${p.ok}`)).toEqual([
      'preflight:true',
      'prepare:true',
      'dump:true',
      'transfer:true',
      'verify:true',
      'commit:true',
      'cleanup:true',
    ]);
    // Sizes and CRIU's own stats: 64 MiB is at least 16384 pages, all in the stored images.
    expect(cp.criu.dump?.pagesWritten).toBeGreaterThanOrEqual(16_384);
    expect(cp.bytes.pages).toBe(cp.criu.dump!.pagesWritten * 4096);
    expect(cp.bytes.stored).toBeGreaterThanOrEqual(cp.bytes.pages);
    expect(cp.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(cp.tree?.length).toBeGreaterThanOrEqual(1);
    expect(cp.criuVersion).toMatch(/^4\./);
    expect(Date.parse(cp.frozenAt!)).toBeLessThanOrEqual(Date.parse(cp.storedAt!));

    // The source is gone, nothing runs anywhere, the images are on node-c and match their checksums.
    expect(pidAlive(w.pid)).toBe(false);
    const wl = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(wl.state).toBe('checkpointed');
    const check = await onNode('node-c', `cd '${cp.imageDir}' && sha256sum -c SHA256SUMS | grep -c ': OK$'; ls`);
    expect(Number(check.split('\n')[0])).toBeGreaterThan(5);
    expect(check).toMatch(/pages-\d+\.img/);
    expect(check).toMatch(/inventory\.img/);
    // Nothing of the checkpoint is left in node-a's working directory.
    expect(await onNode('node-a', `ls /var/lib/spotlift/images/${cp.id} 2>&1 || true`)).toMatch(/No such file/);
    const frozenFor = Date.now();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(collector.heartbeats('cp-move', frozenFor)).toHaveLength(0);

    const asked = await orch.api<CheckpointRecord>('POST', `/checkpoints/${cp.id}/restore`, { destination: 'node-b' });
    expect(asked.status).toBe(202);
    expect(asked.body).toMatchObject({ state: 'restoring', restore: { attempt: 1, destinationNodeId: 'node-b' } });
    restored = await settled(cp.id, ['restored', 'stored']);
    expect(restored.restore?.error).toBeUndefined();
    expect(restored.state).toBe('restored');
    expect(restored.restore!.phases.every((p) => p.ok)).toBe(true);
    const pid = restored.restore!.restoredPid!;
    expect(nodeOfPid(pid)).toBe('node-b');
    expect(restored.restore!.criu?.restoreTimeUs).toBeGreaterThan(0);
    expect(restored.restore!.imageBytes).toBeGreaterThan(0);

    // Continuity: from node-b, seq gap-free across the checkpoint, every memory check passed.
    const after = Date.now();
    await collector.waitForCount('cp-move', 12, { from: nodeAddress('node-b'), since: after, timeoutMs: 15_000 });
    expect(collector.isSeqGapFree('cp-move', before - 2_000)).toBe(true);
    expect(collector.anyNotOk('cp-move')).toBe(false);
    expect(collector.onlyFromSince('cp-move', nodeAddress('node-b'), after)).toBe(true);
    expect(collector.last('cp-move')!.pid).toBe(pid);
    const moved = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(moved).toMatchObject({ nodeId: 'node-b', pid, state: 'running' });

    const list = (await orch.api<CheckpointRecord[]>('GET', '/checkpoints')).body;
    expect(list.map((c) => c.id)).toContain(cp.id);
    console.log(
      `checkpoint: 64 MiB stored in ${Date.parse(cp.storedAt!) - Date.parse(cp.createdAt)} ms (${cp.bytes.stored} bytes on node-c); ` +
        `restore on node-b in ${Date.parse(restored.updatedAt) - Date.parse(restored.restore!.requestedAt)} ms; ` +
        `phases ${cp.phases.map((p) => `${p.name} ${Math.round(p.durationMs ?? 0)}`).join(', ')}`,
    );
  });

  let stored: CheckpointRecord;

  it('an evacuation whose deadline is too short for one workload checkpoints that one to node-c', async () => {
    const small = await launch('cp-evac-small', 16);
    const big = await launch('cp-evac-big', 256);
    const notice = await orch.api<{ duplicate: boolean; evacuation: EvacuationRecord }>('POST', '/notices', {
      nodeId: 'node-a',
      kind: 'termination',
      secondsUntil: 14,
    });
    expect(notice.status).toBe(202);
    const id = notice.body.evacuation.id;
    const done = await until(
      'the evacuation to finish',
      async () => {
        const e = (await orch.api<EvacuationRecord>('GET', `/evacuations/${id}`)).body;
        return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
      },
      120_000,
      250,
    );
    expect(done.predictedMisses).toEqual([
      expect.objectContaining({ workloadId: big.id, fallback: 'checkpoint-to-storage', fallbackNodeId: 'node-c' }),
    ]);
    expect(done.storageNote).toMatch(/checkpointed to storage node 'node-c'/);
    expect(done.storageNote).not.toMatch(/TODO/);
    const bigJob = done.jobs.find((j) => j.workloadId === big.id)!;
    expect(bigJob).toMatchObject({ state: 'checkpointed', checkpointId: expect.stringMatching(/^cp-/) });
    const smallJob = done.jobs.find((j) => j.workloadId === small.id)!;
    expect({ state: smallJob.state, error: smallJob.error }).toEqual({ state: 'completed', error: undefined });
    expect(done.state).toBe('partial');
    expect(done.outcome).toMatchObject({ moved: 1, checkpointed: 1, missed: 0, failed: 0 });

    stored = await checkpoint(bigJob.checkpointId!);
    expect(stored).toMatchObject({
      state: 'stored',
      evacuationId: id,
      sourceNodeId: 'node-a',
      storageNodeId: 'node-c',
    });
    expect(stored.criu.dump?.pagesWritten).toBeGreaterThanOrEqual(65_536);
    expect(pidAlive(big.pid)).toBe(false);
    expect(await onNode('node-c', `ls '${stored.imageDir}'`)).toMatch(/pages-\d+\.img/);
    const m = (await orch.api<MigrationRecord>('GET', `/migrations/${smallJob.migrationId}`)).body;
    expect(nodeOfPid(m.restoredPid!)).toBe(smallJob.destinationNodeId);
  });

  it('refuses bad restores with a clear 4xx and touches nothing; DELETE removes the images', async () => {
    const unknown = await orch.api<{ message: string }>('POST', '/checkpoints/cp-nope/restore', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toMatch(/checkpoint 'cp-nope' does not exist/);

    const again = await orch.api<{ message: string }>('POST', `/checkpoints/${restored.id}/restore`, {
      destination: 'node-c',
    });
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/already restored to 'node-b'/);
    expect((await checkpoint(restored.id)).state).toBe('restored');

    // node-a is terminating since the evacuation's notice.
    const terminating = await orch.api<{ message: string }>('POST', `/checkpoints/${stored.id}/restore`, {
      destination: 'node-a',
    });
    expect(terminating.status).toBe(400);
    expect(terminating.body.message).toMatch(/destination 'node-a' cannot take .*terminating/);
    const bad = await orch.api<{ message: string }>('POST', `/checkpoints/${stored.id}/restore`, { node: 'node-b' });
    expect(bad.status).toBe(400);
    const badTransport = await orch.api<{ message: string }>('POST', '/checkpoints', {
      workload: stored.workloadId,
      transport: 'udp',
    });
    expect(badTransport.status).toBe(400);
    expect(badTransport.body.message).toMatch(/transport/);
    const untouched = await checkpoint(stored.id);
    expect(untouched.state).toBe('stored');
    expect(untouched.restore).toBeUndefined();
    expect((await orch.api<WorkloadRecord>('GET', `/workloads/${stored.workloadId}`)).body.state).toBe('checkpointed');
    expect(await onNode('node-c', `ls '${stored.imageDir}'`)).toMatch(/pages-\d+\.img/);

    const removed = await orch.api<{ removed: boolean }>('DELETE', `/checkpoints/${stored.id}`);
    expect(removed.status).toBe(200);
    expect(removed.body.removed).toBe(true);
    expect(await onNode('node-c', `ls '${stored.imageDir}' 2>&1 || true`)).toMatch(/No such file/);
    expect((await orch.api('GET', `/checkpoints/${stored.id}`)).status).toBe(404);
  });
});
