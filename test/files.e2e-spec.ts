/**
 * Files the workload uses, with real CRIU, real sshd nodes and real Redis. Each lab node has its own mount
 * namespace in which /srv/data is that node's private directory (<labdir>/nodes/NODE/data, see
 * scripts/lab/nodes.sh), so a file the workload holds open on node-a does not exist on node-b until spotlift
 * copies it. The workload (scripts/lab/workload.py) appends a line per tick to its data file and checks the
 * whole file through its open fd, and reads back an unlinked ("ghost") file: `ok` in its heartbeats stays true
 * only if both came along intact.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CheckpointRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  labDir,
  nodeAddress,
  nodeDataDir,
  nodeOfPid,
  pidAlive,
  startWorkload,
  type HeartbeatCollector,
  type LabConfig,
} from '@spotlift/testing';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 16409;
/** Truly shared in the lab (outside /srv/data): node-a and node-c declare it as shared storage. */
const SHARED = join(labDir(), 'shared-storage');

let env: E2eEnv;
let orch: Orchestrator;
let collector: HeartbeatCollector;

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    config: (lab): LabConfig => ({
      ...lab,
      nodes: lab.nodes.map((n) =>
        n.id === 'node-a' || n.id === 'node-c' ? { ...n, sharedStorage: { group: 'lab-nfs', paths: [SHARED] } } : n,
      ),
    }),
  });
  ({ orch, collector } = env);
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 120_000);

/** A fresh directory NAME under each node's /srv/data (absent on every node but `on`). */
function freshDataDir(name: string, on: string): string {
  for (const node of ['node-a', 'node-b', 'node-c'])
    rmSync(join(nodeDataDir(node), name), { recursive: true, force: true });
  mkdirSync(join(nodeDataDir(on), name), { recursive: true });
  return join(nodeDataDir(on), name);
}

async function register(name: string, node: string, pid: number, paths?: string[]): Promise<WorkloadRecord> {
  env.track(pid);
  await collector.waitForCount(name, 5, { from: nodeAddress(node), timeoutMs: 30_000 });
  const res = await orch.api<WorkloadRecord>('POST', '/workloads', { name, node, pid, ...(paths ? { paths } : {}) });
  expect(res.status).toBe(201);
  return res.body;
}

async function migrate(body: object): Promise<MigrationRecord> {
  return env.migrate(body);
}

/** Completed, or a failure that shows its reason. */
function expectCompleted(m: MigrationRecord): void {
  expect({ state: m.state, why: m.error ?? m.rollbackReason }).toEqual({ state: 'completed', why: undefined });
}

/** Heartbeats from `node` after `since`, and none of them (nor any earlier) reporting a failed check. */
async function continuesOn(name: string, node: string, since: number): Promise<void> {
  await collector.waitForCount(name, 12, { from: nodeAddress(node), since, timeoutMs: 20_000 });
  expect(collector.isSeqGapFree(name)).toBe(true);
  expect(collector.anyNotOk(name)).toBe(false);
}

describe('declared files move with the workload (real CRIU, private /srv/data per node)', () => {
  it('copies the declared directory while the workload runs and its changes inside the freeze; open, ghost and cwd files all work on node-b', async () => {
    const name = 'files-move';
    const dir = freshDataDir('app', 'node-a');
    writeFileSync(join(dir, 'config.txt'), 'answer=42\n');
    const blob = randomBytes(4 << 20);
    writeFileSync(join(dir, 'blob.bin'), blob);
    const pid = await startWorkload('node-a', {
      name,
      memMiB: 32,
      udpPort: collector.port,
      cwd: '/srv/data/app',
      dataFiles: ['/srv/data/app/journal.log'],
      // 2 MiB: bigger than CRIU's default --ghost-limit (1 MiB), so the engine's limit is what lets it through
      ghostFile: '/srv/data/app/scratch.tmp',
      ghostKiB: 2048,
    });
    const workload = await register(name, 'node-a', pid, ['/srv/data/app']);
    expect(workload.paths).toEqual(['/srv/data/app']);

    const m = await migrate({ workload: workload.id, destination: 'node-b' });
    expectCompleted(m);
    expect(m.phases.map((p) => p.name)).toContain('files');
    expect(m.files?.synced).toEqual(['/srv/data/app']);
    expect(m.files?.shared).toEqual([]);
    const rounds = m.files!.rounds;
    expect(rounds.length).toBeGreaterThanOrEqual(1);
    expect(rounds[0]!.sent).toBeGreaterThanOrEqual(4); // app/, config.txt, blob.bin, journal.log
    expect(rounds[0]!.bytes).toBeGreaterThan(blob.length);
    // Inside the freeze only the changes travel: the journal (a line per tick) and its directory, not the blob.
    expect(m.files!.final).toBeDefined();
    expect(m.files!.final!.bytes).toBeLessThan(blob.length / 2);
    expect(m.phases.find((p) => p.name === 'transfer')!.detail).toMatch(/files: \d+ entries/);

    expect(pidAlive(pid)).toBe(false);
    expect(nodeOfPid(m.restoredPid!)).toBe('node-b');
    const onB = join(nodeDataDir('node-b'), 'app');
    expect(readFileSync(join(onB, 'blob.bin')).equals(blob)).toBe(true);
    expect(readFileSync(join(onB, 'config.txt'), 'utf8')).toBe('answer=42\n');
    // The ghost file was never a file on node-b: CRIU recreated it for the restore and unlinked it again.
    expect(existsSync(join(onB, 'scratch.tmp'))).toBe(false);

    // The restored process checks its journal and ghost file through its fds (ok stays true) and goes on
    // writing node-b's journal, while node-a's copy stays as it was at the freeze.
    const after = Date.now();
    const aSize = statSync(join(dir, 'journal.log')).size;
    await continuesOn(name, 'node-b', after);
    expect(statSync(join(onB, 'journal.log')).size).toBeGreaterThan(aSize);
    expect(statSync(join(dir, 'journal.log')).size).toBe(aSize);
  });

  it('post-copy brings the declared files too (copied before the freeze and inside it, next to the image files)', async () => {
    const name = 'files-postcopy';
    const dir = freshDataDir('pc', 'node-a');
    writeFileSync(join(dir, 'state.db'), randomBytes(1 << 20));
    const pid = await startWorkload('node-a', {
      name,
      memMiB: 32,
      udpPort: collector.port,
      dataFiles: ['/srv/data/pc/journal.log'],
    });
    const workload = await register(name, 'node-a', pid, ['/srv/data/pc']);
    const m = await migrate({ workload: workload.id, destination: 'node-b', strategy: 'post-copy' });
    expectCompleted(m);
    expect(m.strategy).toBe('post-copy');
    expect(m.files?.rounds.length).toBeGreaterThanOrEqual(1);
    expect(m.files?.final).toBeDefined();
    expect(
      readFileSync(join(nodeDataDir('node-b'), 'pc', 'state.db')).equals(readFileSync(join(dir, 'state.db'))),
    ).toBe(true);
    expect(nodeOfPid(m.restoredPid!)).toBe('node-b');
    await continuesOn(name, 'node-b', Date.now());
  });

  it('a checkpoint keeps the declared files with its images, and its restore puts them back first', async () => {
    const name = 'files-checkpoint';
    const dir = freshDataDir('cp', 'node-a');
    const blob = randomBytes(1 << 20);
    writeFileSync(join(dir, 'model.bin'), blob);
    const pid = await startWorkload('node-a', {
      name,
      memMiB: 16,
      udpPort: collector.port,
      dataFiles: ['/srv/data/cp/journal.log'],
    });
    const workload = await register(name, 'node-a', pid, ['/srv/data/cp']);
    const taken = await orch.api<CheckpointRecord>('POST', '/checkpoints', {
      workload: workload.id,
      storage: 'node-c',
    });
    expect(taken.status).toBe(201);
    const stored = await until(
      'the checkpoint to be stored',
      async () => {
        const cp = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${taken.body.id}`)).body;
        return ['stored', 'failed'].includes(cp.state) ? cp : undefined;
      },
      120_000,
    );
    expect({ state: stored.state, error: stored.error }).toEqual({ state: 'stored', error: undefined });
    expect(stored.paths).toEqual(['/srv/data/cp']);
    expect(stored.bytes.files).toBeGreaterThan(blob.length);
    expect(pidAlive(pid)).toBe(false);
    const frozenJournal = readFileSync(join(dir, 'journal.log'));
    // The source node goes away with its files (as a reclaimed spot node would).
    rmSync(dir, { recursive: true });

    const asked = await orch.api<CheckpointRecord>('POST', `/checkpoints/${stored.id}/restore`, {
      destination: 'node-b',
    });
    expect(asked.status).toBe(202);
    const restored = await until(
      'the restore to end',
      async () => {
        const cp = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${stored.id}`)).body;
        return ['restored', 'stored'].includes(cp.state) ? cp : undefined;
      },
      120_000,
    );
    expect({ state: restored.state, error: restored.restore?.error }).toEqual({ state: 'restored', error: undefined });
    const onB = join(nodeDataDir('node-b'), 'cp');
    expect(readFileSync(join(onB, 'model.bin')).equals(blob)).toBe(true);
    expect(readFileSync(join(onB, 'journal.log')).subarray(0, frozenJournal.length).equals(frozenJournal)).toBe(true);
    env.track(restored.restore!.restoredPid!);
    expect(nodeOfPid(restored.restore!.restoredPid!)).toBe('node-b');
    await continuesOn(name, 'node-b', Date.now());
  });

  it('without the declaration the restore fails on the missing file: rolled back, the source keeps running, the reason says what to do', async () => {
    const name = 'files-undeclared';
    freshDataDir('undeclared', 'node-a');
    const pid = await startWorkload('node-a', {
      name,
      memMiB: 16,
      udpPort: collector.port,
      dataFiles: ['/srv/data/undeclared/journal.log'],
    });
    const workload = await register(name, 'node-a', pid);
    const m = await migrate({ workload: workload.id, destination: 'node-b' });
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/criu restore failed on node-b \(missing_file\)/);
    expect(m.rollbackReason).toMatch(/\/srv\/data\/undeclared\/journal\.log/);
    expect(m.rollbackReason).toMatch(/declare/);
    expect(pidAlive(pid)).toBe(true);
    expect(nodeOfPid(pid)).toBe('node-a');
    await continuesOn(name, 'node-a', Date.now());
  });

  it('does not copy paths on storage the two nodes share (node-a and node-c, group lab-nfs)', async () => {
    const name = 'files-shared';
    const dir = join(SHARED, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const pid = await startWorkload('node-a', {
      name,
      memMiB: 16,
      udpPort: collector.port,
      dataFiles: [join(dir, 'journal.log')],
    });
    const workload = await register(name, 'node-a', pid, [dir]);
    const m = await migrate({ workload: workload.id, destination: 'node-c' });
    expectCompleted(m);
    expect(m.files).toMatchObject({ synced: [], shared: [dir], rounds: [] });
    expect(m.phases.map((p) => p.name)).not.toContain('files');
    expect(m.phases.find((p) => p.name === 'preflight')!.detail).toMatch(/shared storage/);
    expect(nodeOfPid(m.restoredPid!)).toBe('node-c');
    await continuesOn(name, 'node-c', Date.now());
  });

  it('refuses bad declarations up front, and fails before any freeze when a declared path does not exist', async () => {
    const name = 'files-bad';
    freshDataDir('bad', 'node-a');
    const pid = await startWorkload('node-a', { name, memMiB: 8, udpPort: collector.port });
    env.track(pid);
    await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 30_000 });
    // Tried: a relative path, .. components, a kernel file system, a non-array.
    for (const paths of [['srv/data'], ['/srv/data/../etc'], ['/proc/self'], '/srv/data']) {
      const res = await orch.api<{ message: string }>('POST', '/workloads', { name, node: 'node-a', pid, paths });
      expect(res.status).toBe(400);
    }
    const res = await orch.api<WorkloadRecord>('POST', '/workloads', {
      name,
      node: 'node-a',
      pid,
      paths: ['/srv/data/bad', '/srv/data/not-there'],
    });
    expect(res.status).toBe(201);
    const m = await migrate({ workload: res.body.id, destination: 'node-b' });
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/declared path\(s\) \/srv\/data\/not-there do not exist on node-a/);
    expect(m.phases.map((p) => p.name)).not.toContain('dump');
    expect(pidAlive(pid)).toBe(true);
    await continuesOn(name, 'node-a', Date.now());
  });
});
