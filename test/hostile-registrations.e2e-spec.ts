/**
 * Registrations a hostile or careless caller sends, against real lab nodes (sshd in network namespaces on
 * one shared kernel), real Redis and real processes: the same process twice (same node, another node, 20
 * at once across two replicas), pid 1, the node's sshd, a kernel thread; DELETE while a real migration is
 * queued or running, and after it; GET writing nothing. Each refusal leaves the workload running and
 * registered once.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { labDir, nodeAddress, nodeOfPid, pidAlive, startWorkload, stopWorkload } from '@spotlift/testing';
import { until } from './support/poll.js';
import { type E2eEnv, procState, setupE2e, spawnInNode } from './support/e2e-env.js';
import { startOrchestrator, type Orchestrator } from './support/orchestrator-harness.js';

let env: E2eEnv;
let pid = 0;
const NAME = 'e2e-hostile';
type Answer = { status: number; body: { message?: string; workload?: string; id?: string } };

/** Field 22 of /proc/PID/stat read here (the lab's nodes share this kernel's pid namespace). */
function startTimeOf(p: number): string {
  const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

beforeAll(async () => {
  env = await setupE2e({ nodes: 3, redisPort: 6413 });
  pid = await startWorkload('node-a', { name: NAME, memMiB: 32, udpPort: env.collector.port });
  await env.collector.waitForCount(NAME, 3, { from: nodeAddress('node-a'), timeoutMs: 30_000 });
}, 240_000);

afterAll(async () => {
  if (pid && pidAlive(pid)) await stopWorkload(pid);
  await env?.teardown();
}, 120_000);

const register = (body: object, orch: Orchestrator = env.orch): Promise<Answer> =>
  orch.api('POST', '/workloads', { name: NAME, node: 'node-a', pid, ...body });

async function registeredOnce(orch: Orchestrator = env.orch): Promise<WorkloadRecord> {
  const list = (await orch.api<WorkloadRecord[]>('GET', '/workloads')).body.filter((w) => w.pid === pid);
  expect(list).toHaveLength(1);
  return list[0]!;
}

describe('one record per process', () => {
  let first: WorkloadRecord;

  it('registers the process with the identity the node shows', async () => {
    const res = await register({});
    expect(res.status).toBe(201);
    first = res.body as unknown as WorkloadRecord;
    expect(first.identity).toEqual({
      bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
      pidNs: String(statSync(`/proc/${pid}/ns/pid`).ino),
      startTime: startTimeOf(pid),
    });
  });

  it('answers 409 naming the first record for the same process on the same node', async () => {
    const res = await register({ name: 'again' });
    expect(res.status).toBe(409);
    expect(res.body.workload).toBe(first.id);
    expect(res.body.message).toBe(`pid ${pid} on node 'node-a' is already registered as workload '${first.id}'`);
    expect((await registeredOnce()).id).toBe(first.id);
  });

  it('refuses the same pid under another node: it is not in that node’s network namespace', async () => {
    const res = await register({ name: 'elsewhere', node: 'node-b' });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(
      new RegExp(
        `^pid ${pid} \\(".+"\\) is not in node 'node-b''s network namespace .* register it on the node it runs in`,
      ),
    );
    expect((await registeredOnce()).id).toBe(first.id);
  });

  it('GET shows what the node shows under `observed` and writes nothing', async () => {
    const stored = JSON.stringify(await registeredOnce());
    const res = await env.orch.api<
      WorkloadRecord & { observed: { state: string; processState: string; tree: number[] } }
    >('GET', `/workloads/${first.id}`);
    expect(res.status).toBe(200);
    expect(res.body.observed).toMatchObject({ state: 'running', processState: expect.stringMatching(/^[RS]$/) });
    expect(res.body.observed.tree[0]).toBe(pid);
    expect(JSON.stringify(await registeredOnce())).toBe(stored);
  });
});

describe('20 concurrent registrations of one process across two replicas', () => {
  const replicas: Orchestrator[] = [];

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
  });

  it('answers exactly one 201; every other is a 409 naming the winner', async () => {
    // Two API replicas on one Redis and one prefix, apart from the suite's own orchestrator.
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await startOrchestrator({ nodesConfig: env.lab, redisPort: env.redisPort, prefix: 'race', role: 'api' }),
      );
    }
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => register({ name: `race-${i}` }, replicas[i % 2])),
    );
    const created = answers.filter((a) => a.status === 201);
    expect(created).toHaveLength(1);
    const winner = created[0]!.body.id;
    expect(answers.filter((a) => a.status === 409).map((a) => a.body.workload)).toEqual(Array(19).fill(winner));
    expect((await registeredOnce(replicas[0])).id).toBe(winner);
    expect((await registeredOnce(replicas[1])).id).toBe(winner);
  });
});

describe('processes that must never be workloads', () => {
  const sshdPid = () => Number(readFileSync(join(labDir(), 'nodes', 'node-a', 'sshd.pid'), 'utf8').trim());

  it.each([
    ['pid 1', () => 1, /^pid 1 is the init of node 'node-a'/],
    ['the node’s sshd', sshdPid, /holds pid \d+, which carries spotlift's own SSH session there/],
    ['a kernel thread (kthreadd)', () => 2, /^pid 2 \("kthreadd"\) on node 'node-a' is a kernel thread/],
  ])('refuses %s with a 400', async (_, target, reason) => {
    const p = target();
    expect(p).toBeGreaterThan(0);
    const res = await env.orch.api<{ message: string }>('POST', '/workloads', { name: 'x', node: 'node-a', pid: p });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(reason);
    expect((await env.orch.api<WorkloadRecord[]>('GET', '/workloads')).body.filter((w) => w.pid === p)).toEqual([]);
    // The node and its sshd were not touched: the orchestrator still reaches node-a.
    expect(procState(sshdPid())).toMatch(/^[RS]$/);
  });
});

describe('DELETE /workloads/:id', () => {
  it('is a 404 for an unknown workload', async () => {
    expect((await env.orch.api('DELETE', '/workloads/wl-nope')).status).toBe(404);
  });

  it('is a 409 while a migration works on it; after the move the index follows the process', async () => {
    const w = await registeredOnce();
    const m = await env.create({ workload: w.id, destination: 'node-b' });
    const busy = await env.orch.api<{ message: string }>('DELETE', `/workloads/${w.id}`);
    expect(busy.status).toBe(409);
    expect(busy.body.message).toMatch(
      new RegExp(`migration '${m.id}' \\((queued|running)\\) works on it|it is migrating`),
    );
    const done = await env.finished(m.id);
    expect(done.state).toBe('completed');
    expect(pidAlive(pid)).toBe(false);
    const moved = done.restoredPid!;
    expect(nodeOfPid(moved)).toBe('node-b');

    // The record is the restored process now: its identity, and a second registration of it is a 409.
    const after = (await env.orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(after).toMatchObject({ nodeId: 'node-b', pid: moved, identity: { startTime: startTimeOf(moved) } });
    const again = await env.orch.api<{ workload: string }>('POST', '/workloads', {
      name: 'moved',
      node: 'node-b',
      pid: moved,
    });
    expect(again.status).toBe(409);
    expect(again.body.workload).toBe(w.id);

    // Removed: the record and its index entry go, the process keeps running where it is.
    expect((await env.orch.api('DELETE', `/workloads/${w.id}`)).status).toBe(204);
    expect((await env.orch.api('GET', `/workloads/${w.id}`)).status).toBe(404);
    expect(procState(moved)).toMatch(/^[RS]$/);
    const fresh = await env.orch.api<MigrationRecord>('POST', '/workloads', {
      name: 'back',
      node: 'node-b',
      pid: moved,
    });
    expect(fresh.status).toBe(201);
  });
});

/**
 * Forks in `node`'s network namespace until a child gets `pid` (through /proc/sys/kernel/ns_last_pid, as
 * CRIU's restore does); the child becomes `sleep`. Returns once it runs.
 */
async function reusePid(node: string, pid: number): Promise<void> {
  const script = [
    'import os, sys',
    'want = int(sys.argv[1])',
    'for _ in range(200):',
    "    open('/proc/sys/kernel/ns_last_pid', 'w').write(str(want - 1))",
    '    child = os.fork()',
    '    if child == 0:',
    "        if os.getpid() == want: os.setsid(); os.execvp('sleep', ['sleep', '300'])",
    '        os._exit(0)',
    '    if child == want: sys.exit(0)',
    '    os.waitpid(child, 0)',
    'sys.exit(1)',
  ].join('\n');
  spawnInNode(node, ['python3', '-c', script, String(pid)]);
  const isSleep = (): boolean => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep';
    } catch {
      return false;
    }
  };
  await until(`pid ${pid} reused by sleep`, () => Promise.resolve(isSleep() || undefined), 15_000);
}

describe('a pid reused by another process', () => {
  it('is observed as gone, is never frozen by a migration, and the new process registers as itself', async () => {
    const name = 'e2e-reused';
    const old = await startWorkload('node-a', { name, memMiB: 8, udpPort: env.collector.port });
    const res = await env.orch.api<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid: old });
    expect(res.status).toBe(201);
    await stopWorkload(old);
    await reusePid('node-a', old);
    try {
      const view = await env.orch.api<{ observed: { state: string; reason: string } }>(
        'GET',
        `/workloads/${res.body.id}`,
      );
      expect(view.body.observed).toMatchObject({
        state: 'gone',
        reason: expect.stringMatching(/is another process now/),
      });

      // POST /migrations may already see it (400); if it queues the job, preflight refuses before any freeze.
      const m = await env.orch.api<MigrationRecord & { message?: string }>('POST', '/migrations', {
        workload: res.body.id,
        destination: 'node-b',
      });
      if (m.status === 201) {
        const done = await env.finished(m.body.id);
        expect(done.state).toBe('failed');
        expect(done.phases.map((p) => p.name)).toEqual(['preflight', 'cleanup']);
        expect(done.error).toMatch(new RegExp(`pid ${old} on node 'node-a' is another process now`));
      } else {
        expect(m.status).toBe(400);
        expect(m.body.message).toMatch(/another process|no longer runs/);
      }
      expect(procState(old)).toBe('S');

      const fresh = await env.orch.api<WorkloadRecord>('POST', '/workloads', {
        name: 'impostor',
        node: 'node-a',
        pid: old,
      });
      expect(fresh.status).toBe(201);
      expect(fresh.body.identity?.startTime).not.toBe(res.body.identity?.startTime);
    } finally {
      await stopWorkload(old);
    }
  });
});
