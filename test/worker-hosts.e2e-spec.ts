/**
 * Several worker hosts on one Redis, with real CRIU, sshd nodes and Redis: an API process and two worker
 * processes (SPOTLIFT_ROLE=worker, each with its own SPOTLIFT_STATE_DIR, as two hosts would have), all on one
 * Redis and prefix. Redis is lost during a 256 MiB migration held by one worker and comes back empty; in the
 * second case that worker is also SIGKILLed while Redis is down, and its process manager starts it again later.
 * Each case reads the machine: one running copy (no heartbeat sequence number from two nodes, none missing),
 * nothing stopped, no image directory; one end state, and records that agree with it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { labDir, type OrchestratorProcess } from '@spotlift/testing';
import { setupE2e, sleep, type E2eEnv } from './support/e2e-env.js';
import { type SuiteWorld, expectExactlyOnce, untilFrozen } from './support/exactly-once.js';
import { PhaseWatcher, runningCopies, startRedisAgain, stopRedisAs, workloadCopies } from './support/faults-lab.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6456;
const MEM_MIB = 256;
const RUN = Date.now().toString(36);

let env: E2eEnv<OrchestratorProcess>;
let watcher: PhaseWatcher;
let world: SuiteWorld;
const report: string[] = [];

beforeAll(async () => {
  const state = (host: string) => join(labDir(), 'faults', `state-${RUN}-${host}`);
  env = await setupE2e({
    mode: 'process',
    redisPort: REDIS_PORT,
    // The first process serves the API only; JSON logs: the suite reads which worker started which migration.
    env: { SPOTLIFT_ROLE: 'api', SPOTLIFT_LOG_FORMAT: 'json', SPOTLIFT_STATE_DIR: state('api') },
    replicas: [
      { SPOTLIFT_ROLE: 'worker', SPOTLIFT_STATE_DIR: state('w1') },
      { SPOTLIFT_ROLE: 'worker', SPOTLIFT_STATE_DIR: state('w2') },
    ],
  });
  world = { orch: env.orch, collector: env.collector, report, imageRoot: '/var/lib/spotlift/images' };
  watcher = new PhaseWatcher(REDIS_PORT, env.prefix);
  await watcher.start();
}, 300_000);

afterAll(async () => {
  watcher?.stop();
  await env?.teardown();
  console.log(`several worker hosts, ${MEM_MIB} MiB workloads, node-a -> node-b:\n${report.join('\n')}`);
}, 120_000);

/** The migrations a worker process started (from its JSON log), with how often. */
function startedBy(worker: OrchestratorProcess, id: string): number {
  return readFileSync(worker.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"migration started"') && l.includes(`"${id}"`)).length;
}

/** The worker that started migration ID, once one did, and the other one. */
async function holderOf(id: string): Promise<[OrchestratorProcess, OrchestratorProcess]> {
  const [w1, w2] = env.replicas as [OrchestratorProcess, OrchestratorProcess];
  return until(
    `a worker starting ${id}`,
    () => Promise.resolve(startedBy(w1, id) ? [w1, w2] : startedBy(w2, id) ? [w2, w1] : undefined),
    30_000,
    50,
  );
}

/** The API's view of a migration, tolerant of the API answering 503 while Redis is away. */
async function endState(id: string): Promise<MigrationRecord> {
  return until(
    `migration ${id} in an end state`,
    async () => {
      const res = await env.orch.api<MigrationRecord>('GET', `/migrations/${id}`).catch(() => undefined);
      const done = ['completed', 'rolled_back', 'failed', 'cancelled'];
      return res?.status === 200 && done.includes(res.body.state) ? res.body : undefined;
    },
    180_000,
    250,
  );
}

async function expectRecordsAgree(m: MigrationRecord, pid: number): Promise<void> {
  const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${m.workloadId}`);
  expect(w.status).toBe(200);
  if (m.state === 'completed') expect(w.body).toMatchObject({ nodeId: 'node-b', pid: m.restoredPid, state: 'running' });
  else expect(w.body).toMatchObject({ nodeId: 'node-a', pid, state: 'running' });
  const all = await env.orch.api<MigrationRecord[]>('GET', '/migrations');
  // One migration of the workload, not a second one made by a re-run.
  expect(all.body.filter((x) => x.workloadId === m.workloadId).map((x) => x.id)).toEqual([m.id]);
}

describe('several worker hosts: Redis lost during a migration held by one of two workers', () => {
  it('Redis killed in the transfer and back empty after 3 s: the holder finishes it, the other worker never runs it', async () => {
    const name = `hosts-redis-${RUN}`;
    const { pid, workload } = await env.launch(name, 'node-a', { memMiB: MEM_MIB, heartbeatTimeoutMs: 60_000 });
    const { id } = await env.create({ workload: workload.id, destination: 'node-b' });
    await watcher.when(id, 'transfer');
    const [holder, other] = await holderOf(id);
    await stopRedisAs(REDIS_PORT, 'empty');
    await sleep(3_000);
    await startRedisAgain(REDIS_PORT);
    await watcher.rearm();
    const m = await endState(id);
    expect(m.state).toBe('completed');
    expect(holder.alive && other.alive && env.orch.alive).toBe(true);
    expect(startedBy(holder, id)).toBe(1);
    expect(startedBy(other, id)).toBe(0);
    await expectRecordsAgree(m, pid);
    await expectExactlyOnce(world, name, pid, m, 'Redis killed in transfer, back empty; holder finishes', '');
  });

  it('Redis shut down with its data in the transfer for 12 s (the job lock expires): one run drives it, completed once', async () => {
    const name = `hosts-data-${RUN}`;
    const { pid, workload } = await env.launch(name, 'node-a', { memMiB: MEM_MIB, heartbeatTimeoutMs: 60_000 });
    const { id } = await env.create({ workload: workload.id, destination: 'node-b' });
    await watcher.when(id, 'transfer');
    const [holder, other] = await holderOf(id);
    await stopRedisAs(REDIS_PORT, 'with-data');
    await sleep(12_000);
    await startRedisAgain(REDIS_PORT);
    await watcher.rearm();
    // BullMQ's stalled check may now hand the job to either worker: the other one must find the migration
    // driven (or finished) by the holder, not run it a second time.
    const m = await endState(id);
    expect(m.state).toBe('completed');
    expect(holder.alive && other.alive).toBe(true);
    await expectRecordsAgree(m, pid);
    await expectExactlyOnce(
      world,
      name,
      pid,
      m,
      'Redis shut down with its data in transfer for 12 s',
      `; runs started: holder ${startedBy(holder, id)}, other ${startedBy(other, id)}; notes ${JSON.stringify(m.notes ?? [])}`,
    );
  });

  it('the holder SIGKILLed in the transfer with Redis up: the other worker takes the job over and ends it once', async () => {
    for (const w of env.replicas) if (!w.alive) await w.start();
    const name = `hosts-takeover-${RUN}`;
    const { pid, workload } = await env.launch(name, 'node-a', { memMiB: MEM_MIB, heartbeatTimeoutMs: 60_000 });
    const { id } = await env.create({ workload: workload.id, destination: 'node-b' });
    await watcher.when(id, 'transfer');
    const [holder, other] = await holderOf(id);
    await holder.kill('SIGKILL');
    // The holder's job lock lapses; BullMQ's stalled check hands the job to the other worker, whose run finds
    // the migration under way (frozen source, images half sent) and ends it by the recovery rules.
    const m = await endState(id);
    expect(['completed', 'rolled_back']).toContain(m.state);
    expect(startedBy(other, id)).toBeGreaterThanOrEqual(1);
    expect(other.alive && env.orch.alive).toBe(true);
    await expectRecordsAgree(m, pid);
    await expectExactlyOnce(
      world,
      name,
      pid,
      m,
      'holder SIGKILLed in the transfer, Redis up, the other worker took over',
      `; runs started: other ${startedBy(other, id)}`,
    );
    await holder.start();
  });

  // Killed in the restore, CRIU's restore on node-b goes on without the holder, so a copy may run there beside the
  // frozen source. Killed in the dump, the same can happen: on a quiet machine 256 MiB dump in about a second, and
  // the holder (which goes on from its journal while Redis is away) may be in the restore by the time the kill
  // lands (seen in a clean-clone run). Either way at most one copy runs, and only on node-a or node-b.
  it.each([['dump'], ['restore']] as const)(
    'Redis killed in the %s, the holder SIGKILLed while it is down, Redis back empty, the holder restarted: one end state',
    async (phase) => {
      // a case that failed half-way must not leave the next one a dead worker
      for (const w of env.replicas) if (!w.alive) await w.start();
      const name = `hosts-kill-${phase}-${RUN}`;
      const { pid, workload } = await env.launch(name, 'node-a', { memMiB: MEM_MIB, heartbeatTimeoutMs: 60_000 });
      const { id } = await env.create({ workload: workload.id, destination: 'node-b' });
      await watcher.when(id, phase);
      await untilFrozen(pid);
      const [holder, other] = await holderOf(id);
      await stopRedisAs(REDIS_PORT, 'empty');
      await holder.kill('SIGKILL');
      await sleep(3_000);
      await startRedisAgain(REDIS_PORT);
      await watcher.rearm();
      // Redis knows nothing of the migration now, and the holder's journal is on its own host: the other worker
      // must neither start it nor touch the workload. An orphaned `criu dump` finishes on its own and leaves the
      // source stopped (--leave-stopped): frozen, never running twice.
      await sleep(5_000);
      const meanwhile = workloadCopies(name);
      expect(runningCopies(name).length).toBeLessThanOrEqual(1);
      expect(meanwhile.filter((c) => c.node !== 'node-a' && c.node !== 'node-b')).toEqual([]);
      expect(startedBy(other, id)).toBe(0);
      // Its process manager starts the holder again (same host, same journal): the journal brings the migration
      // back and it gets a job; whichever worker takes that job drives it to an end by the recovery rules.
      await holder.start();
      const m = await endState(id);
      expect(['completed', 'rolled_back']).toContain(m.state);
      // A holder killed late in the restore may have ended the migration already (its journal says so): then no
      // second run is needed, and none happens.
      const runs = `runs started: holder ${startedBy(holder, id)}, other ${startedBy(other, id)}`;
      expect(other.alive && env.orch.alive).toBe(true);
      await expectRecordsAgree(m, pid);
      await expectExactlyOnce(
        world,
        name,
        pid,
        m,
        `holder SIGKILLed in the ${phase} while Redis is down, back empty, holder restarted`,
        `; copies 5 s after Redis came back (node:pid:state): ${meanwhile.map((c) => `${c.node}:${c.pid}:${c.state}`).join(',')}; ${runs}`,
      );
    },
  );
});
