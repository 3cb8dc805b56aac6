/**
 * The sweeper against real leftovers (real CRIU, sshd nodes, Redis): an orchestrator (child process, sweeper off)
 * is SIGKILLed in the middle of a real migration and its Redis keys are deleted, as if the worker and its
 * records were lost together. A second orchestrator, with nothing in its records about that migration, finds the
 * frozen tree and the image directories through the ownership markers and resolves them by the commit rules:
 * - killed once the dump froze the source (transfer): the destination runs nothing, so the source is resumed;
 * - killed in verify (the restored copy runs on node-b): the copy verifies, so the frozen source is killed;
 * - images kept on purpose (`keepImages`) stay until they are older than SPOTLIFT_KEEP_IMAGES_MAX_AGE_MS.
 * Every check reads the machine (/proc, the heartbeats, the image root), not only the sweeper's report.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import type { SweepItem } from '@spotlift/engine';
import {
  HeartbeatCollector,
  labDir,
  labUp,
  nodeAddress,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  OrchestratorProcess,
  buildOrchestrator,
} from '@spotlift/testing';
import { sleep } from './support/e2e-env.js';
import { PhaseWatcher, workloadCopies } from './support/faults-lab.js';

const REDIS_PORT = 6431;
const MEM_MIB = 64;
/** A private image root: the sweeper here runs with no orphan grace and must not touch other suites' leftovers. */
const IMAGE_ROOT = '/var/lib/spotlift/images-sweeper-e2e';
const KEEP_MAX_AGE_MS = 25_000;

interface Status {
  last: { items: SweepItem[] } | null;
  attention: SweepItem[];
  totals: Record<string, number>;
}

let main: string;
let watcher: PhaseWatcher | undefined;
let sweeping: OrchestratorProcess | undefined;
const collector = new HeartbeatCollector();
const started: string[] = [];

/** An orchestrator whose sweeper is off: the one that dies. */
const victim = () =>
  new OrchestratorProcess(main, REDIS_PORT, {
    NODE_OPTIONS: '',
    SPOTLIFT_IMAGE_ROOT: IMAGE_ROOT,
    SPOTLIFT_SWEEP_INTERVAL_MS: '0',
  });

beforeAll(async () => {
  await labUp({ nodes: 3 });
  await startRedis(REDIS_PORT);
  await collector.start();
  main = await buildOrchestrator(join(labDir(), 'sweeper', 'dist'));
}, 400_000);

afterAll(async () => {
  for (const name of started) for (const c of workloadCopies(name)) await stopWorkload(c.pid).catch(() => undefined);
  await sweeping?.kill('SIGTERM');
  watcher?.stop();
  await collector.stop();
  await stopRedis(REDIS_PORT);
  // The directory kept on purpose in the last case holds a memory dump: nothing of this suite stays behind.
  rmSync(IMAGE_ROOT, { recursive: true, force: true });
}, 120_000);

async function launch(orch: OrchestratorProcess, name: string): Promise<{ pid: number; workload: WorkloadRecord }> {
  const pid = await startWorkload('node-a', { name, memMiB: MEM_MIB, udpPort: collector.port });
  started.push(name);
  await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 60_000 });
  const res = await orch.api<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
  expect(res.status).toBe(201);
  return { pid, workload: res.body };
}

/** Deletes every key of an orchestrator's prefix (records, flags, its BullMQ queues): the records are gone. */
async function forget(prefix: string): Promise<void> {
  const redis = new Redis({ port: REDIS_PORT });
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Starts a migration on an orchestrator with its sweeper off, SIGKILLs it when `phase` starts, forgets it. */
async function dieDuring(name: string, phase: 'transfer' | 'verify'): Promise<{ pid: number; id: string }> {
  // No sweeper may run meanwhile: with no orphan grace it would take this live job for a dead one (its records
  // are in another prefix), which is what the grace and the node-side freeze lock are for.
  await sweeping?.kill('SIGTERM');
  sweeping = undefined;
  const orch = victim();
  await orch.start();
  watcher?.stop();
  watcher = new PhaseWatcher(REDIS_PORT, orch.prefix);
  await watcher.start();
  const { pid, workload } = await launch(orch, name);
  const res = await orch.api<MigrationRecord>('POST', '/migrations', { workload: workload.id, destination: 'node-b' });
  expect(res.status).toBe(201);
  await watcher.when(res.body.id, phase);
  await orch.kill('SIGKILL');
  await forget(orch.prefix);
  return { pid, id: res.body.id };
}

/** The sweeping orchestrator (started on demand): sweeps every second, no orphan grace. */
async function sweeper(): Promise<OrchestratorProcess> {
  if (sweeping) return sweeping;
  sweeping = new OrchestratorProcess(main, REDIS_PORT, {
    NODE_OPTIONS: '',
    SPOTLIFT_IMAGE_ROOT: IMAGE_ROOT,
    SPOTLIFT_SWEEP_INTERVAL_MS: '1000',
    SPOTLIFT_SWEEP_ORPHAN_GRACE_MS: '0',
    SPOTLIFT_KEEP_IMAGES_MAX_AGE_MS: String(KEEP_MAX_AGE_MS),
  });
  await sweeping.start();
  return sweeping;
}

/** Polls GET /sweeper until the last report's item for `id` satisfies `done`. */
async function sweptUntil(id: string, done: (i: SweepItem) => boolean, timeoutMs = 60_000): Promise<SweepItem> {
  const orch = await sweeper();
  const until = Date.now() + timeoutMs;
  let seen: SweepItem | undefined;
  for (;;) {
    const { body } = await orch.api<Status>('GET', '/sweeper');
    seen = body.last?.items.find((i) => i.migrationId === id);
    if (seen && done(seen)) return seen;
    if (Date.now() > until) throw new Error(`sweeper never got there for ${id}; last seen ${JSON.stringify(seen)}`);
    await sleep(250);
  }
}

describe('the sweeper resolves what a killed worker left, with its records gone', () => {
  it('a source frozen by the dump, destination running nothing: resumed in place, images removed on both nodes', async () => {
    const name = 'sw-resume';
    const { pid, id } = await dieDuring(name, 'transfer');
    // The dump ended with --leave-stopped: the workload is frozen and nothing else runs.
    expect(workloadCopies(name)).toEqual([{ pid, state: 'T', node: 'node-a' }]);
    expect(existsSync(join(IMAGE_ROOT, id, 'src', 'spotlift-owner.json'))).toBe(true);

    const item = await sweptUntil(id, (i) => i.action === 'resume-source');
    expect(item).toMatchObject({ sourceNodeId: 'node-a', destinationNodeId: 'node-b', pid });
    expect(item.error).toBeUndefined();
    expect(item.removedFrom).toEqual(expect.arrayContaining(['node-a', 'node-b']));
    expect(workloadCopies(name)).toEqual([{ pid, state: expect.stringMatching(/^[RS]$/), node: 'node-a' }]);
    // It continues from where it was frozen, from node-a.
    const t = Date.now();
    await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), since: t, timeoutMs: 20_000 });
    expect(collector.counterContinuedAcross(name, t)).toBe(true);
    expect(existsSync(join(IMAGE_ROOT, id))).toBe(false);
  });

  it('a frozen source whose restored copy runs verified on node-b: the source is killed, the copy is the workload', async () => {
    const name = 'sw-kill';
    const { pid, id } = await dieDuring(name, 'verify');
    const copies = workloadCopies(name);
    // The kill landed in verify: the source is frozen and the restored copy runs (else the harness raced).
    expect(copies).toEqual(
      expect.arrayContaining([
        { pid, state: 'T', node: 'node-a' },
        { pid: expect.any(Number), state: expect.stringMatching(/^[RS]$/), node: 'node-b' },
      ]),
    );
    expect(copies).toHaveLength(2);
    const restored = copies.find((c) => c.node === 'node-b')!.pid;

    const item = await sweptUntil(id, (i) => i.action === 'kill-source');
    expect(item).toMatchObject({ pid, restoredPid: restored });
    expect(item.error).toBeUndefined();
    await sleep(200);
    expect(workloadCopies(name)).toEqual([{ pid: restored, state: expect.stringMatching(/^[RS]$/), node: 'node-b' }]);
    const t = Date.now();
    await collector.waitForCount(name, 3, { from: nodeAddress('node-b'), since: t, timeoutMs: 20_000 });
    expect(existsSync(join(IMAGE_ROOT, id))).toBe(false);
  });

  it('keepImages directories stay until they are older than the configured age, then go; a live job is left alone', async () => {
    const orch = await sweeper();
    const move = async (name: string) => {
      const { workload } = await launch(orch, name);
      const res = await orch.api<MigrationRecord>('POST', '/migrations', {
        workload: workload.id,
        destination: 'node-b',
        keepImages: true,
      });
      expect(res.status).toBe(201);
      const m = await orch.waitForEnd<MigrationRecord>(res.body.id);
      expect(m.state).toBe('completed');
      return m;
    };
    const older = await move('sw-keep-1');
    await sleep(12_000);
    const newer = await move('sw-keep-2');
    expect(existsSync(join(IMAGE_ROOT, older.id))).toBe(true);
    expect(existsSync(join(IMAGE_ROOT, newer.id))).toBe(true);
    const kept = await sweptUntil(newer.id, (i) => i.action === 'remove-images');
    expect(kept.removedFrom).toEqual([]);

    const gone = await sweptUntil(older.id, (i) => i.removedFrom.length > 0, KEEP_MAX_AGE_MS + 30_000);
    expect(gone.action).toBe('remove-images');
    expect(existsSync(join(IMAGE_ROOT, older.id))).toBe(false);
    // The newer one is younger than the age: still there, and both workloads run where they moved.
    expect(existsSync(join(IMAGE_ROOT, newer.id, 'dst'))).toBe(true);
    for (const name of ['sw-keep-1', 'sw-keep-2'])
      expect(workloadCopies(name)).toEqual([
        { pid: expect.any(Number), state: expect.stringMatching(/^[RS]$/), node: 'node-b' },
      ]);
  });
});
