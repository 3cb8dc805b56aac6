/**
 * Bad input is answered, never obeyed. Each case asserts the error a person gets AND that the workload
 * was not touched: same pid, same node, not stopped, heartbeats still arriving from its node.
 * Tried: unknown workload, unknown destination, destination = source, malformed JSON, wrong types, unknown
 * fields, a pid that does not exist, a workload whose process died after registration, an unreachable
 * node (refused, not stored), a host key that does not match the pin, a missing or wrong token.
 */
import { readFileSync } from 'node:fs';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { nodeAddress, nodeOfPid, pidAlive, startWorkload, stopWorkload } from '@spotlift/testing';
import { type E2eEnv, setupE2e } from './support/e2e-env.js';

let env: E2eEnv;
let pid = 0;
let workload: WorkloadRecord;
const NAME = 'e2e-bad-input';

function procState(p: number): string {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 'gone';
  } catch {
    return 'gone';
  }
}

beforeAll(async () => {
  env = await setupE2e({ nodes: 3, redisPort: 16381 });
  pid = await startWorkload('node-a', { name: NAME, memMiB: 16, udpPort: env.collector.port });
  await env.collector.waitForCount(NAME, 3, { from: nodeAddress('node-a'), timeoutMs: 30_000 });
  workload = (await env.orch.api<WorkloadRecord>('POST', '/workloads', { name: NAME, node: 'node-a', pid })).body;
}, 240_000);

afterAll(async () => {
  if (pid && pidAlive(pid)) await stopWorkload(pid);
  await env?.teardown();
}, 120_000);

/** The workload is untouched: original pid, on node-a, running, heartbeats keep coming, no migration in flight. */
async function expectUntouched(): Promise<void> {
  expect(procState(pid)).toMatch(/^[RS]$/);
  expect(nodeOfPid(pid)).toBe('node-a');
  const t = Date.now();
  await env.collector.waitForCount(NAME, 2, { from: nodeAddress('node-a'), since: t, timeoutMs: 10_000 });
  expect(env.collector.isSeqGapFree(NAME)).toBe(true);
  const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
  expect(w.body).toMatchObject({ nodeId: 'node-a', pid, state: 'running' });
  const list = await env.orch.api<MigrationRecord[]>('GET', '/migrations');
  expect(list.body.filter((m) => m.workloadId === workload.id && m.state === 'completed')).toEqual([]);
}

describe('POST /migrations with bad input', () => {
  it.each([
    ['an unknown workload', { workload: 'wl-nope' }, 404, /workload 'wl-nope' does not exist/],
    [
      'an unknown destination',
      () => ({ workload: workload.id, destination: 'node-zz' }),
      404,
      /node 'node-zz' does not exist/,
    ],
    [
      'the source as destination',
      () => ({ workload: workload.id, destination: 'node-a' }),
      400,
      /it is the source node/,
    ],
    ['a missing workload field', {}, 400, /workload/],
    ['a wrong type', () => ({ workload: workload.id, destination: 42 }), 400, /destination/],
    ['an unknown field', () => ({ workload: workload.id, force: true }), 400, /force|unrecognized/i],
    ['an unknown strategy', () => ({ workload: workload.id, strategy: 'teleport' }), 400, /strategy/],
  ])('rejects %s', async (_label, body, status, message) => {
    const res = await env.orch.api<{ message: string }>(
      'POST',
      '/migrations',
      typeof body === 'function' ? body() : body,
    );
    expect(res.status).toBe(status);
    expect(res.body.message).toMatch(message);
    await expectUntouched();
  });

  it('rejects malformed JSON with 400', async () => {
    const res = await env.orch.api<{ message: string }>('POST', '/migrations', '{"workload": ');
    expect(res.status).toBe(400);
    await expectUntouched();
  });

  it('rejects a request without a valid token with 401', async () => {
    const res = await fetch(`${env.orch.baseUrl}/migrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer wrong-token-wrong-token' },
      body: JSON.stringify({ workload: workload.id, destination: 'node-b' }),
    });
    expect(res.status).toBe(401);
    expect((await fetch(`${env.orch.baseUrl}/nodes`)).status).toBe(401);
    expect((await fetch(`${env.orch.baseUrl}/health/live`)).status).toBe(200);
    await expectUntouched();
  });
});

describe('registration with bad input', () => {
  it('refuses a workload whose pid does not exist on the node', async () => {
    const res = await env.orch.api<{ message: string }>('POST', '/workloads', {
      name: 'ghost',
      node: 'node-a',
      pid: 3_999_999,
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/no process with pid 3999999 runs on node 'node-a'/);
  });

  it('refuses a workload with both pid and pidfile, or neither', async () => {
    for (const body of [
      { name: 'x', node: 'node-a' },
      { name: 'x', node: 'node-a', pid: 1, pidfile: '/run/x.pid' },
    ]) {
      const res = await env.orch.api<{ message: string }>('POST', '/workloads', body);
      expect(res.status).toBe(400);
      expect(res.body.message).toMatch(/exactly one of pid or pidfile/);
    }
  });

  it('refuses an unreachable node without storing it, and will not migrate to it', async () => {
    const b = env.lab.nodes.find((n) => n.id === 'node-b')!;
    const res = await env.orch.api<{ message: string }>('POST', '/nodes', {
      ...b,
      id: 'node-dead',
      host: '10.77.0.99',
      dataAddress: '10.77.0.99',
    });
    // The caller learns no more than "not reachable" (the detail is in the orchestrator's log).
    expect(res.status).toBe(502);
    expect(res.body.message).toMatch(
      /^node 'node-dead' could not be reached over SSH \(see the orchestrator log, id \w+\)$/,
    );
    expect((await env.orch.api('GET', '/nodes/node-dead')).status).toBe(404);
    const m = await env.orch.api<{ message: string }>('POST', '/migrations', {
      workload: workload.id,
      destination: 'node-dead',
    });
    expect(m.status).toBe(404);
    expect(m.body.message).toMatch(/node 'node-dead' does not exist/);
    await expectUntouched();
  });

  it('refuses a node whose host key does not match the pin, and does not store it', async () => {
    const b = env.lab.nodes.find((n) => n.id === 'node-b')!;
    const c = env.lab.nodes.find((n) => n.id === 'node-c')!;
    const res = await env.orch.api<{ code: string; message: string }>('POST', '/nodes', {
      ...b,
      id: 'node-imposter',
      hostKey: c.hostKey,
    });
    expect(res.status).toBe(502);
    expect(res.body.code).toBe('node_unreachable');
    expect(res.body.message).toMatch(/^node 'node-imposter' could not be reached over SSH \(see the orchestrator log/);
    expect((await env.orch.api('GET', '/nodes/node-imposter')).status).toBe(404);
  });

  it('answers a migration of a workload whose process has died with 400, and freezes nothing', async () => {
    const other = await startWorkload('node-a', { name: 'e2e-dies', memMiB: 8, udpPort: env.collector.port });
    const w = (
      await env.orch.api<WorkloadRecord>('POST', '/workloads', { name: 'e2e-dies', node: 'node-a', pid: other })
    ).body;
    await stopWorkload(other);
    const res = await env.orch.api<{ message: string }>('POST', '/migrations', {
      workload: w.id,
      destination: 'node-b',
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/no longer runs on 'node-a'/);
    await expectUntouched();
  });
});
