// Guard mode as the orchestrator runs it (guard pass -> POST /checkpoints' path -> queue -> worker -> the engine's
// checkpoint flow over SSH -> CRIU), on a real Debian 12 cloud kernel with soft-dirty, in two qemu VMs: the path
// test/guard.e2e-spec.ts runs on the lab nodes, where every guard checkpoint is full (no soft-dirty there).
// guard-incremental.qemu-spec.ts shows the same chain with bare CRIU; this one runs the engine's code for it.
//
// vm-a runs the workload (64 MiB, 4 MiB hot set by default); vm-b is the storage node (images on its /lab tmpfs)
// and, once vm-a is gone, the only node left to restore on. The workload is registered guarded every 5 s: the
// first guard checkpoint is full (`dump --leave-running --track-mem`), the next ones incremental (the storage
// node's page-server and the dump name the last one as parent; only the dirtied pages cross). Then vm-a is
// powered off (qemu killed: the node vanishes), the guard pass finds it silent but restores nothing until the
// loss is confirmed (POST /nodes/:id/lost); then vm-a is fenced and the workload restored once on vm-b from the
// newest guard checkpoint's chain: its counter goes on and it verifies the sum of all its memory.
// Results (freeze, pages, bytes, take and restore times) go to .lab/qemu/results/guard-*.json for
// `bash bench/run.sh guard --qemu`.
// Environment: SPOTLIFT_QEMU_GUARD_MIB (64), SPOTLIFT_QEMU_GUARD_HOT_MIB (4), SPOTLIFT_QEMU_GUARD_COUNT (2: guard
// checkpoints before the loss), SPOTLIFT_QEMU_GUARD_BASELINE (0: full forensic checkpoints on demand first, the
// last restored as a clone on vm-b, for the bench's comparison), SPOTLIFT_QEMU_GUARD_INTERVAL (5),
// SPOTLIFT_QEMU_GUARD_MAX_FREEZE_MS (5000: the guard's freeze budget, between a full and an incremental dump's),
// SPOTLIFT_QEMU_VM_MIB (1024), SPOTLIFT_QEMU_REDIS_PORT (6490).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckpointRecord, GuardReport, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { startOrchestrator, type Orchestrator } from '../support/orchestrator-harness.js';
import {
  LAB_DIR,
  PAGE,
  bootPair,
  envInt,
  parseStatus,
  shutdownPair,
  sleep,
  startWorkload,
  verifyWorkload,
  type Ssh,
  type VmPair,
} from './support.js';

const SIZE_MIB = envInt('SPOTLIFT_QEMU_GUARD_MIB', 64);
const HOT_MIB = envInt('SPOTLIFT_QEMU_GUARD_HOT_MIB', 4);
const GUARDS = envInt('SPOTLIFT_QEMU_GUARD_COUNT', 2);
const BASELINE = process.env.SPOTLIFT_QEMU_GUARD_BASELINE ? envInt('SPOTLIFT_QEMU_GUARD_BASELINE', 1) : 0;
const INTERVAL_S = envInt('SPOTLIFT_QEMU_GUARD_INTERVAL', 5);
const FREEZE_BUDGET_MS = envInt('SPOTLIFT_QEMU_GUARD_MAX_FREEZE_MS', 5000);
const VM_MIB = envInt('SPOTLIFT_QEMU_VM_MIB', 1024);
const REDIS_PORT = envInt('SPOTLIFT_QEMU_REDIS_PORT', 6490);
const IMAGE_ROOT = '/lab/images';
const CHECKPOINT_ROOT = '/lab/checkpoints';
const STATUS = '/lab/w/status';
const TOTAL_PAGES = (SIZE_MIB << 20) / PAGE;

/** One checkpoint's figures, as the bench prints them. */
interface TakeFigures {
  id: string;
  kind: 'forensic' | 'guard full' | 'guard incremental';
  depth?: number;
  freezeMs: number;
  pagesWritten: number;
  pagesSkippedParent: number;
  storedBytes: number;
  takeMs: number;
}
interface RestoreFigures {
  checkpointId: string;
  chain: number;
  /** Request to `restore -d` done on the destination (node clock). */
  restoreMs: number;
  /** The restore job's phases, ms. */
  phases: Record<string, number>;
  imageBytes: number;
}
export interface GuardQemuResults {
  sizeMiB: number;
  hotMiB: number;
  intervalSeconds: number;
  baseline: TakeFigures[];
  baselineRestore?: RestoreFigures;
  guard: TakeFigures[];
  lossRestore?: RestoreFigures & { confirmedToRunningMs: number };
  loadavg: string;
}

const until = async <T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
};

const takeFigures = (c: CheckpointRecord): TakeFigures => ({
  id: c.id,
  kind: c.mode === 'guard' ? (c.guardChain?.parentId ? 'guard incremental' : 'guard full') : 'forensic',
  ...(c.guardChain ? { depth: c.guardChain.depth } : {}),
  freezeMs: (c.criu.dump?.frozenTimeUs ?? NaN) / 1000,
  pagesWritten: c.criu.dump?.pagesWritten ?? NaN,
  pagesSkippedParent: c.criu.dump?.pagesSkippedParent ?? NaN,
  storedBytes: c.bytes.stored ?? NaN,
  takeMs: Date.parse(c.storedAt!) - Date.parse(c.createdAt),
});

const restoreFigures = (c: CheckpointRecord, chain: number): RestoreFigures => ({
  checkpointId: c.id,
  chain,
  restoreMs: Date.parse(c.restore!.resumedAt!) - Date.parse(c.restore!.requestedAt),
  phases: Object.fromEntries(c.restore!.phases.map((p) => [p.name, Math.round(p.durationMs ?? NaN)])),
  imageBytes: c.restore!.imageBytes ?? NaN,
});

describe('qemu lab: guard mode through the orchestrator, incremental on a soft-dirty kernel', () => {
  let work: string;
  let vms: VmPair | undefined;
  let orch: Orchestrator | undefined;
  let a: Ssh;
  let b: Ssh;
  let workload: WorkloadRecord;
  let workloadPid: number;
  let guardStored: CheckpointRecord[] = [];
  /** The workload's counter on vm-a once the first (full) guard checkpoint was stored, and before the loss. */
  let counterAfterFull = 0;
  let counterBeforeLoss = 0;
  const results: GuardQemuResults = {
    sizeMiB: SIZE_MIB,
    hotMiB: HOT_MIB,
    intervalSeconds: INTERVAL_S,
    baseline: [],
    guard: [],
    loadavg: '',
  };

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const r = await orch!.api<T>(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const checkpointsOf = async (mode: CheckpointRecord['mode']) =>
    (await api<CheckpointRecord[]>('GET', `/checkpoints?workload=${workload.id}&limit=1000`))
      .filter((c) => c.mode === mode)
      .sort((x, y) => x.createdAt.localeCompare(y.createdAt));
  const settled = (id: string, ends: CheckpointRecord['state'][]) =>
    until(
      `checkpoint ${id} in ${ends.join('/')}`,
      async () => {
        const c = await api<CheckpointRecord>('GET', `/checkpoints/${id}`);
        if (c.state === 'failed') throw new Error(`checkpoint ${id} failed: ${c.error}`);
        return ends.includes(c.state) ? c : undefined;
      },
      900_000,
    );

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'spotlift-qemu-guard-engine-'));
    vms = await bootPair({ tag: 'gde', vmMiB: VM_MIB, workDir: work });
    ({ a, b } = vms);
    await startRedis(REDIS_PORT);
    const node = (s: Ssh, extra: object = {}) => ({
      id: s.node.id,
      host: s.node.host,
      port: s.node.port,
      user: s.node.user,
      hostKey: s.node.hostKey,
      dataAddress: s.node.dataAddress,
      ...extra,
    });
    orch = await startOrchestrator({
      nodesConfig: {
        ssh: { privateKeyPath: a.node.privateKeyPath },
        nodes: [node(a), node(b, { checkpointRoot: CHECKPOINT_ROOT })],
        evacuation: { storageNodeId: b.node.id },
      },
      redisPort: REDIS_PORT,
      imageRoot: IMAGE_ROOT,
      // A 1 s pass and a 3 s silence threshold, as test/guard.e2e-spec.ts.
      env: { SPOTLIFT_GUARD_TICK_MS: '1000', SPOTLIFT_NODE_LOSS_AFTER_MS: '3000' },
    });
    const probed = await until(
      'vm-a probed with mem_dirty_track',
      async () => {
        const n = await api<NodeRecord>('GET', `/nodes/${a.node.id}`);
        return n.probe?.criuOk ? n : undefined;
      },
      120_000,
    );
    expect(probed.probe!.features?.mem_dirty_track).toBe(true);
  }, 600_000);

  afterAll(async () => {
    await orch?.close().catch((e: unknown) => console.error(String(e)));
    await stopRedis(REDIS_PORT).catch(() => undefined);
    if (vms) await shutdownPair(vms.names, [vms.a, vms.b]);
    if (results.guard.length) {
      results.loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
      const dir = join(LAB_DIR, 'qemu', 'results');
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, `guard-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
        JSON.stringify(results, null, 2),
      );
    }
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('guard checkpoints of a running workload: the first full, the next ones only the dirtied pages', async () => {
    await a.sh('rm -rf /lab/w');
    await b.sh(`rm -rf /lab/w; mkdir -p /lab/w ${CHECKPOINT_ROOT}`); // the restored workload writes its status there
    const started = await startWorkload(a, { sizeMiB: SIZE_MIB, hotMiB: HOT_MIB, status: STATUS });
    workloadPid = started.pid;
    workload = await api<WorkloadRecord>('POST', '/workloads', {
      name: 'qemu-guard',
      node: a.node.id,
      pid: workloadPid,
    });

    // The bench's baseline: full `--leave-running` checkpoints on demand, one interval apart; the last one restored
    // as a clone on vm-b (the restore time of a full checkpoint); each removed once measured, to free vm-b's memory.
    for (let i = 0; i < BASELINE; i++) {
      const cp = await api<CheckpointRecord>('POST', '/checkpoints', { workload: workload.id, mode: 'forensic' });
      const done = await settled(cp.id, ['stored']);
      results.baseline.push(takeFigures(done));
      console.log(`[qemu] forensic ${i + 1}/${BASELINE}: ${JSON.stringify(results.baseline.at(-1))}`);
      if (i + 1 < BASELINE) {
        await api('DELETE', `/checkpoints/${cp.id}`); // vm-b's tmpfs holds the images in RAM
        await sleep(INTERVAL_S * 1000);
      }
    }
    if (BASELINE) {
      const last = results.baseline.at(-1)!;
      await api('POST', `/checkpoints/${last.id}/restore`, {});
      const clone = await settled(last.id, ['restored', 'stored']);
      expect(clone.restore!.error).toBeUndefined();
      results.baselineRestore = restoreFigures(clone, 1);
      console.log(`[qemu] full checkpoint restored as a clone: ${JSON.stringify(results.baselineRestore)}`);
      await b.sh(`kill -9 ${clone.restore!.restoredPid} 2>/dev/null; true`);
      await api('DELETE', `/checkpoints/${last.id}`);
    }

    // A freeze budget between the two kinds (a full dump of 64 MiB froze 8-17 s under TCG, an incremental one
    // 1.7-3.6 s up to 256 MiB): the first has no figure to predict from, and each incremental one is predicted from
    // the last incremental one, never from the full one, so none is skipped.
    const guard = { intervalSeconds: INTERVAL_S, keep: GUARDS + 1, maxFreezeMs: FREEZE_BUDGET_MS };
    await api('PUT', `/workloads/${workload.id}/guard`, guard);
    guardStored = await until(
      `${GUARDS} guard checkpoints stored`,
      async () => {
        const mine = await checkpointsOf('guard');
        const failed = mine.find((c) => c.state === 'failed');
        if (failed) throw new Error(`guard checkpoint ${failed.id} failed: ${failed.error}`);
        const skipped = (await api<GuardReport>('GET', `/workloads/${workload.id}/guard`)).skipped;
        if (skipped) throw new Error(`a guard checkpoint was skipped: ${skipped.reason}`);
        const stored = mine.filter((c) => c.state === 'stored');
        if (stored.length === 1 && !counterAfterFull)
          counterAfterFull = parseStatus(await a.sh(`cat ${STATUS}`)).counter;
        return stored.length >= GUARDS ? stored.slice(0, GUARDS) : undefined;
      },
      GUARDS * 300_000,
    );
    // No more for this test: nothing may be under way when vm-a goes.
    await api('PUT', `/workloads/${workload.id}/guard`, { ...guard, intervalSeconds: 86_400 });
    await until(
      'no guard checkpoint under way',
      async () =>
        (await checkpointsOf('guard')).every((c) => c.state !== 'queued' && c.state !== 'taking') ? 1 : undefined,
      300_000,
    );
    results.guard = guardStored.map(takeFigures);
    for (const f of results.guard) console.log(`[qemu] ${f.kind}: ${JSON.stringify(f)}`);
    console.log(
      `[qemu] freeze budget ${FREEZE_BUDGET_MS} ms: the full one froze ${results.guard[0]!.freezeMs.toFixed(0)} ms, ` +
        `${results.guard.length - 1} incremental one(s) taken after it, none skipped`,
    );

    const [full, ...incs] = guardStored;
    expect(full!.guardChain).toEqual({ depth: 1, trackMem: true });
    expect(full!.criu.dump!.pagesWritten).toBeGreaterThan(TOTAL_PAGES * 0.9);
    let parent = full!;
    for (const inc of incs) {
      // each names the one before as its parent and carries only what the workload dirtied since
      expect(inc.guardChain).toEqual({ parentId: parent.id, depth: parent.guardChain!.depth + 1, trackMem: true });
      expect(inc.criu.dump!.pagesWritten).toBeLessThan(full!.criu.dump!.pagesWritten / 4);
      expect(inc.criu.dump!.pagesSkippedParent).toBeGreaterThan(TOTAL_PAGES * 0.5);
      expect(inc.bytes.stored!).toBeLessThan(full!.bytes.stored! / 4);
      parent = inc;
    }
    // On vm-b the storage node's page-server linked each incremental's images to its parent's.
    const links = await b.sh(
      incs.map((c) => `echo "$(readlink ${CHECKPOINT_ROOT}/${workload.id}/${c.id}/parent)"`).join('\n') || 'true',
    );
    expect(links.trim().split('\n').filter(Boolean)).toEqual(incs.map((c) => `../${c.guardChain!.parentId}`));
    // --leave-running: the same process went on on vm-a through every dump.
    const now = await api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
    expect(now).toMatchObject({ nodeId: a.node.id, pid: workloadPid, state: 'running' });
    counterBeforeLoss = parseStatus(await a.sh(`cat ${STATUS}`)).counter;
    expect(counterBeforeLoss).toBeGreaterThan(counterAfterFull);
    const ratio = incs.length ? incs.at(-1)!.criu.dump!.pagesWritten / full!.criu.dump!.pagesWritten : NaN;
    console.log(
      `[qemu] GUARD engine incremental/full pages written: ${incs.map((c) => c.criu.dump!.pagesWritten).join(', ')}/` +
        `${full!.criu.dump!.pagesWritten} = ${ratio.toFixed(3)}; frozen ${results.guard.map((f) => f.freezeMs.toFixed(0)).join(', ')} ms`,
    );
  }, 1_800_000);

  it('vm-a vanishes: nothing restored until the loss is confirmed, then restored once on vm-b from the chain', async () => {
    expect(guardStored.length).toBe(GUARDS);
    // The node powers off with the workload (qemu killed): no notice, no goodbye.
    await shutdownPair([vms!.names[0]], [a]);
    await b.sh('true'); // vm-b runs on without its peer on the private link

    const waiting = await until(
      'the guard pass to find vm-a silent beyond the threshold',
      async () => {
        const r = await api<GuardReport>('GET', `/workloads/${workload.id}/guard`);
        return r.loss?.reason.includes('not confirmed gone') && !r.loss.reason.includes('below') ? r : undefined;
      },
      120_000,
    );
    expect(waiting.loss!.action).toBe('wait');
    expect((await checkpointsOf('guard')).every((c) => !c.restore)).toBe(true);

    const confirmedAt = Date.now();
    await api('POST', `/nodes/${a.node.id}/lost`, { reason: 'qemu VM powered off' });
    const moved = await until(
      'the workload running on vm-b',
      async () => {
        const w = await api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
        return w.nodeId === b.node.id && w.state === 'running' ? w : undefined;
      },
      900_000,
    );
    const confirmedToRunningMs = Date.now() - confirmedAt;
    expect((await api<NodeRecord>('GET', `/nodes/${a.node.id}`)).fence).toBeDefined();

    // Restored from the newest guard checkpoint, whose chain is all the guard checkpoints before it.
    const newest = guardStored.at(-1)!;
    const restored = await settled(newest.id, ['restored']);
    expect(restored.restore!.takeover).toMatchObject({ fromNodeId: a.node.id, stalePid: workloadPid });
    expect(restored.restore!.restoredPid).toBe(moved.pid);
    const chainStored = guardStored.reduce((s, c) => s + c.bytes.stored!, 0);
    expect(restored.restore!.imageBytes!).toBeGreaterThan(chainStored * 0.9); // the parents streamed too
    results.lossRestore = { ...restoreFigures(restored, guardStored.length), confirmedToRunningMs };
    console.log(`[qemu] restore from the chain after the loss: ${JSON.stringify(results.lossRestore)}`);

    // It went on from the guard state (not from scratch) and all its memory checks out.
    const after = parseStatus(await b.sh(`cat ${STATUS}`));
    expect(after.pid).toBe(moved.pid);
    expect(after.counter).toBeGreaterThan(counterAfterFull);
    expect(after.counter).toBeLessThan(counterBeforeLoss + 5_000);
    const verified = await verifyWorkload(b, moved.pid, STATUS);
    expect(verified.verify).toMatch(/^ok:\d+$/);

    // Once: more passes run, nothing else is restored, the workload stays the restored copy.
    await sleep(4000);
    const guards = await checkpointsOf('guard');
    expect(guards.filter((c) => c.restore).map((c) => c.id)).toEqual([newest.id]);
    expect(await api<WorkloadRecord>('GET', `/workloads/${workload.id}`)).toMatchObject({
      nodeId: b.node.id,
      pid: moved.pid,
      state: 'running',
    });
    await b.sh(`kill -9 ${moved.pid} 2>/dev/null; true`);
  }, 1_200_000);
});
