/**
 * Guard mode, for real: lab nodes, real CRIU, real Redis, the orchestrator in-process with a 1 s guard pass.
 * A workload registered with `guard: {intervalSeconds: 5, keep: 2}` on node-a gets guard checkpoints on
 * node-c while it keeps running (heartbeats gap-free), only the newest two stay (records and image
 * directories), and GET /workloads/:id/guard reports the RPO and the freeze overhead; a freeze budget set
 * by PUT below the measured freeze skips the next one with the reason; DELETE ends guard mode.
 * Node loss: node-a's sshd killed and the workload frozen there (SIGSTOP: a hibernated instance that may come
 * back); silent but not confirmed: nothing restored, the reason shown; POST /nodes/node-a/lost: fenced, the
 * workload restored elsewhere from its last guard checkpoint, once; sshd back: the sweeper kills the stale copy.
 * The same for a Podman container (real Podman, runc): guard checkpoints by `checkpoint --export --leave-running`,
 * restored once on another node as the workload, the stale container on node-a removed by id when it returns.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CheckpointRecord, GuardReport, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import {
  nodeAddress,
  nodeOfPid,
  pidAlive,
  runLabScript,
  type HeartbeatCollector,
  type LabConfig,
} from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import { killAll, sshdPidsFor } from './support/faults-lab.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6481;
const SUFFIX = randomBytes(3).toString('hex');
const CP_ROOT = `/var/lib/spotlift/checkpoints-guard-${SUFFIX}`;
const NAME = `guard-${SUFFIX}`;
/** The lab's container image, on node-a only (scripts/lab/containers.sh). */
const IMAGE = 'localhost/spotlift-heartbeat:lab';

let env: E2eEnv;
let lab: LabConfig;
let orch: Orchestrator;
let collector: HeartbeatCollector;
let shell: SshNodeShell;

async function onNode(nodeId: string, command: string): Promise<string> {
  const node = lab.nodes.find((n) => n.id === nodeId)!;
  return (await shell.exec(node, command, { timeoutMs: 60_000 })).stdout;
}

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    env: { SPOTLIFT_GUARD_TICK_MS: '1000', SPOTLIFT_NODE_LOSS_AFTER_MS: '3000', SPOTLIFT_SWEEP_INTERVAL_MS: '2000' },
    config: (l) => ({
      ...l,
      nodes: l.nodes.map((n) => (n.id === 'node-c' ? { ...n, checkpointRoot: CP_ROOT } : n)),
      evacuation: { storageNodeId: 'node-c' },
    }),
  });
  ({ lab, orch, collector } = env);
  shell = new SshNodeShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
}, 240_000);

afterAll(async () => {
  await onNode('node-c', `rm -rf '${CP_ROOT}'`).catch(() => undefined);
  await shell?.close();
  await env?.teardown();
}, 120_000);

describe('guard mode (real CRIU)', () => {
  it('takes periodic guard checkpoints of a running workload, keeps the newest two, reports the RPO', async () => {
    const since = Date.now();
    const w: WorkloadRecord = (
      await env.launch(NAME, 'node-a', { memMiB: 16, fields: { guard: { intervalSeconds: 5, keep: 2 } } })
    ).workload;
    expect(w.guard).toEqual({ intervalSeconds: 5, keep: 2 });

    const guardOf = async () =>
      (await orch.api<CheckpointRecord[]>('GET', '/checkpoints')).body.filter(
        (c) => c.workloadId === w.id && c.mode === 'guard',
      );
    // Three taken and stored: the first one has been pruned by then (retention runs on each pass).
    const seen = new Set<string>();
    await until(
      'three guard checkpoints stored, the oldest removed',
      async () => {
        const mine = await guardOf();
        for (const c of mine) if (c.state === 'stored') seen.add(c.id);
        const failed = mine.find((c) => c.state === 'failed');
        if (failed) throw new Error(`guard checkpoint ${failed.id} failed: ${failed.error}`);
        const stored = mine.filter((c) => c.state === 'stored');
        return seen.size >= 3 && stored.length === 2 ? stored : undefined;
      },
      90_000,
    );

    const report = (await orch.api<GuardReport>('GET', `/workloads/${w.id}/guard`)).body;
    const stored = (await guardOf()).filter((c) => c.state === 'stored');
    expect(report.checkpoints.map((c) => c.id).sort()).toEqual(stored.map((c) => c.id).sort());
    expect(report.rpoSeconds).toBeGreaterThanOrEqual(0);
    expect(report.rpoSeconds).toBeLessThan(30);
    expect(report.overhead.meanFreezeMs).toBeGreaterThan(0);
    const freezes = report.checkpoints.map((c) => c.freezeMs!);
    const mean = freezes.reduce((a, b) => a + b, 0) / freezes.length;
    expect(report.overhead.freezeMsPerHour).toBe(Math.round((mean * 3600) / 5));

    // Only the kept ones' image directories remain on node-c.
    const dirs = (await onNode('node-c', `ls '${CP_ROOT}/${w.id}'`)).split('\n').filter(Boolean).sort();
    expect(dirs).toEqual(stored.map((c) => c.id).sort());

    // It ran on where it was, and its heartbeats never stopped (each freeze is short).
    const now = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(now).toMatchObject({ nodeId: 'node-a', pid: w.pid, state: 'running' });
    await collector.waitForCount(NAME, collector.heartbeats(NAME).length + 10, { timeoutMs: 10_000 });
    expect(collector.seqReport(NAME, since).gapFree).toBe(true);
    // A budget below the measured freeze: the next one is skipped, with the reason; then guard mode off.
    const put = await orch.api<WorkloadRecord>('PUT', `/workloads/${w.id}/guard`, {
      intervalSeconds: 5,
      keep: 2,
      maxFreezeMs: 1,
    });
    expect(put.status).toBe(200);
    const skipped = await until(
      'the next guard checkpoint skipped over the freeze budget',
      async () => (await orch.api<GuardReport>('GET', `/workloads/${w.id}/guard`)).body.skipped,
      30_000,
    );
    expect(skipped.reason).toMatch(/above maxFreezeMs 1$/);
    expect((await orch.api('PUT', `/workloads/${w.id}/guard`, { intervalSeconds: 1 })).status).toBe(400);
    expect((await orch.api<WorkloadRecord>('DELETE', `/workloads/${w.id}/guard`)).body.guard).toBeUndefined();
    expect((await orch.api('GET', `/workloads/${w.id}/guard`)).status).toBe(404);
    console.log(
      `[guard] ${seen.size} guard checkpoints stored, kept ${stored.length}; freezes ${report.checkpoints
        .map((c) => c.freezeMs?.toFixed(1))
        .join(
          ' / ',
        )} ms; RPO ${report.rpoSeconds?.toFixed(1)} s; ${report.overhead.freezeMsPerHour} ms frozen per hour`,
    );
  }, 150_000);

  it('a lost node: nothing restored until confirmed; then fenced and restored once from the last guard checkpoint', async () => {
    const name = `${NAME}-loss`;
    const w = (await env.launch(name, 'node-a', { memMiB: 16, fields: { guard: { intervalSeconds: 5, keep: 2 } } }))
      .workload;
    const guardOf = async () =>
      (await orch.api<CheckpointRecord[]>('GET', '/checkpoints')).body.filter(
        (c) => c.workloadId === w.id && c.mode === 'guard',
      );
    await until(
      'two guard checkpoints stored',
      async () => ((await guardOf()).filter((c) => c.state === 'stored').length >= 2 ? true : undefined),
      60_000,
    );
    // No take under way when the node vanishes (the next one is a minute away): the last one is the one to restore.
    expect((await orch.api('PUT', `/workloads/${w.id}/guard`, { intervalSeconds: 60, keep: 2 })).status).toBe(200);
    await until(
      'no guard checkpoint under way',
      async () => ((await guardOf()).every((c) => c.state !== 'queued' && c.state !== 'taking') ? true : undefined),
      30_000,
    );
    await collector.waitForCount(name, collector.heartbeats(name).length + 2, { timeoutMs: 10_000 });
    // The node vanishes: its sshd (listener and the orchestrator's sessions) killed, the workload frozen there.
    const lastBefore = collector.last(name)!;
    const lostAt = Date.now();
    process.kill(w.pid, 'SIGSTOP');
    killAll(sshdPidsFor('node-a', process.pid));
    try {
      const waiting = await until(
        'the restore waiting for a confirmation',
        async () => {
          const loss = (await orch.api<GuardReport>('GET', `/workloads/${w.id}/guard`)).body.loss;
          return loss && /not confirmed gone/.test(loss.reason) ? loss : undefined;
        },
        30_000,
      );
      expect(waiting.action).toBe('wait');
      expect((await guardOf()).filter((c) => c.restore)).toEqual([]);
      expect((await orch.api<NodeRecord>('GET', '/nodes/node-a')).body).toMatchObject({ state: 'unreachable' });
      // Bad confirmations change nothing.
      expect((await orch.api('POST', '/nodes/node-a/lost', { reason: 'x', force: true })).status).toBe(400);
      expect((await orch.api('POST', '/nodes/node-zz/lost', {})).status).toBe(404);

      const last = (await guardOf())
        .filter((c) => c.state === 'stored')
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0]!;
      const confirmed = await orch.api<NodeRecord>('POST', '/nodes/node-a/lost', { reason: 'instance terminated' });
      expect(confirmed.status).toBe(200);
      expect(confirmed.body.lost).toMatchObject({ source: 'operator', reason: 'instance terminated' });
      const moved = await until(
        'the workload restored on another node',
        async () => {
          const now = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
          return now.nodeId !== 'node-a' && now.state === 'running' ? now : undefined;
        },
        90_000,
      );
      const restoredAt = Date.now();
      expect((await orch.api<NodeRecord>('GET', '/nodes/node-a')).body.fence?.reason).toMatch(
        /lost: instance terminated/,
      );
      // The workload moves at the restore's commit; the checkpoint ends 'restored' after its cleanup.
      await until(
        'the restore ended',
        async () => ((await guardOf()).some((c) => c.state === 'restored') ? true : undefined),
        30_000,
      );
      const restored = (await guardOf()).filter((c) => c.restore);
      expect(restored).toHaveLength(1);
      expect(restored[0]).toMatchObject({ id: last.id, state: 'restored', restore: { attempt: 1 } });
      expect(restored[0]!.restore!.takeover).toMatchObject({ fromNodeId: 'node-a', stalePid: w.pid });
      expect(restored[0]!.restore!.clone).toBeUndefined();
      expect(moved.pid).toBe(restored[0]!.restore!.restoredPid);
      env.track(moved.pid);
      expect(nodeOfPid(moved.pid)).toBe(moved.nodeId);
      // Its counter resumes from the checkpoint: below the last one sent before the loss (the lost window).
      await collector.waitFor(name, (hb) => hb.some((h) => h.pid === moved.pid), 15_000);
      const first = collector.heartbeats(name, lostAt).find((h) => h.pid === moved.pid)!;
      expect(first.counter).toBeGreaterThan(0);
      expect(first.counter).toBeLessThanOrEqual(lastBefore.counter);

      // node-a answers again: the sweeper kills its frozen copy first; the restored one runs on, alone.
      await runLabScript('nodes.sh', ['up', '3'], 180_000);
      const gone = await until(
        'the stale copy on node-a gone',
        async () => (await guardOf()).find((c) => c.id === last.id)?.restore?.takeover?.staleGoneAt,
        60_000,
      );
      expect(gone).toBeDefined();
      expect(pidAlive(w.pid)).toBe(false);
      expect(pidAlive(moved.pid)).toBe(true);
      await collector.waitForCount(name, collector.heartbeats(name).length + 3, { timeoutMs: 10_000 });
      expect(new Set(collector.heartbeats(name, restoredAt).map((h) => h.pid))).toEqual(new Set([moved.pid]));
      expect((await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body).toMatchObject({
        nodeId: moved.nodeId,
        pid: moved.pid,
      });
      console.log(
        `[guard] node loss: restored ${last.id} on ${moved.nodeId} ${((restoredAt - lostAt) / 1000).toFixed(1)} s after the loss (confirmation included); counter ${lastBefore.counter} before, ${first.counter} after (lost window ${lastBefore.counter - first.counter} ticks)`,
      );
    } finally {
      if (pidAlive(w.pid)) process.kill(w.pid, 'SIGKILL');
      await runLabScript('nodes.sh', ['up', '3'], 180_000).catch(() => undefined);
    }
  }, 240_000);

  it('a guarded container: guard checkpoints while it runs; its node lost and confirmed: restored once elsewhere; the stale copy removed when node-a returns', async () => {
    const name = `${NAME}-ct`;
    const run = `podman run --detach --name ${name} --network host ${IMAGE} ${name} 16 ${collector.host} ${collector.port} 100`;
    const clean = async () => {
      for (const n of ['node-a', 'node-b', 'node-c']) {
        await onNode(n, `podman rm --force --ignore --time 0 ${name}`).catch(() => undefined);
      }
    };
    await onNode('node-a', run);
    await collector.waitForCount(name, 5, { timeoutMs: 30_000 });
    const body = { node: 'node-a', kind: 'podman', container: name, guard: { intervalSeconds: 5, keep: 2 } };
    if ((await orch.api<NodeRecord>('GET', '/nodes/node-a')).body.fence) {
      // The test before confirmed node-a lost: nothing is registered there until node-a is registered again.
      const refused = await orch.api<{ code: string; message: string }>('POST', '/workloads', body);
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ code: 'node_fenced', message: expect.stringMatching(/registered again/) });
      const again = await orch.api<NodeRecord>(
        'POST',
        '/nodes',
        lab.nodes.find((n) => n.id === 'node-a'),
      );
      expect(again.status).toBeLessThan(300);
      expect(again.body.fence).toBeUndefined();
    }
    const reg = await orch.api<WorkloadRecord>('POST', '/workloads', body);
    expect(reg.status).toBe(201);
    const w = reg.body;
    const guardOf = async () =>
      (await orch.api<CheckpointRecord[]>('GET', '/checkpoints')).body.filter(
        (c) => c.workloadId === w.id && c.mode === 'guard',
      );
    try {
      const why = async () =>
        JSON.stringify({
          status: (await orch.api('GET', `/workloads/${w.id}/guard`)).body,
          checkpoints: (await guardOf()).map((c) => ({
            id: c.id,
            state: c.state,
            error: c.error,
            phases: c.phases.map((p) => `${p.name}:${p.ok}`),
          })),
        });
      await until(
        'two guard checkpoints of the container stored',
        async () => {
          const mine = await guardOf();
          const failed = mine.find((c) => c.state === 'failed');
          if (failed) throw new Error(`guard checkpoint ${failed.id} failed: ${failed.error}`);
          return mine.filter((c) => c.state === 'stored').length >= 2 ? true : undefined;
        },
        60_000,
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}: ${await why()}`);
      });
      expect((await orch.api('PUT', `/workloads/${w.id}/guard`, { intervalSeconds: 60, keep: 2 })).status).toBe(200);
      await until(
        'no guard checkpoint under way',
        async () => ((await guardOf()).every((c) => c.state !== 'queued' && c.state !== 'taking') ? true : undefined),
        30_000,
      );
      const stored = (await guardOf()).filter((c) => c.state === 'stored');
      // Each guard checkpoint is Podman's --leave-running export: the container ran on through all of them.
      expect(stored.every((c) => c.kind === 'podman' && c.container?.name === name)).toBe(true);
      expect(stored.every((c) => (c.criu.dump?.frozenTimeUs ?? 0) > 0)).toBe(true);
      // Heartbeats carry the pid inside the container (1): where they come from tells the copies apart.
      expect(new Set(collector.heartbeats(name).map((h) => h.from))).toEqual(new Set([nodeAddress('node-a')]));
      const last = stored.sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0]!;

      const lastBefore = collector.last(name)!;
      const lostAt = Date.now();
      process.kill(w.pid, 'SIGSTOP');
      killAll(sshdPidsFor('node-a', process.pid));
      await until(
        'the restore waiting for a confirmation',
        async () =>
          (await orch.api<GuardReport>('GET', `/workloads/${w.id}/guard`)).body.loss?.action === 'wait' || undefined,
        30_000,
      );
      expect((await guardOf()).filter((c) => c.restore)).toEqual([]);
      expect((await orch.api('POST', '/nodes/node-a/lost', { reason: 'instance gone' })).status).toBe(200);
      const moved = await until(
        'the container restored on another node',
        async () => {
          const now = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
          return now.nodeId !== 'node-a' && now.state === 'running' ? now : undefined;
        },
        120_000,
      );
      const restoredAt = Date.now();
      await until(
        'the restore ended',
        async () => ((await guardOf()).some((c) => c.state === 'restored') ? true : undefined),
        30_000,
      );
      const restored = (await guardOf()).filter((c) => c.restore);
      expect(restored).toHaveLength(1);
      expect(restored[0]).toMatchObject({ id: last.id, state: 'restored' });
      expect(restored[0]!.restore!.takeover).toMatchObject({ fromNodeId: 'node-a', staleContainer: w.container });
      expect(restored[0]!.restore!.clone).toBeUndefined();
      expect(nodeOfPid(moved.pid)).toBe(moved.nodeId);
      const there = nodeAddress(moved.nodeId);
      await collector.waitFor(name, (hb) => hb.some((h) => h.from === there), 15_000);
      const first = collector.heartbeats(name, lostAt).find((h) => h.from === there)!;
      expect(first.counter).toBeLessThanOrEqual(lastBefore.counter);

      // node-a answers again: the sweeper removes its frozen copy (by the container's id); the restored one runs on.
      await runLabScript('nodes.sh', ['up', '3'], 180_000);
      const gone = await until(
        'the stale container on node-a removed',
        async () => (await guardOf()).find((c) => c.id === last.id)?.restore?.takeover?.staleGoneAt,
        60_000,
      );
      expect(gone).toBeDefined();
      expect(pidAlive(w.pid)).toBe(false);
      expect((await onNode('node-a', `podman container exists ${w.container} && echo yes || echo no`)).trim()).toBe(
        'no',
      );
      expect(pidAlive(moved.pid)).toBe(true);
      await collector.waitForCount(name, collector.heartbeats(name).length + 3, { timeoutMs: 10_000 });
      expect(new Set(collector.heartbeats(name, restoredAt).map((h) => h.from))).toEqual(new Set([there]));
      console.log(
        `[guard] container node loss: ${stored.length} guard checkpoints (frozen ${stored.map((c) => Math.round((c.criu.dump?.frozenTimeUs ?? 0) / 1000)).join('/')} ms), restored ${last.id} on ${moved.nodeId} ${((restoredAt - lostAt) / 1000).toFixed(1)} s after the loss (confirmation included); counter ${lastBefore.counter} before, ${first.counter} after`,
      );
    } finally {
      if (pidAlive(w.pid)) process.kill(w.pid, 'SIGKILL');
      await runLabScript('nodes.sh', ['up', '3'], 180_000).catch(() => undefined);
      await clean();
      for (const n of ['node-b', 'node-c'])
        await onNode(n, `podman image rm --force -- ${IMAGE}`).catch(() => undefined);
    }
  }, 300_000);
});
