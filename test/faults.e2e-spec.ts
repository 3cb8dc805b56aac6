/**
 * Fault injection with real processes: real CRIU, real sshd nodes in their network namespaces, real Redis,
 * and the orchestrator as a child process so it can be SIGKILLed mid-migration and started again. After every
 * case the suite looks at the machine itself, not only at the record: every process that is a copy of the
 * workload (original or restored, in any namespace), its state (running vs stopped), which node's network
 * namespace it is in, its heartbeats, the migration's image directory and any CRIU process of it.
 * Invariant checked: exactly one running copy, or the job says the workload was gone before the freeze.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { MigrationRecord, NodeRecord, PhaseName, WorkloadRecord } from '@spotlift/domain';
import { labDir, runLabScript, stopWorkload, type OrchestratorProcess } from '@spotlift/testing';
import { setupE2e, sleep, spawnInNode, type E2eEnv } from './support/e2e-env.js';
import { type SuiteWorld, expectExactlyOnce, failedPhase, frozenMs, untilFrozen } from './support/exactly-once.js';
import {
  PhaseWatcher,
  killAll,
  sshdPidsFor,
  startRedisAgain,
  stopRedisAs,
  workloadCopies,
} from './support/faults-lab.js';

const REDIS_PORT = 6455;
const MEM_MIB = 256;
const IMAGE_ROOT = '/var/lib/spotlift/images';

let env: E2eEnv<OrchestratorProcess>;
let orch: OrchestratorProcess;
let watcher: PhaseWatcher;
let world: SuiteWorld;
const report: string[] = [];

beforeAll(async () => {
  env = await setupE2e({
    mode: 'process',
    redisPort: REDIS_PORT,
    // The worker's local journal (what it could not hand to Redis), private to this suite run.
    env: { SPOTLIFT_STATE_DIR: join(labDir(), 'faults', `state-${Date.now().toString(36)}`) },
  });
  orch = env.orch;
  world = { orch, collector: env.collector, report, imageRoot: IMAGE_ROOT };
  watcher = new PhaseWatcher(REDIS_PORT, orch.prefix);
  await watcher.start();
}, 300_000);

afterAll(async () => {
  watcher?.stop();
  await env?.teardown();
  console.log(`fault injection, ${MEM_MIB} MiB workloads, stop-and-copy node-a -> node-b:\n${report.join('\n')}`);
}, 120_000);

/** What the Redis cases moved: after a restart on an empty Redis, the journal must bring these back. */
const moved: { id: string; workloadId: string; name: string; restoredPid?: number }[] = [];
/** The workloads each case launched. */
const launched: string[] = [];

// A 256 MiB workload left running costs the cases after it CPU (it keeps checking its memory): each is stopped
// once its case has looked at it, but for the last three moves, which the restart case reads back.
afterEach(async () => {
  while (moved.length > 3) launched.push(moved.shift()!.name);
  for (const name of launched.splice(0)) {
    if (moved.some((m) => m.name === name)) continue;
    for (const c of workloadCopies(name)) await stopWorkload(c.pid).catch(() => undefined);
  }
}, 60_000);

async function launch(name: string, memMiB = MEM_MIB): Promise<{ pid: number; workload: WorkloadRecord }> {
  launched.push(name);
  return env.launch(name, 'node-a', { memMiB, heartbeatTimeoutMs: 60_000 });
}

async function migrate(workload: WorkloadRecord, transport?: 'tcp'): Promise<string> {
  const body = { workload: workload.id, destination: 'node-b', ...(transport ? { transport } : {}) };
  return (await env.create(body)).id;
}

describe('faults during a real migration: the workload runs in exactly one place', () => {
  it('(a) destination sshd killed mid-transfer: rolled back, source resumed, destination cleaned once sshd is back', async () => {
    const name = 'f-sshd';
    const { pid, workload } = await launch(name);
    const id = await migrate(workload);
    // The orchestrator's connection to node-b exists from preflight on; the transfer lasts tens of ms.
    await watcher.when(id, 'dump');
    const sshd = sshdPidsFor('node-b', orch.pid!);
    expect(sshd.length).toBeGreaterThanOrEqual(2);
    await watcher.when(id, 'transfer');
    killAll(sshd);
    const killed = sshd;
    const killedAt = Date.now();
    await sleep(2_000);
    await runLabScript('nodes.sh', ['up', '3'], 180_000); // repairs: starts node-b's sshd again
    const m = await orch.waitForEnd<MigrationRecord>(id);
    expect(m.state).toBe('rolled_back');
    expect(failedPhase(m)).toBe('transfer');
    expect(m.rollbackReason).toMatch(/image stream node-a -> node-b broke|unpacking on node-b failed|node-b/);
    await expectExactlyOnce(
      world,
      name,
      pid,
      m,
      '(a) sshd of node-b killed in transfer',
      `; killed pids ${killed.join(' ')}; end ${Date.now() - killedAt} ms after the kill`,
    );
  });

  it('(b) page-server killed during the dump: CRIU aborts, rolled back, source resumed', async () => {
    const name = 'f-pageserver';
    const { pid, workload } = await launch(name);
    // Plain tcp: the classification asserted below is CRIU's page-server connection error (over tls the
    // same kill surfaces as a TLS send error).
    const id = await migrate(workload, 'tcp');
    await watcher.when(id, 'dump');
    await sleep(150);
    const ps = Number(readFileSync(`${IMAGE_ROOT}/${id}/dst/page-server.pid`, 'utf8').trim());
    process.kill(ps, 'SIGKILL');
    const m = await orch.waitForEnd<MigrationRecord>(id);
    expect(m.state).toBe('rolled_back');
    expect(failedPhase(m)).toBe('dump');
    expect(m.rollbackReason).toMatch(/criu dump failed on node-a \(page_server_connection\)/);
    await expectExactlyOnce(
      world,
      name,
      pid,
      m,
      '(b) page-server killed in dump',
      `; frozen at most ${frozenMs(m)} ms (dump start to resume)`,
    );
  });

  it('(c) restore failing on the destination (its port is taken there): rolled back with the class', async () => {
    const name = 'f-restore';
    const { pid, workload } = await launch(name);
    const port = env.collector.last(name)!.fromPort;
    const holder = spawnInNode('node-b', [
      'python3',
      '-c',
      `import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${port})); time.sleep(600)`,
    ]);
    try {
      await sleep(500);
      const m = await orch.waitForEnd<MigrationRecord>(await migrate(workload));
      expect(m.state).toBe('rolled_back');
      expect(failedPhase(m)).toBe('restore');
      expect(m.rollbackReason).toMatch(/criu restore failed on node-b \(address_in_use\)/);
      await expectExactlyOnce(world, name, pid, m, '(c) restore fails (address in use)');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('(d) the workload exits during the dump: the job says it is gone, nothing runs anywhere', async () => {
    const name = 'f-exit';
    const { pid, workload } = await launch(name);
    const id = await migrate(workload);
    await watcher.when(id, 'dump');
    await sleep(100);
    process.kill(pid, 'SIGKILL');
    const m = await orch.waitForEnd<MigrationRecord>(id);
    // CRIU fails on a task that dies under it; had the dump already finished, the restored copy is the workload.
    if (m.state === 'completed') {
      await expectExactlyOnce(world, name, pid, m, '(d) workload killed in dump (dump had finished)');
      return;
    }
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /^workload gone: pid \d+ on node-a exited before the migration could move it; nothing was restored and it runs nowhere/,
    );
    const w = await orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
    expect(w.body.state).toBe('gone');
    await expectExactlyOnce(world, name, pid, m, '(d) workload killed in dump');
  });

  // For the dump the kill waits until CRIU has the workload stopped, then lets it stream pages for 100 ms:
  // the orphaned `criu dump` then finishes on its own and leaves the workload stopped (--leave-stopped).
  const crashes: [PhaseName, number, MigrationRecord['state'][]][] = [
    ['prepare', 0, ['completed']],
    ['dump', 100, ['rolled_back']],
    ['transfer', 0, ['rolled_back']],
    ['restore', 100, ['completed', 'rolled_back']],
    ['verify', 0, ['completed']],
    ['commit', 0, ['completed']],
  ];
  it.each(crashes)(
    '(e) orchestrator SIGKILLed during %s and restarted: finished or rolled back',
    async (phase, delayMs, outcomes) => {
      const name = `f-crash-${phase}`;
      const { pid, workload } = await launch(name);
      const id = await migrate(workload);
      await watcher.when(id, phase);
      if (phase === 'dump') await untilFrozen(pid);
      if (delayMs) await sleep(delayMs);
      await orch.kill('SIGKILL');
      const killedAt = Date.now();
      const frozen = workloadCopies(name)
        .map((c) => `${c.pid}:${c.state}`)
        .join(',');
      await orch.start();
      const m = await orch.waitForEnd<MigrationRecord>(id);
      const tookMs = Date.now() - killedAt;
      expect(outcomes).toContain(m.state);
      expect(
        m.notes?.some((n) => n.includes(`picked up again after the previous attempt stopped during '${phase}'`)),
      ).toBe(true);
      await expectExactlyOnce(
        world,
        name,
        pid,
        m,
        `(e) orchestrator killed in ${phase}`,
        `; copies at the kill ${frozen}; end state ${tookMs} ms after the kill`,
      );
    },
  );

  it('(e) orchestrator SIGKILLed during the dump and its BullMQ job lost: boot reconciliation queues it again', async () => {
    const name = 'f-crash-lostjob';
    const { pid, workload } = await launch(name);
    const id = await migrate(workload);
    await watcher.when(id, 'dump');
    await untilFrozen(pid);
    await orch.kill('SIGKILL');
    const killedAt = Date.now();
    // As if Redis lost the job (or BullMQ failed it after too many stalls) but kept the migration record.
    const redis = new Redis({ port: REDIS_PORT });
    const q = `${orch.prefix}-bull:migrations`;
    const job = `migrate-${id}`;
    await redis
      .multi()
      .del(`${q}:${job}`, `${q}:${job}:lock`)
      .lrem(`${q}:active`, 0, job)
      .srem(`${q}:stalled`, job)
      .exec();
    redis.disconnect();
    await orch.start();
    const m = await orch.waitForEnd<MigrationRecord>(id);
    expect(m.state).toBe('rolled_back');
    expect(m.notes?.some((n) => n.includes("stopped during 'dump'"))).toBe(true);
    await expectExactlyOnce(
      world,
      name,
      pid,
      m,
      '(e) orchestrator killed in dump, job lost',
      `; end state ${Date.now() - killedAt} ms after the kill`,
    );
  });

  it('cancel during the dump via REST: the page-server is stopped, the source resumed, state cancelled; 409 afterwards', async () => {
    const name = 'f-cancel';
    const { pid, workload } = await launch(name);
    const id = await migrate(workload);
    await watcher.when(id, 'dump');
    await sleep(100);
    const res = await orch.api<{ cancel: string }>('POST', `/migrations/${id}/cancel`);
    expect(res.status).toBe(202);
    expect(res.body.cancel).toBe('requested');
    const m = await orch.waitForEnd<MigrationRecord>(id);
    expect(m.state).toBe('cancelled');
    expect(m.error).toMatch(/^cancelled by request during 'dump'/);
    await expectExactlyOnce(world, name, pid, m, 'cancel during dump');
    const again = await orch.api<{ code: string; message: string }>('POST', `/migrations/${id}/cancel`);
    expect(again.status).toBe(409);
  });

  it('cancel after the commit point is refused with 409: the destination already is the workload', async () => {
    const name = 'f-cancel-late';
    const { pid, workload } = await launch(name, 64);
    const id = await migrate(workload);
    await watcher.when(id, 'commit');
    const res = await orch.api<{ code: string; message: string }>('POST', `/migrations/${id}/cancel`);
    expect(res.status).toBe(409);
    // Normally inside the commit phase; a slow request may arrive after the end, which is refused too.
    expect(res.body.message).toMatch(/past its commit point|already ended \(completed\)/);
    const m = await orch.waitForEnd<MigrationRecord>(id);
    expect(m.state).toBe('completed');
    await expectExactlyOnce(world, name, pid, m, 'cancel after commit (409)');
  });
});

/** One request, timed from the test's side: what a caller of the API waits while Redis is away. */
async function timed(method: string, path: string, body?: unknown): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await orch.api(method, path, body).catch(() => ({ status: 0 }));
  return { status: res.status, ms: Math.round(performance.now() - t0) };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(250)) {
    const v = await probe();
    if (v !== undefined) return v;
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

describe('Redis lost during a real migration: the worker drives it to its end, the API answers 503', () => {
  // The matrix: Redis goes away at the start of each phase of a stop-and-copy (the phase record saved, its body
  // about to run), and comes back empty (a crash of a Redis without persistence) or with its data (a restart of
  // one with persistence). Down 3 s, except at the transfer with its data: 12 s outlives the job lock (10 s), so
  // BullMQ hands the job out again once Redis is back, and that run must find the migration finished, not start
  // a second one. 'prepare' takes the workload's claim and 'commit' the commit point while Redis is away.
  const phases: PhaseName[] = ['preflight', 'prepare', 'dump', 'transfer', 'restore', 'verify', 'commit', 'cleanup'];
  const outages: [PhaseName, 'empty' | 'with-data', number][] = phases.flatMap((phase) => [
    [phase, 'empty', 3_000],
    [phase, 'with-data', phase === 'transfer' ? 12_000 : 3_000],
  ]);
  it.each(outages)(
    'Redis stopped at %s, back %s after %i ms: completed once, nothing frozen or left, records back',
    async (phase, how, downMs) => {
      const name = `f-redis-${phase}-${how}`;
      const { pid, workload } = await launch(name);
      const logBefore = readFileSync(orch.logFile, 'utf8').length;
      const id = await migrate(workload);
      await watcher.when(id, phase);
      if (phase === 'dump') await untilFrozen(pid);
      await stopRedisAs(REDIS_PORT, how);
      const stoppedAt = Date.now();
      // While Redis is away: every API call that needs it fails fast with 503; liveness stays 200.
      await sleep(300);
      const calls = {
        migration: await timed('GET', `/migrations/${id}`),
        nodes: await timed('GET', '/nodes'),
        create: await timed('POST', '/migrations', { workload: workload.id, destination: 'node-b' }),
        ready: await timed('GET', '/health/ready'),
        live: await timed('GET', '/health/live'),
      };
      expect(calls.migration.status).toBe(503);
      expect(calls.nodes.status).toBe(503);
      expect(calls.create.status).toBe(503);
      expect(calls.ready.status).toBe(503);
      expect(calls.live.status).toBe(200);
      for (const c of Object.values(calls)) expect(c.ms).toBeLessThan(2_000);
      await sleep(Math.max(0, downMs - (Date.now() - stoppedAt)));
      await startRedisAgain(REDIS_PORT);
      await watcher.rearm();
      const m = await orch.waitForEnd<MigrationRecord>(id, 120_000);
      expect(orch.alive).toBe(true);
      expect(m.state).toBe('completed');
      moved.push({ id, workloadId: workload.id, name, restoredPid: m.restoredPid });
      // Nodes of the config file are registered again when Redis came back without them.
      const nodes = await until('GET /nodes lists the config nodes again', async () => {
        const res = await orch.api<NodeRecord[]>('GET', '/nodes');
        return res.status === 200 && res.body.length >= 3 ? res.body : undefined;
      });
      expect(nodes.map((n) => n.id)).toEqual(expect.arrayContaining(['node-a', 'node-b', 'node-c']));
      await expectExactlyOnce(
        world,
        name,
        pid,
        m,
        `Redis stopped at ${phase}, back ${how} after ${downMs} ms`,
        `; API while down: ${Object.entries(calls)
          .map(([k, c]) => `${k} ${c.status} in ${c.ms} ms`)
          .join(', ')}`,
      );
      if (how === 'with-data') {
        // The job came back with Redis's data. Its lock expired (12 s down): BullMQ's stalled check hands it
        // out again, and that run must find the migration finished instead of attempting it a second time.
        // Its lock held (3 s): the first run's completion lands. Either way: one run's outcome, unchanged.
        const redis = new Redis({ port: REDIS_PORT });
        const job = `migrate-${id}`;
        await until('the re-handed job completes', async () =>
          (await redis.zscore(`${orch.prefix}-bull:migrations:completed`, job)) !== null ? true : undefined,
        ).finally(() => redis.disconnect());
        const again = await orch.api<MigrationRecord>('GET', `/migrations/${id}`);
        expect(again.body).toMatchObject({ state: 'completed', restoredPid: m.restoredPid });
        expect(again.body.phases).toHaveLength(m.phases.length);
        expect(again.body.notes ?? []).not.toContainEqual(expect.stringContaining('picked up again'));
      }
      // One line when the outage starts, one when it ends; no ioredis stack traces.
      const log = readFileSync(orch.logFile, 'utf8').slice(logBefore);
      expect(log).not.toMatch(/Unhandled error event/);
      expect(log.match(/redis unreachable/g)?.length).toBe(1);
      expect(log.match(/redis reachable again/g)?.length).toBe(1);
    },
  );

  it('Redis stopped at restore, which fails (port taken on node-b), back empty: rolled back by the usual rules', async () => {
    const name = 'f-redis-rollback';
    const { pid, workload } = await launch(name);
    const port = env.collector.last(name)!.fromPort;
    const holder = spawnInNode('node-b', [
      'python3',
      '-c',
      `import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${port})); time.sleep(600)`,
    ]);
    try {
      await sleep(500);
      const id = await migrate(workload);
      await watcher.when(id, 'restore');
      await stopRedisAs(REDIS_PORT, 'empty');
      await sleep(3_000);
      await startRedisAgain(REDIS_PORT);
      await watcher.rearm();
      const m = await orch.waitForEnd<MigrationRecord>(id, 120_000);
      expect(orch.alive).toBe(true);
      expect(m.state).toBe('rolled_back');
      expect(m.rollbackReason).toMatch(/criu restore failed on node-b \(address_in_use\)/);
      await expectExactlyOnce(world, name, pid, m, 'Redis stopped at restore (restore fails), back empty');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('orchestrator and Redis restarted together, Redis empty: the moved workloads and their migrations come back', async () => {
    expect(moved.length).toBeGreaterThan(0);
    await orch.kill('SIGKILL');
    await stopRedisAs(REDIS_PORT, 'empty');
    await startRedisAgain(REDIS_PORT);
    await watcher.rearm();
    await orch.start();
    // The journal is read back before the API listens: no waiting here.
    for (const mv of moved) {
      const m = await orch.api<MigrationRecord>('GET', `/migrations/${mv.id}`);
      expect(m.body).toMatchObject({ id: mv.id, state: 'completed', restoredPid: mv.restoredPid });
      const w = await orch.api<WorkloadRecord>('GET', `/workloads/${mv.workloadId}`);
      expect(w.body).toMatchObject({ nodeId: 'node-b', pid: mv.restoredPid, state: 'running' });
    }
    const nodes = await orch.api<NodeRecord[]>('GET', '/nodes');
    expect(nodes.body.map((n) => n.id)).toEqual(expect.arrayContaining(['node-a', 'node-b', 'node-c']));
    report.push(
      `- orchestrator + Redis restarted (empty): ${moved.length} migrations and workloads back from the journal`,
    );
  });
});
