/**
 * Fault injection with real processes: real CRIU, real sshd nodes in their network namespaces, real Redis,
 * and the orchestrator as a child process so it can be SIGKILLed mid-migration and started again. After every
 * case the suite looks at the machine itself, not only at the record: every process that is a copy of the
 * workload (original or restored, in any namespace), its state (running vs stopped), which node's network
 * namespace it is in, its heartbeats, the migration's image directory and any CRIU process of it.
 * Invariant checked: exactly one running copy, or the job says the workload was gone before the freeze.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { MigrationRecord, PhaseName, WorkloadRecord } from '@spotlift/domain';
import {
  HeartbeatCollector,
  labUp,
  nodeAddress,
  runLabScript,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
} from '@spotlift/testing';
import { sleep, spawnInNode } from './support/e2e-env.js';
import { type SuiteWorld, expectExactlyOnce, failedPhase, frozenMs, untilFrozen } from './support/exactly-once.js';
import { PhaseWatcher, killAll, sshdPidsFor, workloadCopies } from './support/faults-lab.js';
import { OrchestratorProcess, buildOrchestrator } from './support/orchestrator-process.js';

const REDIS_PORT = 16382;
const MEM_MIB = 256;
const IMAGE_ROOT = '/var/lib/spotlift/images';

let orch: OrchestratorProcess;
let watcher: PhaseWatcher;
let world: SuiteWorld;
const collector = new HeartbeatCollector();
const started: string[] = [];
const report: string[] = [];

beforeAll(async () => {
  await labUp({ nodes: 3 });
  await startRedis(REDIS_PORT);
  await collector.start();
  orch = new OrchestratorProcess(await buildOrchestrator(), REDIS_PORT, { NODE_OPTIONS: '' });
  await orch.start();
  world = { orch, collector, report, imageRoot: IMAGE_ROOT };
  watcher = new PhaseWatcher(REDIS_PORT, orch.prefix);
  await watcher.start();
}, 300_000);

afterAll(async () => {
  for (const name of started) for (const c of workloadCopies(name)) await stopWorkload(c.pid).catch(() => undefined);
  await orch?.kill('SIGTERM');
  watcher?.stop();
  await collector.stop();
  await stopRedis(REDIS_PORT);
  console.log(`fault injection, ${MEM_MIB} MiB workloads, stop-and-copy node-a -> node-b:\n${report.join('\n')}`);
}, 120_000);

async function launch(name: string, memMiB = MEM_MIB): Promise<{ pid: number; workload: WorkloadRecord }> {
  const pid = await startWorkload('node-a', { name, memMiB, udpPort: collector.port });
  started.push(name);
  await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 60_000 });
  const res = await orch.api<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
  expect(res.status).toBe(201);
  return { pid, workload: res.body };
}

async function migrate(workload: WorkloadRecord, transport?: 'tcp'): Promise<string> {
  const body = { workload: workload.id, destination: 'node-b', ...(transport ? { transport } : {}) };
  const res = await orch.api<MigrationRecord>('POST', '/migrations', body);
  expect(res.status).toBe(201);
  return res.body.id;
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
    const port = collector.last(name)!.fromPort;
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
