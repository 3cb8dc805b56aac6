/**
 * Guard mode, for real: lab nodes, real CRIU, real Redis, the orchestrator in-process with a 1 s guard pass.
 * A workload registered with `guard: {intervalSeconds: 5, keep: 2}` on node-a gets guard checkpoints on
 * node-c while it keeps running (heartbeats gap-free), only the newest two stay (records and image
 * directories), and GET /workloads/:id/guard reports the RPO and the freeze overhead; a freeze budget set
 * by PUT below the measured freeze skips the next one with the reason; DELETE ends guard mode.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CheckpointRecord, GuardReport, WorkloadRecord } from '@spotlift/domain';
import type { HeartbeatCollector, LabConfig } from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6481;
const SUFFIX = randomBytes(3).toString('hex');
const CP_ROOT = `/var/lib/spotlift/checkpoints-guard-${SUFFIX}`;
const NAME = `guard-${SUFFIX}`;

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
    env: { SPOTLIFT_GUARD_TICK_MS: '1000' },
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
});
