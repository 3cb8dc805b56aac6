/**
 * A notice too short for a live migration of a guarded workload (issue 15), for real: lab nodes, real CRIU 4.2.1,
 * real Redis, the orchestrator in-process with a 1 s guard pass. A 16 MiB guarded workload on node-a gets a guard
 * checkpoint on node-c; then a 20 s evacuation of node-a whose live moves are priced at 30 s each (the configured
 * per-move overhead: a slow restore path) cannot fit any live strategy. The planner picks the guard path: a last
 * checkpoint on top of the guard chain (full here: these nodes have no soft-dirty) without --leave-running, then
 * the restore of it on another node. The workload runs once, elsewhere, its counter going on past the value it had
 * at the guard checkpoint and at the notice (no work lost), and the job says guard-restore with its parent.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CheckpointRecord, EvacuationRecord, WorkloadRecord } from '@spotlift/domain';
import { nodeOfPid, pidAlive, type HeartbeatCollector, type LabConfig } from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6488;
const SUFFIX = randomBytes(3).toString('hex');
const CP_ROOT = `/var/lib/spotlift/checkpoints-short-${SUFFIX}`;
const NAME = `short-${SUFFIX}`;

let env: E2eEnv;
let lab: LabConfig;
let orch: Orchestrator;
let collector: HeartbeatCollector;
let shell: SshNodeShell;

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    env: { SPOTLIFT_GUARD_TICK_MS: '1000' },
    config: (l) => ({
      ...l,
      nodes: l.nodes.map((n) => (n.id === 'node-c' ? { ...n, checkpointRoot: CP_ROOT } : n)),
      evacuation: { storageNodeId: 'node-c', perMigrationOverheadSeconds: 30, safetyMarginSeconds: 2 },
    }),
  });
  ({ lab, orch, collector } = env);
  shell = new SshNodeShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
}, 240_000);

afterAll(async () => {
  const c = lab?.nodes.find((n) => n.id === 'node-c');
  if (c) await shell.exec(c, `rm -rf '${CP_ROOT}'`, { timeoutMs: 60_000 }).catch(() => undefined);
  await shell?.close();
  await env?.teardown();
}, 120_000);

describe('a notice too short for a live migration (real CRIU)', () => {
  it('a guarded workload is restored on another node from its guard chain plus a last checkpoint, once, no work lost', async () => {
    const w: WorkloadRecord = (
      await env.launch(NAME, 'node-a', { memMiB: 16, fields: { guard: { intervalSeconds: 5, keep: 2 } } })
    ).workload;
    const mine = async () =>
      (await orch.api<CheckpointRecord[]>('GET', '/checkpoints')).body.filter((c) => c.workloadId === w.id);
    const guard = await until(
      'a guard checkpoint stored',
      async () => (await mine()).find((c) => c.mode === 'guard' && c.state === 'stored'),
      60_000,
    );
    // No guard take under way when the notice comes (the next one is a minute away).
    expect((await orch.api('PUT', `/workloads/${w.id}/guard`, { intervalSeconds: 60, keep: 2 })).status).toBe(200);
    await until(
      'no guard checkpoint under way',
      async () => ((await mine()).every((c) => c.state !== 'queued' && c.state !== 'taking') ? true : undefined),
      30_000,
    );
    const newestGuard = (await mine())
      .filter((c) => c.mode === 'guard' && c.state === 'stored')
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0]!;
    // The counter the guard checkpoint holds: at most what was sent before its freeze.
    const guardFrozen = Date.parse(newestGuard.frozenAt ?? guard.createdAt);
    const guardCounter = Math.max(
      0,
      ...collector
        .heartbeats(NAME)
        .filter((h) => h.at <= guardFrozen)
        .map((h) => h.counter),
    );
    await collector.waitForCount(NAME, collector.heartbeats(NAME).length + 3, { timeoutMs: 10_000 });
    const lastBefore = collector.last(NAME)!;

    const noticeAt = Date.now();
    const res = await orch.api<{ evacuation: EvacuationRecord }>('POST', '/evacuations', {
      node: 'node-a',
      secondsUntil: 20,
      reason: 'issue 15 e2e: too short for a live move',
    });
    expect(res.status).toBe(202);
    const done = await until(
      'the evacuation to finish',
      async () => {
        const e = (await orch.api<EvacuationRecord>('GET', `/evacuations/${res.body.evacuation.id}`)).body;
        return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
      },
      60_000,
      250,
    );
    const job = done.jobs.find((j) => j.workloadId === w.id)!;
    expect(done.predictedMisses).toEqual([
      expect.objectContaining({ workloadId: w.id, fallback: 'guard-restore', fallbackNodeId: 'node-c' }),
    ]);
    expect(job.guardPath).toMatchObject({ checkpointId: newestGuard.id, incremental: false, rpoSeconds: 0 });
    expect(job).toMatchObject({
      state: 'completed',
      strategy: 'guard-restore',
      guardParentId: newestGuard.id,
      guardRpoSeconds: 0,
      beforeDeadline: true,
    });
    expect(job.guardBytes!.pages).toBeGreaterThan(0);
    expect(done.outcome).toMatchObject({ moved: 1, missed: 0, failed: 0 });

    // The last checkpoint: a storage one (the source stopped at its dump, killed once stored), restored elsewhere.
    const last = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${job.checkpointId}`)).body;
    expect(last).toMatchObject({ state: 'restored', storageNodeId: 'node-c', evacuationId: done.id });
    expect(last.mode).toBeUndefined();
    expect(last.notes?.join(' ')).toMatch(/full last dump: node-a does not track dirty memory/);
    const moved = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(moved).toMatchObject({ state: 'running', nodeId: last.restore!.destinationNodeId });
    expect(moved.nodeId).not.toBe('node-a');
    env.track(moved.pid);
    expect(nodeOfPid(moved.pid)).toBe(moved.nodeId);
    expect(pidAlive(w.pid)).toBe(false);

    // Its counter goes on from the last checkpoint: past the guard checkpoint's value and what it sent before the
    // notice; and only the restored copy sends heartbeats (one running copy).
    await collector.waitFor(NAME, (hb) => hb.filter((h) => h.pid === moved.pid).length >= 3, 15_000);
    const after = collector.heartbeats(NAME, noticeAt).filter((h) => h.pid === moved.pid);
    expect(after[0]!.counter).toBeGreaterThan(guardCounter);
    expect(after[0]!.counter).toBeGreaterThanOrEqual(lastBefore.counter);
    const since = Date.parse(last.restore!.resumedAt!);
    await collector.waitForCount(NAME, collector.heartbeats(NAME).length + 5, { timeoutMs: 10_000 });
    expect(new Set(collector.heartbeats(NAME, since + 500).map((h) => h.pid))).toEqual(new Set([moved.pid]));
    console.log(
      `[short-notice] 20 s notice, live moves priced 30 s: guard-restore on ${newestGuard.id}; last checkpoint ${last.bytes.pages} page bytes, frozen to running on ${moved.nodeId} ${job.downtimeMs} ms; done ${((Date.parse(done.finishedAt!) - noticeAt) / 1000).toFixed(1)} s after the notice; counter ${guardCounter} at the guard checkpoint, ${lastBefore.counter} before the notice, ${after[0]!.counter} after`,
    );
  }, 150_000);
});
